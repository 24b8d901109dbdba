"""The Hugging Face cache as kerasae writes it for `hf://` presets: every path decided here.

The layout is `huggingface_hub`'s, so its tools (`hf cache ls`, `scan_cache_dir`)
see kerasae's downloads: `{cache}/models--{owner}--{name}/blobs/{sha256}`,
`snapshots/{commit}/{file}` (a relative symlink to its blob, a copy where symlinks
fail) and `refs/{revision}` (the commit of a branch or tag). Unlike
`hf_hub_download`, nothing here is named after what a server said: paths are built
from parts checked before (the repo id, a 40-hex commit, a git ref name, plain file
names of the manifest, sha256 digests computed here), and each is checked by its
real path to lie inside the repo's cache folder before anything is written or
deleted there. Files arrive in a staging folder inside the repo folder and are
installed together once all are verified (blobs, then the snapshot, then the ref),
so a snapshot never holds an unverified file or a part of a preset.
"""

import contextlib
import os
import re
import shutil
import tempfile

from kerasae._util.errors import NotWritable
from kerasae._util.files import atomic_write, remove_stale, sha256_file

COMMIT = re.compile(r"[0-9a-f]{40}")
_REF_BYTES = 256  # a ref file holds one commit; anything longer is not one


def cache_root():
    """The Hub cache folder, from the environment now (`huggingface_hub` reads it once, at
    import): `HF_HUB_CACHE`, else `HUGGINGFACE_HUB_CACHE`, else `$HF_HOME/hub`, where
    `HF_HOME` defaults to `$XDG_CACHE_HOME/huggingface` (`~/.cache/huggingface`)."""
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "huggingface")
    path = (os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
            or os.path.join(home, "hub"))
    return os.path.abspath(os.path.expandvars(os.path.expanduser(path)))


def _under(real, base):
    """Whether the resolved path `real` is `base` or below it."""
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


