"""Quiet by default: no TensorFlow / absl log lines unless the user sets TF_CPP_MIN_LOG_LEVEL."""

import os
import re
import subprocess
import sys

import pytest

from kerasae._util import quiet
from tests.helpers import REPO, run_cli

# Any line of TensorFlow's or absl's logging (native: "I0000 00:00:... file.cc:12]";
# Python absl: "WARNING:absl:..."), written here independently of kerasae's filter.
LOG_LINE = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\S+\s+\d+ \S+:\d+\]|WARNING: All log messages"
                      r"|(INFO|WARNING):(absl|tensorflow):)", re.M)


def _env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERASAE_SET_TF_CPP_MIN_LOG_LEVEL")}
    env.update(extra)
    return env


def test_train_prints_no_tensorflow_or_absl_lines(tmp_path):
    proc = run_cli(["train", "conv_ae", "--dataset", "digits", "--epochs", "1", "--verbose",
                    "2", "--out", tmp_path / "run"], tmp_path, env=_env())
    assert "final:" in proc.stdout
    assert not LOG_LINE.search(proc.stderr), proc.stderr
    assert proc.stderr.strip() == "", proc.stderr


def test_unknown_dataset_is_one_line_without_probing_gcs(tmp_path):
    proc = run_cli(["train", "conv_ae", "--dataset", "does_not_exist", "--out",
                    tmp_path / "run"], tmp_path, env=_env(), check=False)
    assert proc.returncode == 1
    assert "metadata.google.internal" not in proc.stderr
    assert not LOG_LINE.search(proc.stderr), proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "kerasae train: error: Unknown dataset 'does_not_exist'"), proc.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_litert_export_is_quiet_too(tmp_path):
    """tf2onnx sets TF_CPP_MIN_LOG_LEVEL itself on import; LiteRT notes its CPU delegate."""
    pytest.importorskip("ai_edge_litert")
    code = ("import kerasae; from tests.helpers import build_tiny; "
            f"build_tiny('conv_vae').save({str(tmp_path / 'vae.keras')!r})")
    subprocess.run([sys.executable, "-c", code], env=_env(), check=True, timeout=300,
                   cwd=REPO)
    proc = run_cli(["export", tmp_path / "vae.keras", tmp_path / "out", "--formats",
                    "saved_model,onnx,litert", "--quantize", "int8", "--representative",
                    "digits"], tmp_path, env=_env())
    assert "LiteRT int8:" in proc.stdout
    assert proc.stderr.strip() == "", proc.stderr
    loud = run_cli(["export", tmp_path / "vae.keras", tmp_path / "out2", "--formats",
                    "onnx,litert"], tmp_path, env=_env(TF_CPP_MIN_LOG_LEVEL="0"))
    assert "XNNPACK" in loud.stderr  # the user's own level: LiteRT's note comes through


@pytest.mark.slow
def test_the_users_own_level_brings_the_lines_back(tmp_path):
    # TensorFlow logs at least one info line while it starts (oneDNN, CPU features).
    code = "import kerasae, tensorflow; print(tensorflow.constant(2).numpy() * 3)"
    loud = subprocess.run([sys.executable, "-c", code], env=_env(TF_CPP_MIN_LOG_LEVEL="0"),
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    quiet_run = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True,
                               text=True, timeout=300, cwd=tmp_path)
    assert loud.stdout.strip() == quiet_run.stdout.strip() == "6"
    assert LOG_LINE.search(loud.stderr), loud.stderr
    assert quiet_run.stderr.strip() == "", quiet_run.stderr


def test_only_tensorflows_info_and_warning_lines_are_dropped():
    held = (b"WARNING: All log messages before absl::InitializeLog() is called are written "
            b"to STDERR\n"
            b"I0000 00:00:1796123421.706747   22098 port.cc:153] oneDNN custom operations\n"
            b"I0000 00:00:1796123430.281543   22186 cpu_feature_guard.cc:227] optimized\n"
            b"To enable the following instructions: AVX2 FMA, in other operations, rebuild "
            b"TensorFlow with the appropriate compiler flags.\n"
            b"/x/y.py:3: UserWarning: a Python warning\n"
            b"E0000 00:00:1796123430.281543   22186 cuda.cc:10] a real error\n"
            b"W1201 11:09:42.123456   22186 other.cc:9] a warning\n"
            b"E0000 00:00:1796396337.898630   23318 util.cc:131] oneDNN supports DT_INT32 "
            b"only on platforms with AVX-512. Falling back to the default Eigen-based "
            b"implementation if present.\n"
            b"plain output\n")
    assert quiet.filter_native(held) == (
        b"/x/y.py:3: UserWarning: a Python warning\n"
        b"E0000 00:00:1796123430.281543   22186 cuda.cc:10] a real error\n"
        b"plain output\n")


@pytest.mark.slow
def test_a_photo_folder_with_a_truncated_jpeg_and_notes_gives_no_log_lines(tmp_path):
    """The trial's folder: JPEG photos, one cut short, and a README / SVG beside them."""
    import numpy as np
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype="uint8")).save(
            folder / f"p{i}.jpg", quality=90)
    data = (folder / "p0.jpg").read_bytes()
    (folder / "p0.jpg").write_bytes(data[:len(data) // 2])  # "Premature end of JPEG data"
    (folder / "README").write_text("photos\n")
    (folder / "logo.svg").write_text("<svg/>\n")
    train = run_cli(["train", "conv_ae", "--dataset", folder, "--image-size", "32",
                     "--epochs", "1", "--batch-size", "4", "--skip-bad", "--out", tmp_path / "run"],
                    tmp_path,
                    env=_env())
    features = run_cli(["features", "--model", tmp_path / "run" / "model.keras",
                        "--dataset", folder, "--skip-bad", "--out", tmp_path / "f"],
                       tmp_path, env=_env())
    for proc in (train, features):
        assert not LOG_LINE.search(proc.stderr), proc.stderr
        assert not re.search(r"^[EWF]\d{4} ", proc.stdout + proc.stderr, re.M)
    assert "p0.jpg" in train.stdout + train.stderr  # the bad photo is named, not hidden
