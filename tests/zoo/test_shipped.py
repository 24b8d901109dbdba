"""The zoo shipped in the repository (`zoo/`): required presets, pinned files, reproducible cards."""

import json
import os

import pytest

from kerasae import zoo
from tests.conftest import check_preset
from tests.helpers import needs_fashion_mnist

SHIPPED_ROOT = zoo.shipped_root()
SHIPPED = zoo.list_presets(SHIPPED_ROOT) if SHIPPED_ROOT else []


def _data_kind(name):
    entry = zoo.read_index(SHIPPED_ROOT)["presets"][name]
    with open(os.path.join(SHIPPED_ROOT, *entry["path"].split("/"), "metadata.json")) as f:
        return json.load(f)["dataset"].get("kind")


def _is_converted(name):
    entry = zoo.read_index(SHIPPED_ROOT)["presets"][name]
    return any("converted_from" in spec for spec in entry["files"].values())


# A series preset's card needs its series, which kerasae does not ship:
# tests/zoo/test_series_preset.py reproduces it from the NAB file. A converted preset's
# card is measured by a benchmark: tests/benchmarks/test_photos.py reproduces it. The
# colorizer's ("photos") is measured by kerasae.benchmarks.colorize: tests/uses/
# test_colorize.py checks it on the held-out scikit-image photos.
IMAGE_PRESETS = [name for name in SHIPPED if _data_kind(name) is None
                 and not _is_converted(name)]


# name: (builder, [(metric, bound, "max" or "min"), ...]) -- issue 5's floors; the PCA
# figures are PCA at the preset's code size, fitted on train, measured on test.
REQUIRED_PRESETS = {
    "stacked_ae_fashion_mnist": ("stacked_ae", [("mse", 0.01037, "max")]),  # PCA k=64
    "sparse_stacked_ae_fashion_mnist": ("sparse_stacked_ae", [("mse", 0.01037, "max")]),
    "conv_ae_fashion_mnist_small": ("conv_ae", [("mse", 0.02045, "max")]),  # PCA k=16
    "conv_ae_fashion_mnist": ("conv_ae", [("mse", 0.0050, "max")]),
    "denoising_conv_ae_fashion_mnist": ("denoising_conv_ae", [("psnr_denoised", 23.5, "min")]),
    "conv_vae_fashion_mnist": ("conv_vae", [("neg_elbo", 250.0, "max"),
                                            ("mse", 0.01514, "max")]),  # PCA k=32
}


@pytest.mark.parametrize("name", sorted(REQUIRED_PRESETS))
def test_shipped_zoo_has_the_required_presets_and_their_cards_meet_the_floors(name):
    builder, floors = REQUIRED_PRESETS[name]
    assert name in SHIPPED, f"{name} is not in the shipped zoo ({SHIPPED_ROOT})"
    entry = zoo.read_index(SHIPPED_ROOT)["presets"][name]
    assert entry["builder"] == builder
    assert (entry["dataset"], entry["split"], entry["eval_split"]) == (
        "fashion_mnist", "train", "test")
    with open(os.path.join(SHIPPED_ROOT, *entry["path"].split("/"), "metadata.json")) as f:
        metrics = json.load(f)["evaluation"]["metrics"]
    for metric, bound, kind in floors:
        value = metrics[metric]
        assert value <= bound if kind == "max" else value >= bound, (name, metric, value, bound)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_preset_files_match_the_index(name):
    check_preset(SHIPPED_ROOT, name)


@pytest.mark.slow
@needs_fashion_mnist
@pytest.mark.parametrize("name", IMAGE_PRESETS)
def test_shipped_preset_reproduces_its_card(name, tmp_path):
    from kerasae.zoo.evaluate import evaluate_preset

    # Empty cache and no mirrors: the numbers come from the shipped files.
    result = evaluate_preset(name, root=SHIPPED_ROOT, cache_dir=str(tmp_path), mirrors=[])
    preset = zoo.get_preset(name, root=SHIPPED_ROOT, cache_dir=str(tmp_path), mirrors=[])
    meta = preset.metadata()
    recorded = meta["evaluation"]
    assert result["split"] == recorded["split"] and result["examples"] == recorded["examples"]
    assert result["metrics"] == pytest.approx(recorded["metrics"], rel=0.01)
    with open(preset.file("README.md"), encoding="utf-8") as f:
        card = zoo.card_metrics(f.read())
    assert card == pytest.approx(recorded["metrics"], rel=1e-5)


def _recipe_lines(name):
    entry = zoo.read_index(SHIPPED_ROOT)["presets"][name]
    path = os.path.join(SHIPPED_ROOT, *entry["path"].split("/"), "train.sh")
    with open(path) as f:
        return [line.strip() for line in f if line.strip().startswith("kerasae train ")]


@pytest.mark.parametrize("name", [n for n in IMAGE_PRESETS if _recipe_lines(n)])
def test_every_train_line_of_a_recipe_rebuilds_the_published_config(name):
    # Each `kerasae train` line (a first run, then a resume with more epochs) must build
    # the model the preset's config.json holds: a builder default that changed since
    # publishing would make the line train another model, or refuse to resume.
    import shlex

    import kerasae
    from kerasae.cli import build_parser
    from kerasae.cli.args import parse_kwargs

    entry = zoo.read_index(SHIPPED_ROOT)["presets"][name]
    with open(os.path.join(SHIPPED_ROOT, *entry["path"].split("/"), "config.json")) as f:
        published = json.load(f)
    published_kwargs = dict(published["kwargs"], input_shape=tuple(published["kwargs"]["input_shape"]))
    for line in _recipe_lines(name):
        args = build_parser().parse_args(shlex.split(line)[1:])
        kwargs = parse_kwargs(args.arg)
        if args.latent_dim is not None:
            kwargs["latent_dim"] = args.latent_dim
        kwargs["input_shape"] = tuple(published["kwargs"]["input_shape"])
        model = kerasae.build(args.builder, **kwargs)
        assert args.builder == published["builder"]
        assert _layout(model) == _layout(kerasae.build(args.builder, **published_kwargs)), line


def _layout(model):
    """Each sub-model's layers as (class, config without names), and the corruption's."""
    def of(layer):
        config = {k: v for k, v in layer.get_config().items() if k != "name"}
        return type(layer).__name__, json.dumps(config, sort_keys=True, default=str)

    parts = [model.encoder, model.decoder]
    layers = [of(layer) for part in parts for layer in part.layers]
    return layers + ([of(model.corruption)] if model.corruption is not None else [])


@pytest.mark.parametrize("name", [n for n in IMAGE_PRESETS if _recipe_lines(n)])
def test_zoo_info_shows_todays_recipe_beside_a_command_that_defaults_outgrew(name, capsys):
    """`kerasae zoo info` is where a user copies the training command from: where the
    command as run (metadata.json) lacks flags today's defaults need, train.sh's lines
    are shown beside it; where they agree, only the command."""
    from kerasae.cli import main

    entry = zoo.read_index(SHIPPED_ROOT)["presets"][name]
    with open(os.path.join(SHIPPED_ROOT, *entry["path"].split("/"), "metadata.json")) as f:
        ran = json.load(f)["recipe"]["command"]
    assert main(["zoo", "info", name, "--root", SHIPPED_ROOT]) == 0
    out = capsys.readouterr().out
    today = " && ".join(_recipe_lines(name))
    assert f"  trained   {ran}\n" in out
    if today == ran:
        assert "as run;" not in out
    else:
        assert f"(as run; with today's defaults: {today})" in out
