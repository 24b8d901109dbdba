"""Packaging: sdist and wheel carry the zoo; an installed wheel loads presets offline."""

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile

import pytest
import tomllib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pyproject():
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["tool"]["setuptools"]


def test_every_subpackage_is_listed_for_the_wheel():
    listed = set(_pyproject()["packages"])
    on_disk = set()
    for folder, dirs, files in os.walk(os.path.join(REPO, "kerasae")):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        if any(f.endswith(".py") for f in files):
            on_disk.add(os.path.relpath(folder, REPO).replace(os.sep, "."))
    missing = sorted(on_disk - listed)
    assert not missing, (
        f"Sub-packages missing from the wheel: add {', '.join(map(repr, missing))} to "
        "[tool.setuptools] packages in pyproject.toml (an explicit list, so that "
        "kerasae._zoo can be mapped from zoo/)."
    )
    stale = sorted(p for p in listed - on_disk if p != "kerasae._zoo")
    assert not stale, f"pyproject.toml lists packages that do not exist: {stale}"


def test_zoo_folder_is_mapped_into_the_package():
    config = _pyproject()
    assert config["package-dir"]["kerasae._zoo"] == "zoo"
    assert "kerasae._zoo" in config["packages"]
    zoo_dir = os.path.join(REPO, "zoo")
    shipped = set()
    for pattern in config["package-data"]["kerasae._zoo"]:
        shipped.update(p for p in glob.glob(os.path.join(zoo_dir, pattern)) if os.path.isfile(p))
    published = {os.path.join(d, f) for d, dirs, fs in os.walk(zoo_dir) for f in fs
                 if not f.startswith(".") and not any(
                     part.startswith(".") for part in os.path.relpath(d, zoo_dir).split(os.sep)
                     if part != ".")}
    assert published <= shipped, f"zoo files left out of the wheel: {sorted(published - shipped)}"


def _run(cmd, **kwargs):
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, (
        f"{' '.join(map(str, cmd))} failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
        f"{result.stderr[-3000:]}"
    )
    return result


def _source_copy(dest):
    """The files an sdist is built from, copied so the build never touches the checkout."""
    if not os.path.isfile(os.path.join(REPO, "README.md")):
        pytest.fail("README.md is missing, and pyproject.toml's readme= makes every build fail.")
    os.makedirs(dest)
    for name in os.listdir(REPO):
        path = os.path.join(REPO, name)
        if name in ("pyproject.toml", "README.md", "MANIFEST.in") or name.startswith("LICENSE"):
            shutil.copy(path, dest)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
    shutil.copytree(os.path.join(REPO, "kerasae"), os.path.join(dest, "kerasae"), ignore=ignore)
    zoo_src = os.path.join(REPO, "zoo")
    if os.path.isdir(zoo_src):
        shutil.copytree(zoo_src, os.path.join(dest, "zoo"), ignore=ignore)
    else:
        os.makedirs(os.path.join(dest, "zoo"))


