"""A loopback server that answers `huggingface_hub`'s download calls as the Hub does.

`HEAD` and `GET` on `/{owner}/{repo}/resolve/{revision}/{path}` with the headers the
client reads (`X-Repo-Commit`, `ETag`, `Content-Length`; `X-Error-Code` on a 404:
`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`), byte ranges on `GET`, and
`/api/models/{owner}/{repo}[/revision/{revision}]` with the repo's `sha` and
`siblings`. Each repo is a folder; its commit is the sha1 of its files, so a changed
file is a new commit, as on the Hub. `server.hits` lists every request.
"""

import hashlib
import http.server
import json
import os
import threading
import urllib.parse


def _commit(folder):
    h = hashlib.sha1()
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            h.update(name.encode() + b"\0" + hashlib.sha256(f.read()).digest())
    return h.hexdigest()


class _HubHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status, headers=None, body=b""):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, code, error_code, commit=None):
        headers = {"X-Error-Code": error_code, "Content-Type": "application/json"}
        if commit:
            headers["X-Repo-Commit"] = commit
        self._send(code, headers, json.dumps({"error": error_code}).encode())

    def _repo(self, owner, name):
        folder = self.server.repos.get(f"{owner}/{name}")
        return (folder, _commit(folder)) if folder else (None, None)

    def do_HEAD(self):  # noqa: N802 - http.server API
        self.do_GET()

    def do_GET(self):  # noqa: N802 - http.server API
        self.server.hits.append((self.command, self.path))
        parts = [urllib.parse.unquote(p) for p in urllib.parse.urlsplit(self.path).path.split("/")
                 if p]
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            return self._api(parts[2], parts[3], parts[5] if len(parts) >= 6 else "main")
        if len(parts) < 5 or parts[2] != "resolve":
            return self._error(404, "RepoNotFound")
        folder, commit = self._repo(parts[0], parts[1])
        if folder is None:
            return self._error(401, "RepoNotFound")
        if parts[3] not in ("main", commit):
            return self._error(404, "RevisionNotFound")
        path = os.path.join(folder, *parts[4:])
        if not os.path.isfile(path):
            return self._error(404, "EntryNotFound", commit)
        with open(path, "rb") as f:
            data = f.read()
        headers = {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                   "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and self.command == "GET":
            start = int(rng[6:].split("-")[0] or 0)
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            return self._send(206, headers, data[start:])
        if self.command == "HEAD":
            self.send_response(200)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return None
        return self._send(200, headers, data)

    def _api(self, owner, name, revision):
        folder, commit = self._repo(owner, name)
        if folder is None:
            return self._error(401, "RepoNotFound")
        if revision not in ("main", commit):
            return self._error(404, "RevisionNotFound")
        body = {"id": f"{owner}/{name}", "modelId": f"{owner}/{name}", "sha": commit,
                "siblings": [{"rfilename": n} for n in sorted(os.listdir(folder))],
                "private": False, "library_name": "kerasae"}
        return self._send(200, {"Content-Type": "application/json"}, json.dumps(body).encode())


class HubServer:
    """`HubServer({"owner/repo": folder})`: `.url` (for `HF_ENDPOINT`), `.hits`, `.stop()`."""

    def __init__(self, repos):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HubHandler)
        self.server.repos, self.server.hits = dict(repos), []
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def hits(self):
        return self.server.hits

    def commit(self, repo_id):
        return _commit(self.server.repos[repo_id])

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
