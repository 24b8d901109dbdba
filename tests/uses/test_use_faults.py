"""A use that fills the disk says so in one line naming --out, and leaves nothing behind.

The full disk is real: a 64 KiB tmpfs mounted in a mount namespace of its own (see
`tests/export/test_export_faults.py`), skipped where the kernel does not allow it.
"""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.export.test_export_faults import TMPFS, _own_mount_namespace
from tests.helpers import ENV, REPO


@pytest.mark.slow
@pytest.mark.parametrize("use", ["denoise", "compress"])
def test_a_use_on_a_full_disk_is_one_line_naming_its_output(tmp_path, use):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(2)
    for i in range(200):  # denoised.npy alone is 627 KB, ten times the disk
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(imgs / f"{i}.png")
    small = tmp_path / "small"
    small.mkdir()
    unshare = _own_mount_namespace(small)
    if unshare is None:
        pytest.skip("needs unshare with user and mount namespaces (a tmpfs without root)")
    model = "denoising_conv_ae_fashion_mnist" if use == "denoise" else "conv_ae_fashion_mnist"
    extra = "--no-sweep --no-jpeg" if use == "compress" else ""
    script = ('mount -t tmpfs -o size=$3 tmpfs "$0" || exit 99; "$1" -m kerasae.cli $4 '
              f'--model {model} --images "$2" --out "$0/out" {extra}; rc=$?; '
              'echo "left:$(ls -A "$0")"; exit $rc')
    proc = subprocess.run([unshare, "--user", "--map-root-user", "--mount", "sh", "-c", script,
                           str(small), sys.executable, str(imgs), TMPFS, use], env=ENV,
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    err = proc.stderr.strip()
    assert proc.returncode == 1, proc.stdout[-2000:] + err[-3000:]
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith(f"kerasae {use}: error: The disk is full: "
                          f"{str(small / 'out')!r} was not written"), err
    assert ".tmp" not in err
    assert proc.stdout.strip().splitlines()[-1] == "left:"
