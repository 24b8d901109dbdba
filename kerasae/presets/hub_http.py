"""HTTP to a Hugging Face Hub endpoint for `hf://` presets, done the way `huggingface_hub` does it.

- `HEAD {endpoint}/{repo}/resolve/{revision}/{file}` resolves a revision: redirects
  that stay on the Hub (relative ones too: a renamed repo) are followed, one to
  another host (a CDN) is not, since its answer carries the metadata
  (`X-Repo-Commit`, `X-Linked-Size`) and the token must not leave the Hub.
- `GET` of a file at a commit follows every redirect (at most 20), dropping the
  `Authorization` header once it leaves the Hub's hosts.
- The Hub's `X-Error-Code` (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`,
  `GatedRepo`; or a 401) is a `HubMissing`; anything else (no connection, a
  timeout, a 5xx, another status) is a `HubUnreachable`, after which a cached copy
  may serve, as in `hf_hub_download`.

This module only talks: what it returns is checked by `kerasae.presets.hub` before
anything touches the disk, and the endpoint's answers never name a path.
"""

import http.client
import os
import urllib.error
import urllib.parse
import urllib.request

from kerasae.presets.download import DOWNLOAD_TIMEOUT

DEFAULT_ENDPOINT = "https://huggingface.co"
# Origins trusted with the token besides the endpoint's own (huggingface_hub's list).
_HUB_ORIGINS = ("https://huggingface.co", "https://hf.co", "https://hub-ci.huggingface.co")
_REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 20
HEAD_TIMEOUT = 10.0  # huggingface_hub's HF_HUB_ETAG_TIMEOUT default


class HubMissing(Exception):
    """The endpoint says the repo, revision or file is not there (`what` says which)."""

    def __init__(self, what, status):
        super().__init__(f"{what} ({status})")
        self.what = what


class HubUnreachable(Exception):
    """The endpoint did not answer usably; the message says how."""


def endpoint():
    """`HF_ENDPOINT` read now (huggingface_hub reads it at import), without a trailing `/`."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def head_timeout():
    try:
        return float(os.environ.get("HF_HUB_ETAG_TIMEOUT") or HEAD_TIMEOUT)
    except ValueError:
        return HEAD_TIMEOUT


def file_url(repo_id, revision, filename):
    quote = urllib.parse.quote
    return f"{endpoint()}/{repo_id}/resolve/{quote(revision, safe='')}/{quote(filename)}"


def _origin(url):
    parts = urllib.parse.urlsplit(url)
    return (parts.scheme, (parts.hostname or "").lower(),
            parts.port or {"http": 80, "https": 443}.get(parts.scheme))


def _on_hub(url, target):
    return _origin(target) in {_origin(url), _origin(endpoint()), *map(_origin, _HUB_ORIGINS)}


class _ByHand(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect comes back as an HTTPError; `_request` decides


_OPENER = urllib.request.build_opener(_ByHand)


def _missing_or_unreachable(status, headers, reason):
    code = headers.get("X-Error-Code")
    kinds = {"RepoNotFound": "repo", "RevisionNotFound": "revision",
             "EntryNotFound": "entry", "GatedRepo": "gated"}
    if code in kinds or status == 401:  # 401: a missing or private repo, as the Hub answers
        return HubMissing(kinds.get(code, "repo"), f"HTTP {status}")
    return HubUnreachable(f"HTTP {status} {reason}")


def _request(method, url, headers, timeout, *, leave_hub):
    """`(response, [headers of every answer on the way])`; the response is open."""
    headers, answers = dict(headers), []
    for _ in range(MAX_REDIRECTS + 1):
        try:
            _origin(url)  # a port out of range or not a number raises here, not later
        except ValueError:
            raise HubUnreachable(f"{url[:200]!r} is not a valid address") from None
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise HubUnreachable(f"{url[:200]!r} is not an HTTP address")
        try:
            resp = _OPENER.open(urllib.request.Request(url, method=method, headers=headers),
                                timeout=timeout)
        except urllib.error.HTTPError as e:
            resp = e
        except urllib.error.URLError as e:
            raise HubUnreachable(f"{e.reason}") from None
        except (http.client.HTTPException, OSError) as e:
            raise HubUnreachable(f"{type(e).__name__}: {e}") from None
        answers.append(resp.headers)
        status, location = resp.status, resp.headers.get("Location")
        if status in _REDIRECTS and location:
            target = urllib.parse.urljoin(url, location)
            if not _on_hub(url, target):
                if not leave_hub:
                    return resp, answers
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            resp.close()
            url = target
            continue
        if status >= 300:
            resp.close()
            raise _missing_or_unreachable(status, resp.headers, resp.reason)
        return resp, answers
    raise HubUnreachable(f"more than {MAX_REDIRECTS} redirects")


def head(repo_id, revision, filename, headers):
    """What the endpoint says of `filename` at `revision`, unchecked:
    `(X-Repo-Commit or None, announced size or None)`."""
    hdrs = dict(headers, **{"Accept-Encoding": "identity"})  # the real size, not a gzip's
    resp, _ = _request("HEAD", file_url(repo_id, revision, filename), hdrs, head_timeout(),
                       leave_hub=False)
    with resp:
        answer, redirect = resp.headers, resp.status in _REDIRECTS
    size = answer.get("X-Linked-Size") or (None if redirect else answer.get("Content-Length"))
    try:
        size = int(size) if size is not None else None
    except ValueError:
        size = None
    return answer.get("X-Repo-Commit"), size


def get(repo_id, commit, filename, headers):
    """An open response for `filename` at `commit`, and the set of `X-Repo-Commit` values
    the answers on the way carried (a consistent endpoint sends only `commit`)."""
    hdrs = dict(headers, **{"Accept-Encoding": "identity"})
    resp, answers = _request("GET", file_url(repo_id, commit, filename), hdrs, DOWNLOAD_TIMEOUT,
                             leave_hub=True)
    return resp, {a.get("X-Repo-Commit") for a in answers} - {None}
