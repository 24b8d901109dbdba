"""Publishing a trained model as a new preset version: files, measured card, index entry.

A preset folder is written whole (staged beside its final place, then renamed)
and never changed afterwards: a change is a new version. The metrics in the
metadata and the card are measured here by the code of `kerasae zoo evaluate`,
on a model rebuilt from the written files, so the card describes what users load.
"""

import datetime
import json
import os
import re

import keras

from kerasae import data as data_lib
from kerasae import presets
from kerasae._util.errors import InvalidType, InvalidValue
from kerasae._util.files import atomic_write, sha256_file, staged_directory
from kerasae._util.versions import versions
from kerasae.models.resolve import from_config
from kerasae.presets.store import metadata_problem, reference_metrics_problem
from kerasae.zoo.card import model_card
from kerasae.zoo.evaluate import evaluate_model
from kerasae.zoo.series import evaluate_series

MAX_WEIGHTS_BYTES = 5_000_000  # 5 MB per preset: the wheel ships every preset
_NAME = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
_EXTRA_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.(?:md|txt|sh|json|yaml|yml|csv)$")


def write_json(path, obj):
    """`obj` as indented, key-sorted JSON with a final newline."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def _check_request(model, name, version, recipe, extra_files, reference_metrics):
    builder_name = getattr(model, "builder_name", None)
    if not builder_name or getattr(model, "builder_config", None) is None:
        raise InvalidType(
            "publish() needs a model made by a registered builder (it records "
            "builder_name and builder_config), e.g. kerasae.build('conv_ae', ...). "
            f"Received: model={type(model).__name__}"
        )
    if (not isinstance(name, str) or not _NAME.match(name)
            or not name.startswith(builder_name + "_")):
        raise InvalidValue(
            f"A preset name is lower snake case '<builder>_<dataset>[_<size>]' and starts "
            f"with the builder name, e.g. '{builder_name}_fashion_mnist'; hyperparameters "
            f"belong in config.json. Received: name={name!r}"
        )
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidValue(f"version must be an integer >= 1. Received: version={version!r}")
    if not isinstance(recipe, dict) or not isinstance(recipe.get("command"), str):
        raise InvalidValue(
            "recipe must be a dict holding the exact training command, e.g. "
            "{'command': 'kerasae train conv_ae --dataset fashion_mnist --epochs 20', "
            f"'epochs': 20}}. Received: recipe={recipe!r}"
        )
    try:
        json.dumps(recipe)
    except TypeError as e:
        raise InvalidType(
            f"recipe must hold JSON values only ({e}). Received: recipe={recipe!r}"
        ) from None
    for fname in extra_files or {}:
        if not _EXTRA_FILE.match(fname) or fname in presets.PRESET_FILES:
            raise InvalidValue(
                "Extra files are plain text (.md, .txt, .sh, .json, .yaml, .csv) with a simple "
                f"name, not one of {', '.join(presets.PRESET_FILES)}. Received: filename={fname!r}"
            )
    problem = reference_metrics_problem(reference_metrics)
    if problem:
        raise InvalidValue(
            f"reference_metrics are {{metric: {{'value': number, 'source': text}}}} (or a list "
            f"of such per metric): {problem[0]}. Received: {problem[1]}"
        )
    return builder_name


def _publish_root(root):
    if root is not None:
        return os.path.abspath(os.fspath(root))
    checkout = presets.checkout_zoo()
    if checkout is None:
        raise InvalidValue(
            "publish() writes into a source checkout's zoo/ folder, and this kerasae is an "
            "installed package. Pass root= (e.g. the repository's zoo/ folder). Received: root=None"
        )
    return checkout


def _check_new_version(root, entry, name, version, builder_name):
    published = [] if entry is None else presets.published_versions(entry)
    folder = os.path.join(root, name, f"v{version}")
    if version in published or os.path.exists(folder):
        raise InvalidValue(
            f"Preset {name!r} version {version} is already published ({folder}); published "
            f"files are never changed. Publish version {max(published + [version]) + 1} "
            f"instead. Received: version={version}"
        )
    if published and version < max(published):
        raise InvalidValue(
            f"A new version must be newer than the published ones ({max(published)}). "
            f"Received: version={version}"
        )
    if entry is not None and entry["builder"] != builder_name:
        raise InvalidValue(
            f"Preset {name!r} belongs to builder {entry['builder']!r}; a new version cannot "
            f"switch to {builder_name!r}. Choose another name. Received: name={name!r}"
        )
    return folder


def _write_weights(model, folder, label, max_weights_bytes):
    """Writes `config.json` and `model.weights.h5`; returns the model rebuilt from them."""
    config = {"builder": model.builder_name,
              "kwargs": json.loads(json.dumps(model.builder_config))}
    write_json(os.path.join(folder, "config.json"), config)
    path = os.path.join(folder, presets.WEIGHTS_FILE)
    bare = from_config(config)  # fresh and uncompiled: weights only, no optimizer state
    try:
        bare.set_weights(model.get_weights())
    except ValueError as e:
        raise InvalidValue(
            f"A model rebuilt from builder_config does not have this model's weight "
            f"shapes ({e}); was the model changed after it was built? "
            f"Received: builder_config={model.builder_config!r}"
        ) from None
    bare.save_weights(path)
    size = os.path.getsize(path)
    if size > max_weights_bytes:
        raise InvalidValue(
            f"The weights take {size:,} bytes; a preset may take at most "
            f"{max_weights_bytes:,} (the wheel ships every preset). Use a smaller "
            f"model. Received: weights_bytes={size}"
        )
    rebuilt = from_config(config)
    presets.load_weights_strict(rebuilt, path, label)
    theirs, ours = rebuilt.get_weights(), model.get_weights()
    if len(theirs) != len(ours) or any(a.shape != b.shape or not (a == b).all()
                                       for a, b in zip(theirs, ours)):
        raise InvalidValue(
            f"A model rebuilt from builder_config does not reproduce this model's "
            f"weights, so {label!r} could not be loaded faithfully. Was the model changed "
            f"after it was built? Received: builder_config={model.builder_config!r}"
        )
    return rebuilt, sha256_file(path), size


def _index_entry(meta, entry, files):
    d = meta["dataset"]
    new = {"builder": meta["builder"], "version": meta["version"],
           "path": f"{meta['name']}/v{meta['version']}", "description": meta["description"],
           "dataset": d["name"], "split": d["train_split"], "eval_split": d["eval_split"],
           "params": meta["parameters"], "license": meta["license"],
           "published": meta["published"], "files": files}
    if entry is not None:
        previous = [{k: entry[k] for k in ("version", "path", "files", "published", "params",
                                           "description") if k in entry}]
        new["previous_versions"] = previous + list(entry.get("previous_versions", []))
    return new


def _measure(model, name, dataset, splits, evaluation, data_kwargs, labelled_windows):
    """`(dataset block, evaluation block)` of the metadata: the numbers measured on
    `dataset`'s `eval_split` (images) or on the series `dataset` after its training part."""
    train_split, eval_split = splits
    if model.input_kind != "series":
        images, _ = data_lib.load_numpy(dataset, eval_split, **(data_kwargs or {}))
        measured = evaluate_model(model, images, **(evaluation or {}))
        return ({"name": dataset, "train_split": train_split, "eval_split": eval_split,
                 "image_shape": list(model.image_shape)},
                {"command": f"kerasae zoo evaluate {name} --split {eval_split}",
                 "dataset": dataset, "split": eval_split, **measured})
    src = data_lib.series(dataset, window=model.image_shape[0], **(data_kwargs or {}))
    measured = evaluate_series(model, src, windows=labelled_windows, **(evaluation or {}))
    path = os.fspath(dataset) if isinstance(dataset, (str, os.PathLike)) else None
    k, label = measured["settings"]["train_steps"], os.path.basename(path or src.name)
    split = f"steps {k}-{src.n_steps - 1}"
    block = {"name": label, "kind": "series", "steps": int(src.n_steps),
             "columns": list(src.columns), "time_column": src.time_column,
             "window": int(src.window), "image_shape": list(model.image_shape),
             "train_split": f"steps 0-{k - 1}" if train_split == "train" else train_split,
             "eval_split": split if eval_split == "test" else eval_split}
    if path is not None:
        block["sha256"] = sha256_file(path)
    return block, {"command": f"kerasae zoo evaluate {name} --dataset {label}",
                   "dataset": label, "split": split, **measured}


