"""Publishing a preset whose weights are converted from a third party's checkpoint.

The zoo then ships the preset's `config.json`, `metadata.json` and card, and pins the
weights by the sha256 of their conversion and by the upstream files they are made from
(`converted_from`, read by `kerasae.presets.converted`); neither the upstream files nor
the converted weights are shipped. The card's numbers are measured by the caller (e.g.
`kerasae.benchmarks.photos` for `tae_flux2`) and recorded with the command that
reproduces them.
"""

import datetime
import json
import os
import tempfile

import keras

from kerasae import presets
from kerasae._util.errors import InvalidValue
from kerasae._util.files import sha256_file, staged_directory
from kerasae._util.versions import versions
from kerasae.presets.converted import origin_problem
from kerasae.presets.store import metadata_problem
from kerasae.zoo.card import model_card
from kerasae.zoo.publishing import (
    _check_new_version,
    _index_entry,
    _publish_root,
    folder_files,
    write_entry,
    write_json,
)


def _source_section(origin, weights_spec):
    rows = "\n".join(f"| `{spec['name']}` | {role} | {spec['bytes']:,} | `{spec['sha256']}` |"
                     for role, spec in sorted(origin["files"].items()))
    return (
        f"Converted from `{origin['repository']}` at commit `{origin['commit']}` "
        f"({origin['license']}); kerasae ships neither these files nor the converted "
        f"weights. On first use (`kerasae zoo pull`, or loading the preset) each file is "
        f"fetched from a mirror (`<mirror>/sources/{origin['repository']}/"
        f"{origin['commit']}/<name>`) or from {origin.get('url') or 'no upstream URL'}, "
        f"checked against its sha256, read without running its pickle (converter "
        f"`{origin['converter']}`), and the converted `{presets.WEIGHTS_FILE}` is cached "
        f"only when its sha256 is `{weights_spec['sha256']}` "
        f"({weights_spec['bytes']:,} bytes).\n\n"
        f"| upstream file | part | bytes | sha256 |\n| --- | --- | --- | --- |\n{rows}")


def publish_converted(model, name, *, version, description, converted_from, dataset,
                      evaluation, recipe, reference_metrics=None, text=None, root=None):
    """Publishes `model`, converted from `converted_from`'s files, without its weights.

    Args:
        model: the converted model (built by a registered builder).
        name, version, description: as `kerasae.zoo.publish`.
        converted_from: the upstream files and converter (see
            `kerasae.presets.converted`); the model's weights must be what the converter
            writes from them (checked: the sha256 of `model`'s saved weights is pinned).
        dataset: the metadata's `dataset` block (`name`, `train_split`, `eval_split`).
        evaluation: the metadata's `evaluation` block (`command`, `examples`, `metrics`,
            `settings`), measured by the caller.
        recipe: the metadata's `recipe` (`command`: how the weights are made).
        reference_metrics, text: as `kerasae.zoo.publish` (`text`: `intended_use`,
            `data_description`, `limitations`, `card_sections`).
        root: zoo root. Defaults to the source tree's `zoo/`.

    Returns:
        The new preset folder.
    """
    problem = origin_problem(converted_from)
    if problem:
        raise InvalidValue(f"converted_from is refused: {problem}. Received: name={name!r}")
    root = _publish_root(root)
    index = presets.read_index(root)
    entry = index["presets"].get(name)
    folder = _check_new_version(root, entry, name, version, model.builder_name)
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, presets.WEIGHTS_FILE)
        model.save_weights(path)
        weights = {"sha256": sha256_file(path), "bytes": os.path.getsize(path),
                   "converted_from": converted_from}
    meta = {"name": name, "version": version, "builder": model.builder_name,
            "description": description, "license": converted_from["license"],
            "published": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
            "parameters": int(model.count_params()), "dataset": dataset,
            "versions": dict(versions("keras", "numpy", "h5py", "tensorflow"),
                             backend=keras.backend.backend()),
            "recipe": recipe, "evaluation": evaluation,
            "reference_metrics": reference_metrics or {}}
    problem = metadata_problem(meta)
    if problem:
        raise InvalidValue(f"The metadata of {name}@{version} would be refused when it is "
                           f"read: {problem[0]}. Received: {problem[1]}")
    text = dict(text or {})
    text["card_sections"] = {"Source": _source_section(converted_from, weights),
                             **(text.get("card_sections") or {})}
    with staged_directory(folder) as tmp:
        write_json(os.path.join(tmp, "config.json"), {
            "builder": model.builder_name, "kwargs": json.loads(json.dumps(model.builder_config))})
        write_json(os.path.join(tmp, "metadata.json"), meta)
        with open(os.path.join(tmp, "README.md"), "w", encoding="utf-8") as f:
            f.write(model_card(meta, model, weights["sha256"], weights["bytes"], text))
        files = folder_files(tmp)
    files[presets.WEIGHTS_FILE] = weights
    write_entry(root, index, name, _index_entry(meta, entry, dict(sorted(files.items()))))
    return folder
