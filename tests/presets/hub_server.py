"""A loopback server that answers download calls (kerasae's, huggingface_hub's) as the Hub does.

`HEAD` and `GET` on `/{owner}/{repo}/resolve/{revision}/{path}` with the headers the
client reads (`X-Repo-Commit`, `ETag`, `Content-Length`; `X-Error-Code` on a 404:
`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`), byte ranges on `GET`, and
`/api/models/{owner}/{repo}[/revision/{revision}]` with the repo's `sha` and
`siblings`. Each repo is a folder; its commit is the sha1 of its files, so a changed
file is a new commit, as on the Hub. `server.hits` lists every request.

A hostile or broken Hub is the same server with a `hook`: `HubServer(repos, hook=f)`
calls `f(request)` first, and a `Reply` it returns is sent instead of the honest
answer (`None`: the honest one). `request.default(revision=...)` is the honest
`Reply` (for another revision if given), to change or pass on. A reply's body may
be an iterable of chunks (a stream, endless if you like); `server.sent` counts the
body bytes each request got onto the wire before the client hung up.
"""

import dataclasses
import hashlib
import http.server
import json
import os
import socket
import threading
import urllib.parse


def _commit(folder):
    h = hashlib.sha1()
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            h.update(name.encode() + b"\0" + hashlib.sha256(f.read()).digest())
    return h.hexdigest()


@dataclasses.dataclass
class Reply:
    """An answer: `body` is bytes or an iterable of byte chunks; `length` is the
    Content-Length announced (default: the body's, none for a stream, which then ends
    by closing the connection)."""

    status: int
    headers: dict
    body: object = b""
    length: int = None


@dataclasses.dataclass
class Request:
    command: str
    path: str
    repo_id: str = None
    revision: str = None
    filename: str = None
    headers: object = None  # the request's (case-insensitive `.get`)
    default: object = None  # default(revision=None) -> the honest Reply


def _error(code, error_code, commit=None):
    headers = {"X-Error-Code": error_code, "Content-Type": "application/json"}
    if commit:
        headers["X-Repo-Commit"] = commit
    return Reply(code, headers, json.dumps({"error": error_code}).encode())


class _HubHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, reply):
        self.send_response(reply.status)
        for k, v in reply.headers.items():
            self.send_header(k, v)
        body = reply.body
        length = reply.length if reply.length is not None else (
            len(body) if isinstance(body, bytes) else None)
        if length is not None:
            self.send_header("Content-Length", str(length))
        if length is None or (isinstance(body, bytes) and length != len(body)):
            self.send_header("Connection", "close")  # the body ends where the socket does
            self.close_connection = True
        self.end_headers()
        if self.command == "HEAD":
            return
        if isinstance(body, bytes):
            body = [body]
        else:  # a small send buffer, so `sent` counts what the client took, not a backlog
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)
        sent = 0
        try:
            for chunk in body:
                self.wfile.write(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self.server.sent.append((self.path, sent))

    def _repo(self, owner, name):
        folder = self.server.repos.get(f"{owner}/{name}")
        return (folder, _commit(folder)) if folder else (None, None)

    def do_HEAD(self):  # noqa: N802 - http.server API
        self.do_GET()

    def do_GET(self):  # noqa: N802 - http.server API
        self.server.hits.append((self.command, self.path))
        parts = [urllib.parse.unquote(p) for p in urllib.parse.urlsplit(self.path).path.split("/")
                 if p]
        request = Request(self.command, self.path, headers=self.headers)
        if len(parts) >= 5 and parts[2] == "resolve":
            request.repo_id, request.revision = f"{parts[0]}/{parts[1]}", parts[3]
            request.filename = "/".join(parts[4:])
        request.default = lambda revision=None: self._answer(parts, revision)
        reply = self.server.hook(request) if self.server.hook else None
        self._send(reply or request.default())

    def _answer(self, parts, revision=None):
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            return self._api(parts[2], parts[3], parts[5] if len(parts) >= 6 else "main")
        if len(parts) < 5 or parts[2] != "resolve":
            return _error(404, "RepoNotFound")
        folder, commit = self._repo(parts[0], parts[1])
        if folder is None:
            return _error(401, "RepoNotFound")
        if (revision or parts[3]) not in ("main", commit):
            return _error(404, "RevisionNotFound")
        path = os.path.join(folder, *parts[4:])
        if not os.path.isfile(path):
            return _error(404, "EntryNotFound", commit)
        with open(path, "rb") as f:
            data = f.read()
        headers = {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                   "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and self.command == "GET":
            start = int(rng[6:].split("-")[0] or 0)
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            return Reply(206, headers, data[start:])
        return Reply(200, headers, data)

    def _api(self, owner, name, revision):
        folder, commit = self._repo(owner, name)
        if folder is None:
            return _error(401, "RepoNotFound")
        if revision not in ("main", commit):
            return _error(404, "RevisionNotFound")
        body = {"id": f"{owner}/{name}", "modelId": f"{owner}/{name}", "sha": commit,
                "siblings": [{"rfilename": n} for n in sorted(os.listdir(folder))],
                "private": False, "library_name": "kerasae"}
        return Reply(200, {"Content-Type": "application/json"}, json.dumps(body).encode())


class HubServer:
    """`HubServer({"owner/repo": folder}, hook=None)`: `.url` (for `HF_ENDPOINT`), `.hits`,
    `.sent`, `.hook` (settable), `.stop()`."""

    def __init__(self, repos, hook=None):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HubHandler)
        self.server.daemon_threads = True
        self.server.repos, self.server.hits, self.server.sent = dict(repos), [], []
        self.server.hook = hook
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def hits(self):
        return self.server.hits

    @property
    def sent(self):
        return self.server.sent

    @property
    def hook(self):
        return self.server.hook

    @hook.setter
    def hook(self, hook):
        self.server.hook = hook

    def commit(self, repo_id):
        return _commit(self.server.repos[repo_id])

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