def publish(model, name, *, version, description, dataset, recipe, license="Apache-2.0",
            train_split="train", eval_split="test", reference_metrics=None, intended_use=None,
            data_description=None, limitations=None, card_sections=None, extra_files=None,
            evaluation=None, root=None, max_weights_bytes=MAX_WEIGHTS_BYTES, data_kwargs=None,
            labelled_windows=None):
    """Publishes `model` as a new preset version and adds it to the index.

    Writes `<root>/<name>/v<version>/` with `config.json` (from
    `model.builder_name` / `model.builder_config`), `model.weights.h5`,
    `metadata.json` and `README.md`, then pins every file by sha256 in
    `<root>/index.json`. The metrics in the metadata and the card are measured
    here by the same code as `kerasae zoo evaluate` (`evaluate_model`), on a
    model rebuilt from the written files, so the card and the command agree.
    An existing version is never overwritten.

    Args:
        model: a trained model from a registered builder.
        name: preset name, `<builder>_<dataset>[_<size>]`, lower snake case.
        version: integer version, greater than any published version of `name`.
        description: one or two sentences for the index and the card.
        dataset: `kerasae.data` name the model was trained on, e.g. `"fashion_mnist"`;
            for a model of series windows, the series itself (a `.csv` file, an array),
            trained on its first `evaluation["train_steps"]` steps and measured on the
            rest by `kerasae.zoo.series.evaluate_series`.
        recipe: dict with the exact `"command"` that trained the model, plus
            any settings worth recording (epochs, batch size, seed, ...).
        license: licence of the weights. Defaults to `"Apache-2.0"`.
        train_split: training split. Defaults to `"train"` (a series: its first steps).
        eval_split: split measured for the card. Defaults to `"test"` (a series: the
            steps after the training part).
        reference_metrics: `{metric: {"value": v, "source": "..."}}` (or a list of
            such dicts per metric), published numbers shown beside ours in the
            card. Defaults to `None`.
        intended_use, data_description, limitations: card sections (markdown);
            sensible defaults are written when `None`.
        card_sections: `{title: markdown}` of extra card sections.
        extra_files: `{filename: text}` of extra files for the folder (e.g. a
            `train.sh`), pinned in the index like the others.
        evaluation: overrides of `kerasae.zoo.evaluate.DEFAULT_SETTINGS` (a series:
            `kerasae.zoo.series.SERIES_SETTINGS`, and `train_steps`).
        root: zoo root. Defaults to the source tree's `zoo/` (editable installs).
        max_weights_bytes: size limit of the weights. Defaults to 5 MB.
        data_kwargs: extra arguments for `kerasae.data.load_numpy` (a series:
            `kerasae.data.series`).
        labelled_windows: a series' labelled anomaly windows, `(first, last)`
            timestamps of its time column (inclusive), recorded in the metadata and
            measured against. Defaults to `None` (a label column through
            `data_kwargs`, or no label metrics).

    Returns:
        The new preset folder.
    """
    builder_name = _check_request(model, name, version, recipe, extra_files,
                                  reference_metrics)
    root = _publish_root(root)
    index = presets.read_index(root)
    entry = index["presets"].get(name)
    folder = _check_new_version(root, entry, name, version, builder_name)
    text = {"intended_use": intended_use, "data_description": data_description,
            "limitations": limitations, "card_sections": card_sections}
    with staged_directory(folder) as tmp:
        rebuilt, weights_sha, weights_bytes = _write_weights(
            model, tmp, f"{name}@{version}", max_weights_bytes)
        data_block, evaluated = _measure(rebuilt, name, dataset, (train_split, eval_split),
                                         evaluation, data_kwargs, labelled_windows)
        meta = {
            "name": name, "version": version, "builder": builder_name,
            "description": description, "license": license,
            "published": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
            "parameters": int(model.count_params()),
            "dataset": data_block,
            "versions": dict(versions("keras", "numpy", "h5py", "tensorflow"),
                             backend=keras.backend.backend()),
            "recipe": recipe,
            "evaluation": evaluated,
            "reference_metrics": reference_metrics or {},
        }
        problem = metadata_problem(meta)
        if problem:  # what publish writes, presets.store must read back
            raise InvalidValue(f"The metadata of {name}@{version} would be refused when it is "
                               f"read: {problem[0]}. Received: {problem[1]}")
        write_json(os.path.join(tmp, "metadata.json"), meta)
        card = model_card(meta, model, weights_sha, weights_bytes, text)
        for fname, body in [("README.md", card), *(extra_files or {}).items()]:
            with open(os.path.join(tmp, fname), "w", encoding="utf-8") as f:
                f.write(body)
        files = folder_files(tmp)
    write_entry(root, index, name, _index_entry(meta, entry, files))
    return folder


def folder_files(folder):
    """`{name: {"sha256", "bytes"}}` of the files of a preset folder (an index entry's)."""
    return {f: {"sha256": sha256_file(os.path.join(folder, f)),
                "bytes": os.path.getsize(os.path.join(folder, f))}
            for f in sorted(os.listdir(folder))}


def write_entry(root, index, name, entry):
    """`index` with `name`'s entry set, written to `root` atomically (presets sorted)."""
    index["presets"][name] = entry
    index["presets"] = dict(sorted(index["presets"].items()))
    atomic_write(os.path.join(root, presets.INDEX_FILE),
                 json.dumps(index, indent=2, sort_keys=True) + "\n")
