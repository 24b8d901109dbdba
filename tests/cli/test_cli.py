"""The `kerasae` command: the zero-setup main job and clear failures."""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from tests.helpers import ENV, photo_crops
from tests.helpers import run_cli as run


@pytest.fixture(scope="module")
def main_job(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("main_job")
    proc = run(["train", "conv_ae", "--dataset", "digits", "--epochs", "3", "--batch-size", "32",
                "--out", "runs/digits", "--verbose", "0"], cwd)
    return cwd / "runs" / "digits", proc


@pytest.mark.slow
def test_main_job_writes_model_picture_and_run_record(main_job):
    out, proc = main_job
    assert "model: runs/digits/model.keras" in proc.stdout
    for name in ("model.keras", "best.keras", "history.csv", "run.json", "reconstructions.png"):
        assert (out / name).is_file(), name
    run_info = json.loads((out / "run.json").read_text())
    assert run_info["builder"] == "conv_ae"
    assert run_info["dataset"]["name"] == "digits" and run_info["dataset"]["examples"] == 1437
    assert run_info["epochs_run"] == 3 and run_info["seed"] == 0
    assert run_info["config"]["input_shape"] == [8, 8, 1]
    assert {"keras", "tensorflow", "kerasae"} <= set(run_info["versions"])


def test_main_job_picture_shows_originals_and_reconstructions(main_job):
    out, _ = main_job
    img = np.asarray(Image.open(out / "reconstructions.png").convert("L"), dtype="float32")
    assert img.shape[0] > 150 and img.shape[1] > 600  # 2 rows x 10 images, titled
    assert img.std() > 20


def test_main_job_model_reloads_safely_and_reconstructs(main_job):
    import keras

    from kerasae.data import load_numpy

    out, _ = main_job
    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    x, _ = load_numpy("digits", "test")
    mse = float(np.mean((model.predict(x, verbose=0) - x) ** 2))
    history = (out / "history.csv").read_text().splitlines()
    header = history[0].split(",")
    last = dict(zip(header, history[-1].split(",")))
    np.testing.assert_allclose(mse, float(last["val_loss"]), rtol=1e-4)


def test_npz_input(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(70, 6, 6)) * 255).astype("uint8")
    np.savez(tmp_path / "mine.npz", x=x)
    run(["train", "stacked_ae", "--dataset", "mine.npz", "--epochs", "1", "--batch-size", "16",
         "--arg", "hidden_units=[8]", "--latent-dim", "2", "--out", "o", "--verbose", "0"],
        tmp_path)
    info = json.loads((tmp_path / "o" / "run.json").read_text())
    assert info["dataset"]["examples"] == 70 and info["config"]["input_shape"] == [6, 6, 1]


def test_bad_builder_name_is_one_clear_line(tmp_path):
    proc = run(["train", "conv_vea", "--dataset", "digits"], tmp_path, check=False)
    assert proc.returncode == 2
    assert "Did you mean 'conv_vae'?" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_list_shows_every_builder(tmp_path):
    import kerasae

    out = run(["list"], tmp_path).stdout
    for name in kerasae.list_builders():
        assert name in out


BLOCK_TF = textwrap.dedent("""
    import importlib.abc, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                raise ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow")
    sys.meta_path.insert(0, Block())
""")


