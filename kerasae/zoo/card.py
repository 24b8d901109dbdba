"""The model card (`README.md`) of a preset, written from its metadata, and read back."""

import json

from kerasae.models import registry
from kerasae.presets import WEIGHTS_FILE
from kerasae.zoo.evaluate import METRIC_DOCS
from kerasae.zoo.series import SERIES_METRIC_DOCS


def fmt(value):
    """A metric as the card and the CLI print it (6 significant digits)."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _kind(model):
    return ("variational autoencoder" if model.variational else
            "denoising autoencoder" if getattr(model, "corruption", None) is not None
            else "autoencoder")


def _is_series(meta):
    return meta["dataset"].get("kind") == "series"


def _series_prose(meta, model, text):
    d, settings = meta["dataset"], meta["evaluation"]["settings"]
    return (
        text.get("intended_use") or (
            f"Scoring every time step of a series like `{d['name']}` by the reconstruction "
            f"error of the windows of {model.image_shape[0]} steps that hold it; the model "
            "takes raw values (its scaling was fitted on the training steps and is saved "
            "with the weights). A starting point for fine-tuning on similar telemetry."),
        text.get("data_description") or (
            f"Trained on {d['train_split']} of `{d['name']}` ({d['steps']} steps, columns "
            f"{', '.join(d['columns'])}); measured on {d['eval_split']} "
            f"({meta['evaluation']['examples']} held-out steps)."),
        text.get("limitations") or (
            f"Trained on one series: other series need their own training (or a fine-tune), "
            f"and the threshold ({settings['threshold_percentile']:g}th percentile of the "
            "training windows' scores) assumes the training steps were normal."),
    )


def _prose(meta, model, text):
    """The card's three prose sections: the caller's, else sensible defaults."""
    if _is_series(meta):
        return _series_prose(meta, model, text)
    d = meta["dataset"]
    examples = meta["evaluation"]["examples"]
    return (
        text.get("intended_use") or (
            f"Reconstructing, encoding and (for a VAE) sampling {d['name']} images of shape "
            f"{tuple(model.image_shape)}; a starting point for fine-tuning, feature "
            "extraction and anomaly scoring on similar data; a reference for comparing "
            "autoencoder variants."),
        text.get("data_description") or (
            f"Trained on the `{d['train_split']}` split of `{d['name']}` (via "
            f"`kerasae.data`), pixels scaled to [0, 1]; evaluated on the "
            f"`{d['eval_split']}` split ({examples} images)."),
        text.get("limitations") or (
            f"Trained only on {d['name']}: inputs from other distributions reconstruct "
            "poorly. Reconstruction metrics are not perceptual quality. Small model meant "
            "for CPU use; not a state-of-the-art compressor or generator."),
    )


def _evaluation_rows(meta):
    references = meta.get("reference_metrics") or {}
    docs = SERIES_METRIC_DOCS if _is_series(meta) else METRIC_DOCS
    rows = []
    for key, value in meta["evaluation"]["metrics"].items():
        refs = references.get(key) or []
        refs = [refs] if isinstance(refs, dict) else list(refs)
        ref_values = "; ".join(fmt(r["value"]) for r in refs) or "-"
        ref_sources = "; ".join(r.get("source", "-") for r in refs) or "-"
        rows.append(f"| {key} | {fmt(value)} | {ref_values} | {ref_sources} | "
                    f"{docs.get(key, '')} |")
    return rows


def model_card(meta, model, weights_sha, weights_bytes, text=None):
    """The card's markdown from `metadata.json`'s content and the model it describes.

    `text` may hold `intended_use`, `data_description`, `limitations` (markdown)
    and `card_sections` (`{title: markdown}`); defaults are written for the first three.
    """
    text = text or {}
    name, version, d = meta["name"], meta["version"], meta["dataset"]
    fn = registry.get_builder(model.builder_name).__name__
    kind = _kind(model)
    intended_use, data_description, limitations = _prose(meta, model, text)
    recipe = meta["recipe"]
    lines = [
        f"# {name} (version {version})", "", meta["description"], "",
        "| | |", "| --- | --- |",
        f"| Builder | `{model.builder_name}` (`kerasae.{fn}`), "
        f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} |",
        f"| Parameters | {meta['parameters']:,} |",
        f"| Weights | `{WEIGHTS_FILE}`, {weights_bytes:,} bytes, sha256 `{weights_sha}` |",
        f"| Data | `{d['name']}`, trained on `{d['train_split']}`, evaluated on "
        f"`{d['eval_split']}` |",
        f"| Licence | {meta['license']} |", "",
        "## Intended use", "", intended_use, "",
        "## Data", "", data_description, "",
        "## Training procedure", "",
        "Trained with:", "", "```bash", recipe["command"], "```", "",
    ]
    details = {k: v for k, v in recipe.items() if k != "command"}
    if details:
        lines += ["| setting | value |", "| --- | --- |"]
        lines += [f"| {k} | `{json.dumps(v)}` |" for k, v in sorted(details.items())]
        lines.append("")
    lines += [
        "Builder arguments (`config.json`):", "", "```json",
        json.dumps(model.builder_config, sort_keys=True), "```", "",
        "## Evaluation", "",
        _measured_by(meta), "",
        "| metric | this preset | reference | reference source | meaning |",
        "| --- | --- | --- | --- | --- |",
        *_evaluation_rows(meta), "",
        *_windows_section(meta),
    ]
    for title, body in (text.get("card_sections") or {}).items():
        lines += [f"## {title}", "", str(body).strip(), ""]
    shape = ", ".join(map(str, model.image_shape))
    lines += ["## Limitations", "", limitations, "",
              "## Load", "", "```python", "import kerasae",
              f"model = kerasae.{fn}(weights={name!r})  # or kerasae.zoo.load_model({name!r})",
              f"reconstructions = model.predict(windows)  # raw values, shape (n, {shape})"
              if _is_series(meta) else
              f"reconstructions = model.predict(images)  # float32 in [0, 1], shape (n, {shape})",
              "```", ""]
    return "\n".join(lines)


def _measured_by(meta):
    evaluation, d = meta["evaluation"], meta["dataset"]
    settings = json.dumps(evaluation["settings"], sort_keys=True)
    if not _is_series(meta):
        return (f"Measured by `{evaluation['command']}` on all {evaluation['examples']} "
                f"images of the `{d['eval_split']}` split, with settings `{settings}`.")
    sha = f" (sha256 `{d['sha256']}`)" if d.get("sha256") else ""
    return (f"Measured by `{evaluation['command']}` (Python: `kerasae.zoo.evaluate_preset("
            f"{meta['name']!r}, dataset=PATH)`) on `{d['name']}`{sha}, with settings "
            f"`{settings}`: the threshold comes from the scores of the windows of "
            f"{d['train_split']}, every other number from the {evaluation['examples']} "
            f"held-out steps ({d['eval_split']}). A window's score is its mean squared "
            "reconstruction error in the model's scaled units, a step's the mean score of "
            "the windows that hold it (`kerasae.uses.detector.Detector`'s default).")


def _windows_section(meta):
    """The labelled windows of a series card, each with its steps above the threshold."""
    each = meta["evaluation"].get("labelled_windows") or []
    if not each:
        return []
    return ["## Labelled windows", "",
            "| first step | last step | steps | steps above the threshold |",
            "| --- | --- | --- | --- |",
            *(f"| {w['first']} | {w['last']} | {w['steps']} | {w['flagged_steps']} |"
              for w in each), ""]


def card_metrics(readme_text):
    """The `metric -> value` rows of a card's evaluation table (for consistency checks)."""
    out = {}
    section = readme_text.split("## Evaluation", 1)[-1].split("\n## ", 1)[0]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0] not in ("metric", "") and not cells[0].startswith("---"):
            try:
                out[cells[0]] = float(cells[1])
            except ValueError:
                continue
    return out
