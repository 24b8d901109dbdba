"""Where presets live: the shipped zoo, the cache, the mirrors.

1. the cache: `cache_dir=`, else `$KERASAE_CACHE`, else
   `$XDG_CACHE_HOME/kerasae/zoo` (`~/.cache/kerasae/zoo`);
2. the zoo shipped with the package (`kerasae/_zoo/` in a wheel; the source
   tree's `zoo/` in an editable install), or the root given by `root=` /
   `$KERASAE_ZOO_ROOT`;
3. the mirrors: `mirrors=`, else `$KERASAE_ZOO_MIRRORS` (base URLs of a copy of
   the zoo root, separated by commas or spaces).
"""

import importlib.metadata
import json
import os
import re
import urllib.parse
import urllib.request

from kerasae._util.errors import InvalidValue

INDEX_FILE = "index.json"
CACHE_ENV = "KERASAE_CACHE"
MIRRORS_ENV = "KERASAE_ZOO_MIRRORS"
ROOT_ENV = "KERASAE_ZOO_ROOT"
# No public mirror is configured yet; set $KERASAE_ZOO_MIRRORS or pass mirrors=.
DEFAULT_MIRRORS = ()
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def editable_source_tree():
    """The source tree of an editable install of this kerasae, or `None`.

    Read from the install's own record (PEP 610 `direct_url.json`), and only
    when that tree holds the very package that is running. (A source tree also
    holds a bare `kerasae.egg-info` without that record; it is passed over.)
    """
    for dist in importlib.metadata.distributions(name="kerasae"):
        try:
            info = json.loads(dist.read_text("direct_url.json") or "null") or {}
        except ValueError:
            continue
        url = urllib.parse.urlparse(info.get("url", ""))
        if not (info.get("dir_info") or {}).get("editable") or url.scheme != "file":
            continue
        tree = urllib.request.url2pathname(url.path)
        if os.path.realpath(os.path.join(tree, "kerasae")) == os.path.realpath(_PACKAGE):
            return tree
    return None


def checkout_zoo():
    """The editable source tree's `zoo/` folder (where new presets are published), or `None`."""
    tree = editable_source_tree()
    return None if tree is None else os.path.join(tree, "zoo")


def shipped_root():
    """The zoo root shipped with kerasae, or `None`.

    A wheel carries it as the package data `kerasae/_zoo/`; an editable install
    uses its source tree's `zoo/` folder.
    """
    inside = os.path.join(_PACKAGE, "_zoo")
    if os.path.isfile(os.path.join(inside, INDEX_FILE)):
        return inside
    checkout = checkout_zoo()
    return checkout if checkout and os.path.isdir(checkout) else None


def zoo_root(root=None):
    """The root whose index is used: `root`, else `$KERASAE_ZOO_ROOT`, else `shipped_root()`."""
    root = root if root is not None else os.environ.get(ROOT_ENV) or shipped_root()
    return None if root is None else os.path.abspath(os.fspath(root))


def resolve_cache_dir(cache_dir=None):
    """The cache directory: `cache_dir`, else `$KERASAE_CACHE`, else `~/.cache/kerasae/zoo`."""
    if cache_dir is not None:
        return os.path.abspath(os.fspath(cache_dir))
    if os.environ.get(CACHE_ENV):
        return os.path.abspath(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "kerasae", "zoo")


def mirror_list(mirrors=None):
    """Mirror base URLs: `mirrors` (a list or a comma/space separated string), else
    `$KERASAE_ZOO_MIRRORS`, else `DEFAULT_MIRRORS`."""
    if mirrors is None:
        mirrors = os.environ.get(MIRRORS_ENV)
        if mirrors is None:
            return list(DEFAULT_MIRRORS)
    if isinstance(mirrors, str):
        mirrors = re.split(r"[,\s]+", mirrors)
    out = [str(m).strip() for m in mirrors if str(m).strip()]
    for m in out:
        if urllib.parse.urlparse(m).scheme not in ("http", "https", "file"):
            raise InvalidValue(
                "A mirror must be an http://, https:// or file:// base URL of a copy of "
                f"the zoo folder (the one holding {INDEX_FILE}). Received: mirror={m!r}"
            )
    return out
