"""A preset as a Hugging Face Hub repo: the folder `hf upload` publishes, with its manifest.

`hub_folder(name, out_dir)` writes the preset's files (verified copies), a model
card whose YAML front matter carries `library_name`, `tags`, `datasets`,
`license` and the measured metrics in `model-index` form (so the Hub shows them),
and `kerasae-preset.json`, which pins every file of the folder by sha256 (see
`kerasae.presets.hub`). Then `hf upload <owner>/<repo> <out_dir> .` publishes it and
`hf://<owner>/<repo>` loads it anywhere.
"""

import json
import os
import re
import shutil

from kerasae import presets
from kerasae._util.errors import InvalidValue
from kerasae._util.files import atomic_write, sha256_file, staged_directory
from kerasae._util.versions import __version__
from kerasae.models.resolve import resolve_preset
from kerasae.presets.hub import MANIFEST, MANIFEST_FORMAT

CARD = "README.md"
TASK = {"type": "image-to-image", "name": "Image reconstruction"}


def _license(text):
    return str(text or "other").lower()


def _front_matter(entry, meta, name):
    """YAML front matter (written as JSON flow values, which YAML reads as they are).

    `meta` is checked by the store (`kerasae.presets.store.METADATA_FIELDS`): every
    field read here has its type."""
    dataset, evaluation = meta["dataset"]["name"], meta["evaluation"]
    metrics = [{"type": k, "value": v, "name": f"{k} on the {evaluation.get('split', 'test')} "
                f"split"} for k, v in evaluation["metrics"].items()]
    lines = ["---", "library_name: kerasae",
             f"license: {json.dumps(_license(meta.get('license') or entry.get('license')))}",
             "tags: " + json.dumps(["autoencoder", "keras", "kerasae", entry["builder"]]),
             "pipeline_tag: image-to-image", "datasets: " + json.dumps([dataset])]
    if metrics:
        lines += ["model-index:", f"- name: {json.dumps(name)}", "  results:",
                  f"  - task: {json.dumps(TASK)}",
                  "    dataset: " + json.dumps({"name": dataset, "type": dataset,
                                                "split": evaluation.get("split", "test")}),
                  "    metrics:"]
        lines += [f"    - {json.dumps(m)}" for m in metrics]
    return "\n".join(lines + ["---", ""])


LOAD_SECTION = "## Load from the Hub"
# A card's YAML front matter, as huggingface_hub's ModelCard finds it.
_FRONT_MATTER = re.compile(r"\A\s*---[\r\n]+[\s\S]*?[\r\n]+---(?:\r?\n|\Z)")


def _card_body(text):
    """The model card of a zoo preset, or of a hub preset without what this module added:
    its front matter and its load section are rewritten, never nested or repeated."""
    body = _FRONT_MATTER.sub("", text, count=1).strip()
    head, found, tail = body.partition(f"\n{LOAD_SECTION}\n")
    if found:  # the section this module appended; a later one would be a card's own
        rest = tail.split("\n## ", 1)
        body = head.rstrip() + ("\n\n## " + rest[1] if len(rest) > 1 else "")
    return body.strip()


def _card(preset, entry, meta, repo_id, name):
    body = ""
    if CARD in entry["files"]:
        with open(preset.file(CARD), encoding="utf-8") as f:
            body = _card_body(f.read())
    handle = f"hf://{repo_id}" if repo_id else f"hf://<owner>/{name}"
    load = (f"\n{LOAD_SECTION}\n\n```python\nimport kerasae\nmodel = "
            f"kerasae.zoo.load_model({handle!r})  # files verified by {MANIFEST}\n```\n")
    return _front_matter(entry, meta, name) + "\n" + (body + "\n" if body else
                                                      f"# {name}\n") + load


def hub_folder(name, out_dir, *, repo_id=None, root=None, force=False):
    """Writes preset `name` (zoo or `hf://`) as a folder ready for `hf upload`.

    Args:
        name: a preset name (`conv_ae_fashion_mnist`, `name@version`, `hf://...`).
        out_dir: the folder to write; it must not exist unless `force=True`.
        repo_id: the hub repo it will go to (`owner/repo`), for the card's load
            line and the upload command. Defaults to `None` (`<owner>/<name>`).
        root: zoo root of `name`. Defaults to the usual one.
        force: replace an existing `out_dir` (only one this function wrote).

    Returns:
        A dict: `dir`, `files` (name -> sha256 and bytes, as pinned in the
        manifest) and `upload`, the `hf upload` command that publishes it.
    """
    preset = resolve_preset(name, root=root).preset
    out_dir = os.path.abspath(os.fspath(out_dir))
    if os.path.lexists(out_dir) and not (
            force and os.path.isfile(os.path.join(out_dir, MANIFEST))):
        raise InvalidValue(
            f"{out_dir!r} exists{'' if force else ' (pass force=True, --force, to replace it)'}"
            f"{'; it is not a hub folder this command wrote, so it is kept' if force else ''}. "
            f"Received: out_dir={out_dir!r}"
        )
    entry = {k: v for k, v in preset.entry.items() if k not in ("path", "previous_versions")}
    meta = preset.metadata()
    base = preset.name if not presets.is_hub_name(preset.name) else name.split("/")[-1]
    with staged_directory(out_dir, replace=force) as tmp:
        for filename in sorted(preset.entry["files"]):
            if filename != CARD:
                shutil.copyfile(preset.file(filename), os.path.join(tmp, filename))
        atomic_write(os.path.join(tmp, CARD), _card(preset, entry, meta, repo_id, base))
        files = {f: {"bytes": os.path.getsize(os.path.join(tmp, f)),
                     "sha256": sha256_file(os.path.join(tmp, f))} for f in sorted(os.listdir(tmp))}
        manifest = {"format": MANIFEST_FORMAT, "format_version": 1,
                    "kerasae_version": __version__,
                    "preset": dict(entry, name=base, files=files)}
        atomic_write(os.path.join(tmp, MANIFEST), json.dumps(manifest, indent=2) + "\n")
    target = repo_id or f"<owner>/{base}"
    return {"dir": out_dir, "files": files, "upload": f"hf upload {target} {out_dir} ."}
