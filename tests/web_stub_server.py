"""The HTTP side of the browser tests: a small server on 127.0.0.1 that plays ComfyUI for the stub
frontend in tests/web_stub/.

It serves the stub (``/``, ``/scripts/``, ``/stub/``), web/ under /extensions/ComfyUI-MemVOS/ and
the list of extension modules, ComfyUI's ``/api/view`` (temp and input folders) and
``/api/upload/image`` (same answers and duplicate rule as ComfyUI 0.8.0's server.py), and any
extra GET routes given (the pack's /memvos/* handlers). Requests are recorded for the tests.
"""
import email.parser
import email.policy
import functools
import hashlib
import http.server
import json
import os
import threading
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STUB = ROOT / "tests" / "web_stub"
WEB = ROOT / "web"


class _Handler(http.server.BaseHTTPRequestHandler):
    TYPES = {".js": "text/javascript", ".html": "text/html", ".json": "application/json",
             ".png": "image/png", ".jpg": "image/jpeg", ".css": "text/css"}

    def __init__(self, *args, server_state, **kwargs):
        self.state = server_state
        super().__init__(*args, **kwargs)

    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        self.state["requests"].append(self.path)
        if path in ("/", "/index.html"):
            return self._file(STUB, "index.html")
        if path in ("/api/extensions", "/extensions"):
            scripts = sorted(f"/extensions/ComfyUI-MemVOS/{p.relative_to(WEB).as_posix()}" for p in WEB.rglob("*.js"))
            return self._send(200, "application/json", json.dumps(scripts).encode())
        if path.startswith("/scripts/"):
            return self._file(STUB / "scripts", path[len("/scripts/"):])
        if path.startswith("/stub/"):
            return self._file(STUB / "stub", path[len("/stub/"):])
        if path.startswith("/extensions/ComfyUI-MemVOS/"):
            return self._file(WEB, path[len("/extensions/ComfyUI-MemVOS/"):])
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        if path in ("/api/view", "/view"):
            folder = self.state["dirs"].get(query.get("type", "output"))
            if folder is None:
                return self._send(400, "text/plain", b"no such folder type here")
            return self._file(Path(folder) / query.get("subfolder", ""), query.get("filename", ""))
        route = self.state["routes"].get(path[len("/api"):] if path.startswith("/api/") else path)
        if route is not None:
            return self._send(*route(query))
        return self._send(404, "text/plain", b"not found")

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        self.state["requests"].append(f"POST {self.path}")
        if path not in ("/api/upload/image", "/upload/image"):
            return self._send(404, "text/plain", b"not found")
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + body)
        fields, image, filename = {}, None, None
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if part.get_filename() is not None:
                image, filename = part.get_payload(decode=True), part.get_filename()
            else:
                fields[name] = part.get_payload(decode=True).decode()
        kind = fields.get("type", "input")
        folder = self.state["dirs"].get(kind)
        if image is None or not filename or folder is None:
            return self._send(400, "text/plain", b"bad upload")
        subfolder = fields.get("subfolder", "")
        base = os.path.abspath(folder)
        target_dir = os.path.join(base, os.path.normpath(subfolder))
        target = os.path.abspath(os.path.join(target_dir, filename))
        if os.path.commonpath((base, target)) != base:
            return self._send(400, "text/plain", b"outside the folder")
        os.makedirs(target_dir, exist_ok=True)
        stem, ext = os.path.splitext(filename)
        counter = 1
        while fields.get("overwrite") not in ("true", "1") and os.path.exists(target):
            if hashlib.sha256(Path(target).read_bytes()).digest() == hashlib.sha256(image).digest():
                break  # the same bytes under that name already: ComfyUI keeps the one file
            filename = f"{stem} ({counter}){ext}"
            target = os.path.join(target_dir, filename)
            counter += 1
        else:
            Path(target).write_bytes(image)
        self.state["uploads"].append({"name": filename, "subfolder": subfolder, "type": kind})
        return self._send(200, "application/json",
                          json.dumps({"name": filename, "subfolder": subfolder, "type": kind}).encode())

    def _file(self, base, relative):
        base = Path(base).resolve()
        target = (base / relative).resolve()
        if not relative or base not in target.parents or not target.is_file():
            return self._send(404, "text/plain", b"not found")
        self._send(200, self.TYPES.get(target.suffix, "application/octet-stream"), target.read_bytes())

    def _send(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


class StubServer:
    """``with StubServer(dirs={"temp": ..., "input": ...}, routes={...}) as server: server.url``"""

    def __init__(self, dirs, routes=None):
        self.state = {"dirs": {k: str(v) for k, v in dirs.items()}, "routes": dict(routes or {}),
                      "requests": [], "uploads": []}
        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(_Handler, server_state=self.state))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.requests, self.uploads = self.state["requests"], self.state["uploads"]

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
