"""The README's Python example runs as written."""

import pathlib
import re


def test_python_example_runs(tmp_path, monkeypatch):
    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(block, "README.md", "exec"), scope)
    assert scope["z_mean"].shape == (360, 8)
    assert tuple(scope["images"].shape) == (16, 8, 8, 1)
    assert (tmp_path / "runs" / "vae" / "run.json").exists()