def test_missing_tensorflow_gives_the_install_command(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCK_TF)
    env = dict(ENV, PYTHONPATH=str(tmp_path), KERAS_BACKEND="tensorflow")
    use = "import kerasae\ntry:\n    kerasae.ConvAE\nexcept ImportError as e:\n    print(e)\n"
    proc = subprocess.run([sys.executable, "-c", use], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]  # importing kerasae alone needs no TF
    assert "kerasae needs TensorFlow" in proc.stdout
    assert "pip install 'kerasae[cpu]'" in proc.stdout
    script = os.path.join(os.path.dirname(sys.executable), "kerasae")
    cli = subprocess.run([script, "list"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 1 and "pip install 'kerasae[gpu]'" in cli.stderr
    assert "Traceback" not in cli.stderr


def test_help_version_and_a_typo_need_no_tensorflow(tmp_path):
    """The parser reads its choices from the library without importing TensorFlow: with
    TensorFlow blocked, help, --version and a mistyped command still answer."""
    (tmp_path / "sitecustomize.py").write_text(BLOCK_TF)
    env = dict(ENV, PYTHONPATH=str(tmp_path), KERAS_BACKEND="tensorflow")
    for args, code in ((["--help"], 0), (["train", "--help"], 0), (["export", "--help"], 0),
                       (["zoo", "evaluate", "--help"], 0), (["features", "--help"], 0),
                       (["--version"], 0), (["trian"], 2)):
        proc = run(args, tmp_path, env=env, check=False)
        assert proc.returncode == code, (args, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr, args
    import kerasae

    assert run(["--version"], tmp_path).stdout.strip() == f"kerasae {kerasae.__version__}"
    typo = run(["trian"], tmp_path, check=False).stderr
    assert "invalid choice: 'trian'" in typo and "Did you mean 'train'?" in typo


def test_help_shows_the_defaults_the_parser_uses():
    """`--help` shows each default that says something, read from the parser itself."""
    from kerasae.cli import build_parser

    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    text = " ".join(train.format_help().split())
    for option in ("epochs", "batch_size", "seed", "lr_schedule", "precision", "verbose"):
        default = train.get_default(option)
        flag = "--" + option.replace("_", "-")
        assert re.search(rf"{flag} \S+ .*?\(default: {re.escape(str(default))}\)", text), flag
    assert "--latent-dim LATENT_DIM code size (default: the builder's own)" in text
    assert "(default: None)" not in text and "(default: False)" not in text


@pytest.fixture(scope="module")
def photo_folders(tmp_path_factory):
    """Real photographs of different sizes (cut from the two scikit-learn ships), once in
    class folders and once flat."""
    root = tmp_path_factory.mktemp("photos")
    for i, crop in enumerate(photo_crops(160, seed=1, sizes=(50, 140))):
        cls = ("china", "flower")[i % 2]
        for folder in (root / "classes" / cls, root / "flat"):
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(crop).save(folder / f"{cls}{i:03d}.{'jpg' if i % 3 else 'png'}")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("builder", ["conv_ae", "conv_vae"])
@pytest.mark.parametrize("layout", ["classes", "flat"])
def test_train_on_a_folder_of_photos_of_different_sizes(photo_folders, tmp_path, builder, layout):
    run(["train", builder, "--dataset", photo_folders / layout, "--image-size", "64",
         "--epochs", "2", "--batch-size", "32", "--arg", "filters=[8,16]", "--latent-dim", "8",
         "--out", "out", "--verbose", "0"], tmp_path)
    info = json.loads((tmp_path / "out" / "run.json").read_text())
    assert info["dataset"]["route"] == "folder" and info["dataset"]["examples"] == 160
    assert info["dataset"]["image_size"] == [64, 64] and info["config"]["input_shape"] == [64, 64, 3]
    assert info["epochs_run"] == 2
    with Image.open(tmp_path / "out" / "reconstructions.png") as png:
        assert png.size[0] > 600


def test_an_interrupt_a_library_turned_into_another_error_is_still_an_interrupt(
        monkeypatch, capsys):
    """SIGTERM landing inside TensorFlow while it traces a tf.data function made it raise
    an AttributeError of its own while unwinding: the command still stops as interrupted
    (exit 143, one line), not as a bug."""
    import kerasae.cli as cli
    from kerasae.training.interrupt import Terminated

    def run(args):
        try:
            raise Terminated("stopped by SIGTERM")
        except KeyboardInterrupt:
            raise AttributeError("'list' object has no attribute '_type_spec'") from None

    monkeypatch.setattr(cli, "_run", run)
    assert cli.main(["list"]) == 143
    assert capsys.readouterr().err.strip().endswith("kerasae list: interrupted: stopped by SIGTERM")
