"""Nothing lost, nothing let in: --force, NaN, killed saves, slow mirrors, hostile indexes,
killed checkpoints, one-line CLI errors. Real processes are killed with SIGKILL; real
servers run on 127.0.0.1. (Crafted .kae files: tests/uses/test_kae_fuzz.py.)"""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

from kerasae import presets
from kerasae.cli import main as cli_main
from tests.helpers import ENV, default_child_signals, files_under, run_cli, run_json, sha256

TINY = ["--arg", "filters=[8,16]", "--latent-dim", "8", "--batch-size", "64"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished training run (model.keras, best.keras, checkpoints, history, logs)."""
    cwd = tmp_path_factory.mktemp("run")
    run_cli(["train", "conv_ae", "--dataset", "digits", "--epochs", "2", *TINY, "--out", "run",
             "--verbose", "0"], cwd)
    return cwd / "run"


def snapshot(folder):
    return {rel: sha256(os.path.join(folder, rel)) for rel in files_under(folder)}


# ------------------------------------------------------------------ 1. --force
@pytest.mark.slow
def test_export_force_never_deletes_a_folder_that_is_not_an_export(run_dir, tmp_path, capsys):
    (run_dir / "notes.txt").write_text("mine")
    before = snapshot(run_dir)
    model = str(run_dir / "model.keras")
    assert cli_main(["export", model, str(run_dir), "--force", "--formats", "onnx"]) == 1
    err = capsys.readouterr().err
    assert "is not a kerasae export" in err and "Pick another output folder" in err
    assert snapshot(run_dir) == before  # the run, its checkpoints and your files are there
    # An earlier export, and an empty folder, are replaced.
    out = tmp_path / "export"
    assert cli_main(["export", model, str(out), "--formats", "onnx"]) == 0
    assert cli_main(["export", model, str(out), "--formats", "onnx", "--force"]) == 0
    (tmp_path / "empty").mkdir()
    assert cli_main(["export", model, str(tmp_path / "empty"), "--formats", "onnx",
                     "--force"]) == 0


# ---------------------------------------------------------------------- 3. NaN
@pytest.mark.slow
def test_nan_learning_rate_and_a_diverging_run_save_nothing_non_finite(tmp_path):
    import keras

    import kerasae
    from kerasae.training.loop import TrainingDiverged

    proc = run_cli(["train", "conv_ae", "--dataset", "digits", "--lr", "nan", *TINY, "--out",
                    "nan"], tmp_path, check=False)
    assert proc.returncode == 1 and "learning_rate` must be a finite number > 0" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "nan").exists()
    with pytest.raises(TrainingDiverged, match=r"The loss became (nan|inf) in epoch 1.*--lr"):
        kerasae.fit("conv_ae", "digits", epochs=3, batch_size=64, strategy="one", verbose=0,
                    optimizer=keras.optimizers.SGD(learning_rate=1e12), out_dir=str(tmp_path / "d"),
                    builder_kwargs=dict(filters=[8, 16], latent_dim=8))
    for name in ("model.keras", "best.keras"):
        assert not (tmp_path / "d" / name).exists()
    assert not list((tmp_path / "d" / "checkpoints" / "worker-0").glob("ckpt-*"))


# --------------------------------------------------------- 4. saves killed midway
KILL_IN_SAVE = r"""
import os, signal, sys
import keras
from kerasae.models.base import Autoencoder
from kerasae.cli import main

def dying_save(self, path, *args, **kwargs):
    with open(path, "wb") as f:
        f.write(b"PK\x03\x04 half a zip")
        f.flush()
        os.fsync(f.fileno())
    os.kill(os.getpid(), signal.SIGKILL)

Autoencoder.save = dying_save
main(sys.argv[1:])
"""


@pytest.mark.slow
def test_a_save_killed_midway_leaves_the_previous_model_intact(run_dir, tmp_path):
    import keras

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    before = {n: sha256(run / n) for n in ("model.keras", "best.keras")}
    script = tmp_path / "kill.py"
    script.write_text(KILL_IN_SAVE)
    proc = subprocess.run([sys.executable, str(script), "train", "conv_ae", "--dataset", "digits",
                           "--epochs", "3", *TINY, "--out", str(run), "--verbose", "0"],
                          env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL
    assert {n: sha256(run / n) for n in before} == before
    keras.saving.load_model(run / "model.keras", safe_mode=True)  # still a whole model
    leftovers = [n for n in os.listdir(run) if n.startswith((".model.keras.", ".best.keras."))]
    assert leftovers, "the half-written file went to a temporary name"


# -------------------------------------------------------- 5. download deadline
def test_a_trickling_mirror_is_dropped_at_its_deadline_for_the_next(
        client_root, mirror_server, published_zoo, tmp_path, monkeypatch):
    from kerasae.presets import download

    monkeypatch.setattr(download, "DEADLINE_FLOOR", 1.0)
    slow, _ = mirror_server(published_zoo[0], "trickle")
    good, _ = mirror_server(published_zoo[0], "ok")
    cache = str(tmp_path / "cache")
    import time

    start = time.monotonic()
    presets.pull("conv_ae_digits", mirrors=[slow, good], cache_dir=cache, root=client_root)
    assert time.monotonic() - start < 20
    entry = presets.read_index(client_root)["presets"]["conv_ae_digits"]
    folder = os.path.join(cache, "conv_ae_digits", "v1")
    assert sorted(os.listdir(folder)) == sorted(entry["files"])
    with pytest.raises(presets.PresetNotAvailableError, match=r"too slow.*deadline of 1 s"):
        presets.pull("conv_ae_digits", mirrors=[slow], cache_dir=str(tmp_path / "c2"),
                     root=client_root)
    umask = os.umask(0)
    os.umask(umask)
    for name in os.listdir(folder):  # cached files get the umask's mode, not 0600
        assert os.stat(os.path.join(folder, name)).st_mode & 0o777 == 0o666 & ~umask


# --------------------------------------------------------- 6. index paths
@pytest.mark.parametrize("path, filename", [("../../outside", "config.json"),
                                            ("/abs/olute", "config.json"),
                                            ("ok/v1", "../../escape.json"),
                                            ("ok/v1", "sub/dir.json")])
def test_an_index_with_escaping_paths_is_refused_whole(published_zoo, tmp_path, path, filename,
                                                       mirror_server):
    index = json.loads(open(os.path.join(published_zoo[0], "index.json")).read())
    entry = index["presets"]["conv_ae_digits"]
    entry["path"] = path
    entry["files"] = {filename: entry["files"]["config.json"]}
    root = tmp_path / "evil"
    root.mkdir()
    (root / "index.json").write_text(json.dumps(index))
    url, _ = mirror_server(published_zoo[0], "ok")
    with pytest.raises(ValueError, match="could reach outside the zoo folder"):
        presets.pull("conv_ae_digits", mirrors=[url], cache_dir=str(tmp_path / "cache"),
                     root=str(root))
    assert not (tmp_path / "cache").exists() and not (tmp_path / "escape.json").exists()
    assert cli_main(["zoo", "list", "--root", str(root)]) == 1


# --------------------------------------------- 7. checkpoint and history together
KILL_AFTER_CHECKPOINT = r"""
import os, signal, sys
from kerasae.training import checkpoints
from kerasae.cli import main

save = checkpoints.RunCheckpoints.save

def save_then_die(self, epoch, history):
    save(self, epoch, history)
    if epoch == 1:  # the second epoch's checkpoint is on disk: die before anything else
        os.kill(os.getpid(), signal.SIGKILL)

checkpoints.RunCheckpoints.save = save_then_die
main(sys.argv[1:])
"""


@pytest.mark.slow
def test_a_kill_right_after_a_checkpoint_loses_no_history(tmp_path):
    script = tmp_path / "kill.py"
    script.write_text(KILL_AFTER_CHECKPOINT)
    args = ["train", "conv_ae", "--dataset", "digits", "--epochs", "3", *TINY, "--out", "run",
            "--verbose", "2"]
    proc = subprocess.run([sys.executable, str(script), *args], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL
    rerun = run_cli(args, tmp_path)
    assert "epoch 2 of 3 done" in rerun.stdout
    info = run_json(tmp_path / "run")
    assert info["resumed_from_epoch"] == 2 and info["epochs_run"] == 3
    rows = (tmp_path / "run" / "history.csv").read_text().strip().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["0", "1", "2"]
    assert info["final"]["epoch"] == 2


# ------------------------------------------------------------ 8. the CLI path
@pytest.mark.slow
def test_a_changed_model_in_a_run_directory_is_one_line_and_touches_nothing(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    before = snapshot(run)
    proc = run_cli(["train", "conv_ae", "--dataset", "digits", "--epochs", "3", "--arg",
                    "filters=[8,16]", "--latent-dim", "4", "--batch-size", "64", "--out", "run"],
                   tmp_path, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "holds another run (config latent_dim: 8 there, 4 now)" in proc.stderr
    assert "--no-resume" in proc.stderr and snapshot(run) == before
    other_data = run_cli(["train", "conv_ae", "--dataset", "digits", "--split", "train[:50%]",
                          "--epochs", "3", *TINY, "--out", "run"], tmp_path, check=False)
    assert other_data.returncode == 1 and "dataset split" in other_data.stderr


@pytest.mark.slow
def test_a_read_only_output_folder_is_one_line_and_nothing_is_written(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)],
                             capture_output=True)
    if mounted.returncode:
        pytest.skip("needs a read-only mount (mount -t tmpfs -o ro), which this machine refuses")
    try:
        proc = run_cli(["train", "conv_ae", "--dataset", "digits", *TINY, "--out",
                        str(ro / "run")], tmp_path, check=False)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert "cannot be written (Read-only file system" in proc.stderr
        assert os.listdir(ro) == []
        out = run_cli(["features", "--model", "nowhere.keras", "--out", str(ro / "f")],
                      tmp_path, check=False)
        assert out.returncode == 1 and "Traceback" not in out.stderr
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True)


@pytest.mark.slow
def test_ctrl_c_says_how_to_resume_and_exits_130(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "kerasae.cli", "train", "conv_ae", "--dataset",
                             "digits", "--epochs", "500", *TINY, "--out", "run", "--verbose", "0"],
                            cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=default_child_signals)
    import time

    deadline = time.time() + 300
    while not (tmp_path / "run" / "checkpoints" / "worker-0" / "checkpoint").exists():
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    # It stopped between two compiled calls and names the checkpoint it kept: the one on disk.
    line = err.strip().splitlines()[-1]
    assert line.startswith("kerasae train: interrupted: Training stopped by Ctrl-C in epoch "), err
    kept = int(line.split("keeps the checkpoint of epoch ")[1].split(":")[0])
    ckpts = tmp_path / "run" / "checkpoints" / "worker-0"
    assert max(int(p.name[5:-6]) for p in ckpts.glob("ckpt-*.index")) == kept
    assert len((tmp_path / "run" / "history.csv").read_text().strip().splitlines()) == kept + 1


@pytest.mark.slow
def test_debug_shows_the_traceback(tmp_path):
    proc = run_cli(["--debug", "train", "conv_ae", "--dataset", "nowhere/"], tmp_path, check=False)
    assert proc.returncode == 1 and "Traceback" in proc.stderr
    plain = run_cli(["train", "conv_ae", "--dataset", "nowhere/"], tmp_path, check=False)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    assert textwrap.dedent(plain.stderr).strip().splitlines()[-1].startswith(
        "kerasae train: error: No such file or folder: 'nowhere/'")


def test_leftovers_of_killed_pulls_and_exports_are_cleaned_when_old(
        client_root, mirror_server, published_zoo, run_dir, tmp_path):
    import time

    cache = tmp_path / "cache"
    folder = cache / "conv_ae_digits" / "v1"
    folder.mkdir(parents=True)
    old, young = folder / ".model.weights.h5.abc.part", folder / ".config.json.def.part"
    old.write_bytes(b"half")
    young.write_bytes(b"half")
    stale = time.time() - 2 * 3600
    os.utime(old, (stale, stale))
    url, _ = mirror_server(published_zoo[0], "ok")
    presets.pull("conv_ae_digits", mirrors=[url], cache_dir=str(cache), root=client_root)
    assert not old.exists() and young.exists()  # a younger one may be another pull's
    staging = tmp_path / ".export.tmp-killed"
    staging.mkdir()
    (staging / "encoder.onnx").write_bytes(b"half")
    os.utime(staging, (stale, stale))
    assert cli_main(["export", str(run_dir / "model.keras"), str(tmp_path / "export"),
                     "--formats", "onnx"]) == 0
    assert not staging.exists()
