"""`kerasae zoo list | info | pull | evaluate` in process, against the published tiny zoo."""

import json
import os

import pytest

from kerasae.cli import main as cli_main
from tests.conftest import TINY_PRESETS
from tests.presets.test_store import _assert_verified_cache

pytestmark = pytest.mark.usefixtures("no_zoo_env")


@pytest.fixture
def serve(mirror_server, published_zoo):
    return lambda mode="ok": mirror_server(published_zoo[0], mode)


def test_cli_list_info_pull_evaluate(published_zoo, client_root, serve, tmp_path, capsys):
    root = published_zoo[0]
    url, _ = serve("ok")
    assert cli_main(["zoo", "list", "--root", root]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in TINY_PRESETS)
    assert cli_main(["zoo", "info", "conv_vae_digits", "--root", root]) == 0
    out = capsys.readouterr().out
    assert "conv_vae_digits version 1" in out and "nll_is" in out and "[shipped]" in out
    cache = str(tmp_path / "cache")
    assert cli_main(["zoo", "pull", "conv_ae_digits", "--root", client_root,
                     "--cache-dir", cache, "--mirror", url]) == 0
    _assert_verified_cache(cache, client_root, "conv_ae_digits")
    out_json = str(tmp_path / "eval.json")
    assert cli_main(["zoo", "evaluate", "conv_vae_digits", "--root", root,
                     "--json", out_json]) == 0
    printed = capsys.readouterr().out
    result = json.load(open(out_json))
    meta = json.load(open(os.path.join(root, "conv_vae_digits", "v1", "metadata.json")))
    assert result["examples"] == 360 and result["split"] == "test"
    assert result["metrics"] == pytest.approx(meta["evaluation"]["metrics"], rel=1e-6)
    assert "nll_is" in printed and "neg_elbo" in printed


def test_cli_errors_are_one_line_messages(client_root, tmp_path, capsys):
    assert cli_main(["zoo", "pull", "conv_ae_digits", "--root", client_root,
                     "--cache-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "kerasae zoo: error:" in err and "could not be fetched" not in err
    assert cli_main(["zoo", "info", "nope", "--root", client_root]) == 1
    assert "Unknown preset 'nope'" in capsys.readouterr().err
