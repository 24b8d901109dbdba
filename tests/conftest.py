"""Shared fixtures and contracts.

- `fashion_mnist`: the real test split (skips, naming the install command, where absent);
- `mirror_server`: real HTTP servers on 127.0.0.1 serving a zoo folder, in modes
  that fail the ways real mirrors fail;
- `published_zoo` / `client_root`: tiny presets published into a temporary zoo,
  and a root that holds only its index (so files must come from cache or mirror);
- `check_preset`: the preset contract every published or shipped preset meets.
"""

import functools
import http.server
import json
import os
import shutil
import socket
import threading
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402

from tests.helpers import (  # noqa: E402
    FASHION_MNIST_HINT,
    assert_plain_float_weights,
    build_tiny,
    digits_batch,
    has_fashion_mnist,
    sha256,
)

TINY_PRESETS = {"conv_ae_digits": "conv_ae", "denoising_conv_ae_digits": "denoising_conv_ae",
                "conv_vae_digits": "conv_vae"}
ZOO_ENV = ("KERASAE_ZOO_ROOT", "KERASAE_ZOO_MIRRORS", "KERASAE_CACHE")


@pytest.fixture(scope="session")
def fashion_mnist():
    """`(images float32 in [0, 1], labels)` of the real Fashion-MNIST test split."""
    if not has_fashion_mnist:
        pytest.skip(FASHION_MNIST_HINT)
    from kerasae.data import load_numpy

    return load_numpy("fashion_mnist", "test", source="raw")


@pytest.fixture
def no_zoo_env(monkeypatch):
    """No zoo root, mirror or cache from the environment of whoever runs the tests."""
    for var in ZOO_ENV:
        monkeypatch.delenv(var, raising=False)


# ------------------------------------------------------------------ mirrors
class _MirrorHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 - http.server API
        server = self.server
        server.hits.append(self.path)
        path = self.translate_path(self.path)
        if server.mode == "404" or not os.path.isfile(path):
            self.send_error(404)
            return
        with open(path, "rb") as f:
            data = bytearray(f.read())
        weights = path.endswith("model.weights.h5")
        if server.mode == "flip" and weights:
            data[len(data) // 2] ^= 0x01
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if server.mode == "truncate" and weights:
            data = data[: len(data) // 2]  # then HTTP/1.0 closes the connection
        if server.mode == "trickle" and weights:
            # One byte every 50 ms, each read answered: no socket timeout ever fires.
            for i in range(min(len(data), 400)):  # bounded: the server stops by itself
                self.wfile.write(bytes(data[i:i + 1]))
                self.wfile.flush()
                time.sleep(0.05)
            return
        self.wfile.write(bytes(data))


@pytest.fixture
def mirror_server():
    """`mirror_server(folder, mode)` starts a loopback mirror of `folder`; `(url, server)`.

    Modes: "ok", "404", "flip" (one weights byte flipped), "truncate" (half the
    weights, then the connection closes), "trickle" (the weights one byte every 50
    ms, at most 400 bytes), "refused" (a port nobody listens on; the server is
    `None`). `server.hits` lists the requested paths.
    """
    servers, sockets = [], []

    def start(folder, mode="ok"):
        if mode == "refused":
            s = socket.socket()
            s.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
            sockets.append(s)
            return f"http://127.0.0.1:{s.getsockname()[1]}/zoo", None
        handler = functools.partial(_MirrorHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.mode, server.hits = mode, []
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
    for s in sockets:
        s.close()


# --------------------------------------------------------------------- zoo
@pytest.fixture(scope="session")
def published_zoo(tmp_path_factory):
    """A zoo root with three tiny presets; returns `(root, {name: model})`."""
    from kerasae.zoo import publish

    root = str(tmp_path_factory.mktemp("zoo"))
    models = {}
    for name, builder in TINY_PRESETS.items():
        model = build_tiny(builder)
        if builder == "conv_ae":  # a compiled, trained model: its optimizer state must not ship
            model.compile(optimizer="adam")
            model.fit(digits_batch(), epochs=1, batch_size=32, verbose=0)
        publish(model, name, version=1, description=f"Tiny {builder} for tests.",
                dataset="digits", root=root,
                recipe={"command": f"python -m tests.train_tiny {builder}", "epochs": 1},
                reference_metrics={"mse": {"value": 0.05, "source": "a made-up reference"}})
        models[name] = model
    return root, models


@pytest.fixture
def client_root(published_zoo, tmp_path):
    """A root that holds only the index: files must come from the cache or a mirror."""
    root = tmp_path / "client_root"
    root.mkdir()
    shutil.copy(os.path.join(published_zoo[0], "index.json"), root / "index.json")
    return str(root)


SAFE_SUFFIXES = (".json", ".h5", ".md", ".sh")


def check_preset(root, name):
    """The preset contract: files pinned and present, safe formats, card = metadata."""
    from kerasae import zoo

    assert [p for p in zoo.verify_index(root) if p.startswith(f"{name}@")] == []
    entry = zoo.read_index(root)["presets"][name]
    folder = os.path.join(root, *entry["path"].split("/"))
    # Weights converted from a third party's files are made on the user's machine
    # (tests/presets/test_converted.py), not shipped.
    shipped = {f for f, spec in entry["files"].items() if "converted_from" not in spec}
    assert set(zoo.PRESET_FILES) <= set(entry["files"]) and shipped == set(os.listdir(folder))
    for filename in shipped:
        assert entry["files"][filename]["sha256"] == sha256(os.path.join(folder, filename))
    # Safe formats only: JSON, HDF5 weights (float datasets, no object attributes), text.
    assert all(f.endswith(SAFE_SUFFIXES) for f in entry["files"]), entry["files"]
    if zoo.WEIGHTS_FILE in shipped:
        assert entry["files"][zoo.WEIGHTS_FILE]["bytes"] <= zoo.MAX_WEIGHTS_BYTES
        assert_plain_float_weights(os.path.join(folder, zoo.WEIGHTS_FILE))
    with open(os.path.join(folder, "metadata.json")) as f:
        meta = json.load(f)
    with open(os.path.join(folder, "README.md"), encoding="utf-8") as f:
        card = zoo.card_metrics(f.read())
    measured = meta["evaluation"]["metrics"]
    assert set(card) == set(measured)
    assert card == pytest.approx(measured, rel=1e-5)
    return entry, meta