class RepoCache:
    """One hub repo's folder of the Hugging Face cache."""

    def __init__(self, repo_id):
        self.root = cache_root()
        self.folder = os.path.join(self.root, "models--" + repo_id.replace("/", "--"))

    def entry(self, commit, filename):
        return os.path.join(self.folder, "snapshots", commit, filename)

    def _real(self, *parts):
        """Where `folder/parts...` must resolve to: the repo folder's real path (inside the
        cache's) with `parts` appended as they are, so a link at any level below fails."""
        folder = os.path.realpath(self.folder)
        if not _under(folder, os.path.realpath(self.root)):
            return None
        return os.path.join(folder, *parts)

    def _inside(self, path, *parts):
        base = self._real(*parts)
        return base is not None and _under(os.path.realpath(path), base)

    def _mkdirs(self, *parts):
        """Makes `folder/parts...` one level at a time, refusing any level (a symlink, say)
        that leads elsewhere, so nothing is ever created through one."""
        os.makedirs(self.root, exist_ok=True)
        for depth in range(len(parts) + 1):
            path = os.path.join(self.folder, *parts[:depth])
            with contextlib.suppress(FileExistsError):
                os.mkdir(path)
            if os.path.realpath(path) != self._real(*parts[:depth]):
                raise NotWritable(
                    f"The Hugging Face cache folder {path} leads outside the cache (to "
                    f"{os.path.realpath(path)}); kerasae writes and deletes only inside "
                    f"{self.root}. Remove that link, or set HF_HUB_CACHE to another folder. "
                    f"Received: path={path!r}")
        return path

    # -------------------------------------------------------------- reading
    def read_ref(self, revision):
        """The commit `refs/{revision}` holds, or `None` (absent, outside, not 40 hex)."""
        path = os.path.join(self.folder, "refs", *revision.split("/"))
        if not os.path.isfile(path) or not self._inside(path, "refs") or \
                os.path.getsize(path) > _REF_BYTES:
            return None
        with open(path, encoding="ascii", errors="replace") as f:
            commit = f.read()
        return commit if COMMIT.fullmatch(commit) else None

    def read_small(self, commit, filename, cap):
        """The bytes of a cached snapshot file of at most `cap` bytes, or `None`."""
        path = self.entry(commit, filename)
        if not os.path.isfile(path) or not self._inside(path) or os.path.getsize(path) > cap:
            return None
        with open(path, "rb") as f:
            return f.read(cap + 1)

    def check(self, commit, filename, spec):
        """`(path, None)` for a cached copy that matches `spec`, else `(None, why)`;
        `why` is `None` when there is no copy at all."""
        path = self.entry(commit, filename)
        if not os.path.lexists(path):
            return None, None
        if not self._inside(path):
            return None, f"it leads outside the cache (to {os.path.realpath(path)})"
        if not os.path.isfile(path):
            return None, "it is not a file"
        size = os.path.getsize(path)
        got = sha256_file(path) if size == spec["bytes"] else None
        if got != spec["sha256"]:
            return None, f"it has {size} bytes and sha256 {got or '(not computed)'}"
        return path, None

    def blob(self, spec):
        """A cached blob that matches `spec` (another commit's copy of the same file), or `None`."""
        path = os.path.join(self.folder, "blobs", spec["sha256"])
        if os.path.isfile(path) and self._inside(path, "blobs") and \
                os.path.getsize(path) == spec["bytes"] and sha256_file(path) == spec["sha256"]:
            return path
        return None

    # -------------------------------------------------------------- writing
    def evict(self, commit, filename):
        """Removes one snapshot entry and the blob it points to: the entry only through a
        snapshot folder inside this repo's folder, the blob only if it lies in its `blobs`."""
        path = self.entry(commit, filename)
        if not os.path.lexists(path) or not self._inside(os.path.dirname(path), "snapshots"):
            return
        target = os.path.realpath(path)
        if os.path.islink(path) and self._inside(target, "blobs") and os.path.isfile(target):
            with contextlib.suppress(OSError):
                os.remove(target)
        with contextlib.suppress(OSError):
            os.unlink(path)  # the link itself (or the copy), never what it points to

    @contextlib.contextmanager
    def staging(self):
        """A new staging folder inside the repo folder (so installing is a rename),
        removed afterwards; ones that killed loads left over an hour ago go first."""
        self._mkdirs()
        remove_stale(self.folder)
        stage = tempfile.mkdtemp(dir=self.folder, prefix=".kerasae.tmp-")
        try:
            os.mkdir(os.path.join(stage, "blobs"))
            os.mkdir(os.path.join(stage, "snapshot"))
            yield stage
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def install(self, stage, commit, files):
        """Moves the verified blobs of `stage/blobs` into place, then the snapshot entries
        `files` (`{filename: sha256}`): a new snapshot folder by one rename, else entry
        by entry into the existing one (whose other files are verified already)."""
        blobs = self._mkdirs("blobs")
        snapshots = self._mkdirs("snapshots")
        for sha in os.listdir(os.path.join(stage, "blobs")):
            os.replace(os.path.join(stage, "blobs", sha), os.path.join(blobs, sha))
        staged = os.path.join(stage, "snapshot")
        for filename, sha in files.items():
            _link(os.path.join(blobs, sha), os.path.join(staged, filename), sha)
        target = os.path.join(snapshots, commit)
        if not os.path.lexists(target):
            with contextlib.suppress(OSError):  # another load made it meanwhile: merge
                os.rename(staged, target)
                return
        target = self._mkdirs("snapshots", commit)
        for filename in files:
            os.replace(os.path.join(staged, filename), os.path.join(target, filename))

    def write_ref(self, revision, commit):
        """Points `refs/{revision}` at `commit` (atomically); best effort, as
        `huggingface_hub` does: a ref that cannot be written costs only an offline lookup."""
        *folders, name = revision.split("/")
        with contextlib.suppress(OSError):  # NotWritable too
            atomic_write(os.path.join(self._mkdirs("refs", *folders), name), commit)


def _link(blob, entry, sha):
    """A snapshot entry for `blob`: the relative symlink huggingface_hub makes (staging and
    snapshot folders sit at the same depth, so it resolves in both), or a copy."""
    try:
        os.symlink(os.path.join(os.pardir, os.pardir, "blobs", sha), entry)
    except OSError:
        shutil.copyfile(blob, entry)