def _sha(data):
    return hashlib.sha256(data).hexdigest()


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_loads_presets_without_network(tmp_path):
    from kerasae import zoo

    src, dist = str(tmp_path / "src"), str(tmp_path / "dist")
    _source_copy(src)
    src_zoo = os.path.join(src, "zoo")
    index = zoo.read_index(src_zoo)
    # Files converted from upstream checkpoints (tae_flux2's weights) are not shipped.
    expected = {f"{e['path']}/{f}": spec["sha256"]
                for e in index["presets"].values() for f, spec in e["files"].items()
                if "converted_from" not in spec}

    # sdist first, then the wheel from the sdist (python -m build's default), without
    # build isolation so no network is needed.
    _run([sys.executable, "-m", "build", "--no-isolation", "--skip-dependency-check",
          "-o", dist, src])
    (sdist,), (wheel,) = glob.glob(f"{dist}/*.tar.gz"), glob.glob(f"{dist}/*.whl")
    with tarfile.open(sdist) as tar:
        top = tar.getnames()[0].split("/")[0]
        for rel, sha in list(expected.items()) + [("index.json", None)]:
            data = tar.extractfile(f"{top}/zoo/{rel}").read()
            assert sha is None or _sha(data) == sha, rel
    with zipfile.ZipFile(wheel) as zf:
        for rel, sha in expected.items():
            assert _sha(zf.read(f"kerasae/_zoo/{rel}")) == sha, rel
        assert json.loads(zf.read("kerasae/_zoo/index.json")) == index
        assert not [n for n in zf.namelist() if n.endswith((".pkl", ".pickle", ".part"))]

    venv = str(tmp_path / "venv")
    _run([sys.executable, "-m", "venv", venv])
    python = os.path.join(venv, "bin", "python")
    # The dependencies (TensorFlow, ...) come from the environment running the tests,
    # whatever it is (a venv or not), through a .pth file; its .pth files (the
    # checkout's editable install among them) are not read, so the venv's kerasae is
    # the wheel's.
    venv_site = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
                     ).stdout.strip()
    import site

    with open(os.path.join(venv_site, "parent-environment.pth"), "w") as f:
        f.write("\n".join(site.getsitepackages()) + "\n")
    _run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", wheel])

    elsewhere, cache = tmp_path / "elsewhere", tmp_path / "cache"
    elsewhere.mkdir()
    (elsewhere / "check.py").write_text(textwrap.dedent("""
        import json, socket, sys

        def no_network(*args, **kwargs):
            raise OSError("network is disabled in this check")

        socket.socket.connect = socket.socket.connect_ex = no_network
        import kerasae
        from kerasae import zoo

        loaded, refused = {}, {}
        for name in zoo.list_presets():
            entry = zoo.read_index()["presets"][name]
            if any("converted_from" in spec for spec in entry["files"].values()):
                try:  # made from upstream files: offline, a clear refusal
                    zoo.load_model(name)
                except zoo.PresetNotAvailableError as e:
                    refused[name] = str(e).splitlines()[0]
                continue
            model = zoo.load_model(name)
            builder = kerasae.models.registry.model_builder(model.builder_name)
            again = builder(weights=name)  # the builders' weights="<preset>" route
            loaded[name] = [model.builder_name, model.count_params(), again.count_params()]
        print(json.dumps({"file": kerasae.__file__, "shipped": zoo.shipped_root(),
                          "problems": zoo.verify_index(), "loaded": loaded,
                          "refused": refused}))
    """))
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", zoo.ROOT_ENV, zoo.MIRRORS_ENV)}
    env.update({zoo.MIRRORS_ENV: "", zoo.CACHE_ENV: str(cache), "TF_CPP_MIN_LOG_LEVEL": "2",
                "PYTHONNOUSERSITE": "1"})
    out = _run([python, "check.py"], cwd=elsewhere, env=env).stdout.strip().splitlines()[-1]
    report = json.loads(out)
    site = os.path.join(venv, "lib")
    assert report["file"].startswith(site), f"kerasae was imported from {report['file']}"
    assert report["shipped"].startswith(site) and report["shipped"].endswith("_zoo")
    assert report["problems"] == []
    assert set(report["loaded"]) | set(report["refused"]) == set(index["presets"])
    assert list(report["refused"]) == ["tae_flux2"]  # offline: nothing to convert from
    assert "could not be fetched; nothing was cached" in report["refused"]["tae_flux2"]
    for name, (builder, params, params_again) in report["loaded"].items():
        entry = index["presets"][name]
        assert builder == entry["builder"] and params == params_again == entry["params"]
    assert not cache.exists() or not any(cache.rglob("*"))  # served from the wheel alone

    listing = _run([os.path.join(venv, "bin", "kerasae"), "zoo", "list"], cwd=elsewhere,
                   env=env).stdout
    assert all(name in listing for name in index["presets"])
