"""Weights download, verification and lookup, against a real HTTP server on 127.0.0.1."""
import hashlib
import io
import os
import pickle
import shutil
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from torch import nn

from memvos_core import weights
from memvos_core.network import load_network
from memvos_core.weights import WeightsError, ensure_weights


# ---------------------------------------------------------------- the server

class _Handler(BaseHTTPRequestHandler):
    timeout = 10  # a stuck client cannot hold a server thread for long

    def do_GET(self):
        self.server.requests.append(self.path)
        route = self.server.routes.get(self.path)
        if route is None:
            return self._send(404, b"<html><body>Not Found</body></html>", "text/html")
        kind, body, content_type = route
        if kind == "redirect":
            self.send_response(302)
            self.send_header("Location", body)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif kind == "truncate":  # promise the whole body, send half, hang up
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
        elif kind == "file":
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(os.path.getsize(body)))
            self.end_headers()
            with open(body, "rb") as f:
                shutil.copyfileobj(f, self.wfile, 1 << 20)
        else:
            self._send(200, body, content_type)

    def _send(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)  # port 0: a free port
    httpd.daemon_threads = True
    httpd.routes, httpd.requests = {}, []
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _serve(server, path, body, kind="bytes", content_type="application/octet-stream"):
    server.routes[path] = (kind, body, content_type)
    return server.base + path


# ---------------------------------------------------------------- small checkpoints

def _tiny_state():
    return nn.Linear(4, 3).state_dict()


def _pth_bytes(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _partial_xmem_state():
    """The few tensors XMem's dimensions are read from, without the rest of the network."""
    from memvos_core.network.xmem import XMemNetwork
    wanted = ("key_proj.key_proj.weight", "value_encoder.fuser.block2.conv2.weight", "value_encoder.conv1.weight")
    return {k: v for k, v in XMemNetwork().state_dict().items() if k in wanted}


def tiny_verify(path):
    """A strict loader for a tiny network, so most tests need not move 250 MB."""
    nn.Linear(4, 3).load_state_dict(weights.read_tensors(path, "pth"), strict=True)


class _CodePayload:
    """Unpickling this (unsafely) would create the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _leftovers(folder):
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


# ---------------------------------------------------------------- good downloads

def test_download_lands_in_place_with_its_sha256_recorded(server, tmp_path):
    body = _pth_bytes(_tiny_state())
    url = _serve(server, "/good/tiny.pth", body)
    seen = []
    path = ensure_weights("tiny.pth", tmp_path / "models", url=url, verify=tiny_verify,
                          progress=lambda done, total: seen.append((done, total)))
    assert path == str(tmp_path / "models" / "tiny.pth")
    with open(path, "rb") as f:
        assert f.read() == body
    digest = hashlib.sha256(body).hexdigest()
    assert (tmp_path / "models" / "tiny.pth.sha256").read_text() == f"{digest}  tiny.pth\n"
    assert _leftovers(tmp_path / "models") == ["tiny.pth", "tiny.pth.sha256"]
    assert seen[-1] == (len(body), len(body))

    before = len(server.requests)
    assert ensure_weights("tiny.pth", tmp_path / "models", url=url, verify=tiny_verify) == path
    assert len(server.requests) == before  # found and checked locally, not downloaded again


def test_redirect_is_followed_like_github_release_assets(server, tmp_path):
    target = _serve(server, "/assets/blob", _pth_bytes(_tiny_state()))
    url = _serve(server, "/release/tiny.pth", target, kind="redirect")
    path = ensure_weights("tiny.pth", tmp_path, url=url, verify=tiny_verify)
    tiny_verify(path)


def test_known_sha256_is_checked_instead_of_loading(server, tmp_path):
    body = b"any bytes at all"
    url = _serve(server, "/hashed/x.pth", body)

    def must_not_run(path):
        raise AssertionError("verify must not run when the sha256 is known")

    path = ensure_weights("x.pth", tmp_path, url=url, sha256=hashlib.sha256(body).hexdigest().upper(),
                          verify=must_not_run)
    assert os.path.isfile(path)


def test_a_later_change_of_the_file_is_noticed(server, tmp_path):
    url = _serve(server, "/change/tiny.pth", _pth_bytes(_tiny_state()))
    path = ensure_weights("tiny.pth", tmp_path, url=url, verify=tiny_verify)
    with open(path, "r+b") as f:  # same size, one byte different
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(WeightsError, match="changed since it was downloaded.*delete it"):
        ensure_weights("tiny.pth", tmp_path, url=url, verify=tiny_verify)
    with pytest.raises(WeightsError, match="changed since it was downloaded"):
        weights.resolve_weights("tiny.pth", [tmp_path])
    assert os.path.isfile(path)  # the user's file is reported, never deleted


def test_damaged_record_is_a_clear_error(tmp_path):
    (tmp_path / "a.pth").write_bytes(b"x")
    (tmp_path / "a.pth.sha256").write_text("not-a-digest  a.pth\n")
    with pytest.raises(WeightsError, match="damaged"):
        weights.resolve_weights("a.pth", [tmp_path])


# ---------------------------------------------------------------- failures leave nothing behind

_HTML = b"<!DOCTYPE html><html><body>rate limit exceeded</body></html>"
_BINARY = "application/octet-stream"
# case: (route kind, body maker, content type, expected sha256, verify, message pattern)
_FAILURES = {
    "truncated": ("truncate", lambda m: _pth_bytes(_tiny_state()), _BINARY, None, tiny_verify,
                  r"broke off: \d+ of \d+ bytes arrived"),
    "missing": (None, None, None, None, tiny_verify, "HTTP 404"),
    "no server": ("closed port", None, None, None, tiny_verify, "could not download.*internet connection"),
    "html page": ("bytes", lambda m: _HTML, "text/html", None, tiny_verify, "sent a web page"),
    "html as binary": ("bytes", lambda m: _HTML, _BINARY, None, None, "could not be read.*refused"),
    "code payload": ("bytes", lambda m: _pth_bytes({"weight": torch.zeros(3, 4), "hook": _CodePayload(m)}),
                     _BINARY, None, None, "code besides tensors .it asks for .*open.: refused, nothing in it was run"),
    "sha256 mismatch": ("bytes", lambda m: _pth_bytes(_tiny_state()), _BINARY, "0" * 64, tiny_verify,
                        "refused: its sha256"),
    "other network": ("bytes", lambda m: _pth_bytes(_tiny_state()), _BINARY, None, None, "is not a checkpoint of any known model family"),
    "incomplete XMem": ("bytes", lambda m: _pth_bytes(_partial_xmem_state()), _BINARY, None, None,
                        r"does not match the XMem network: \d+ missing keys"),
}


def _closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/XMem.pth"


@pytest.mark.parametrize("case", list(_FAILURES))
def test_failed_download_leaves_nothing_where_the_file_belongs(server, tmp_path, case):
    kind, make_body, content_type, sha256, verify, pattern = _FAILURES[case]
    marker = tmp_path / "payload-ran"
    path = "/fail/" + case.replace(" ", "-") + "/XMem.pth"
    if kind == "closed port":
        url = _closed_port_url()
    elif kind is None:
        url = server.base + path
    else:
        url = _serve(server, path, make_body(str(marker)), kind, content_type)
    models = tmp_path / "models"
    with pytest.raises(WeightsError, match=pattern) as info:
        ensure_weights("XMem.pth", models, url=url, sha256=sha256, verify=verify, timeout=10)
    message = str(info.value)
    assert url in message and "Nothing was saved" in message
    assert f"download it manually from {url}" in message
    assert _leftovers(models) == []
    assert not marker.exists()


def test_the_code_payload_is_real(tmp_path):
    """Guards the payload test above: unpickled unsafely, the payload does create its marker."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_CodePayload(str(marker)))).close()
    assert marker.exists()


def test_cancel_mid_download_raises_and_leaves_nothing(server, tmp_path):
    url = _serve(server, "/big/tiny.pth", os.urandom(3 * weights.CHUNK_BYTES + 5))

    class Stop(Exception):
        pass

    chunks = []

    def cancel():
        if len(chunks) >= 1:
            raise Stop("cancelled by the user")

    with pytest.raises(Stop):
        ensure_weights("tiny.pth", tmp_path, url=url, verify=tiny_verify,
                       progress=lambda done, total: chunks.append(done), cancel=cancel)
    assert chunks == [weights.CHUNK_BYTES]
    assert _leftovers(tmp_path) == []


def test_not_enough_disk_space_is_refused_before_writing(server, tmp_path, monkeypatch):
    url = _serve(server, "/space/tiny.pth", _pth_bytes(_tiny_state()))
    monkeypatch.setattr(weights.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(1, 1, 1000))
    with pytest.raises(WeightsError, match="not enough disk space"):
        ensure_weights("tiny.pth", tmp_path, url=url, verify=tiny_verify)
    assert _leftovers(tmp_path) == []


def test_stale_part_files_are_removed_and_fresh_ones_kept(server, tmp_path):
    old, fresh = tmp_path / "tiny.pth.part-dead", tmp_path / "tiny.pth.part-busy"
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    an_hour_ago = time.time() - weights.STALE_PART_AGE_S - 60
    os.utime(old, (an_hour_ago, an_hour_ago))
    url = _serve(server, "/stale/tiny.pth", _pth_bytes(_tiny_state()))
    ensure_weights("tiny.pth", tmp_path, url=url, verify=tiny_verify)
    assert _leftovers(tmp_path) == ["tiny.pth", "tiny.pth.part-busy", "tiny.pth.sha256"]


@pytest.mark.parametrize("name, url, pattern", [
    ("mystery.pth", None, "not a known checkpoint.*XMem.pth, XMem-s012.pth"),
    ("../XMem.pth", None, "must be a file name"),
    ("/etc/XMem.pth", None, "must be a file name"),
    ("x.pth", "file:///etc/passwd", "must start with https://"),
])
def test_bad_names_and_urls_are_clear_errors(tmp_path, name, url, pattern):
    with pytest.raises(WeightsError, match=pattern):
        ensure_weights(name, tmp_path, url=url)
    assert _leftovers(tmp_path) == []


def test_known_table_points_at_the_official_release():
    for name in ("XMem.pth", "XMem-s012.pth"):
        known = weights.KNOWN_CHECKPOINTS[name]
        assert known.url == f"https://github.com/hkchengrex/XMem/releases/download/v1.0/{name}"
        assert known.sha256 is None or len(known.sha256) == 64


def test_a_local_file_needs_no_url(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "finetuned.pth").write_bytes(b"user weights")
    assert ensure_weights("sub/finetuned.pth", tmp_path) == str(tmp_path / "sub" / "finetuned.pth")


def test_existing_file_differing_from_a_known_sha256_is_refused(tmp_path):
    (tmp_path / "x.pth").write_bytes(b"not the official bytes")
    with pytest.raises(WeightsError, match="not the official x.pth"):
        ensure_weights("x.pth", tmp_path, url="https://example.invalid/x.pth", sha256="a" * 64)


# ---------------------------------------------------------------- local lookup

def test_resolve_searches_every_folder_and_explains_a_miss(tmp_path):
    first, second = tmp_path / "yaml_dir", tmp_path / "models" / "memvos"
    second.mkdir(parents=True)
    (second / "mine.pth").write_bytes(_pth_bytes(_tiny_state()))
    assert weights.resolve_weights("mine.pth", [first, second]) == str(second / "mine.pth")
    assert weights.resolve_weights(str(second / "mine.pth"), []) == str(second / "mine.pth")
    assert weights.find_weights("../memvos/mine.pth", [second]) is None  # names cannot climb out
    with pytest.raises(WeightsError, match=r"XMem.pth.*not found in.*yaml_dir.*download it from https://github"):
        weights.resolve_weights("XMem.pth", [first, second])


def test_converted_safetensors_is_preferred_only_while_it_matches(server, tmp_path):
    url = _serve(server, "/convert/tiny.pth", _pth_bytes(_tiny_state()))
    pth = ensure_weights("tiny.pth", tmp_path, url=url, verify=tiny_verify)
    converted = weights.convert_to_safetensors(pth)
    assert converted == str(tmp_path / "tiny.safetensors")
    assert weights.resolve_weights("tiny.pth", [tmp_path]) == converted
    original, copy = weights.read_tensors(pth), weights.read_tensors(converted)
    assert original.keys() == copy.keys() and all(torch.equal(original[k], copy[k]) for k in original)

    os.remove(pth)  # only the converted file kept: still found under the original name
    os.remove(pth + ".sha256")
    assert weights.resolve_weights("tiny.pth", [tmp_path]) == converted

    other = _tiny_state()  # a different .pth under the same name: the old copy no longer stands in
    torch.save(other, pth)
    weights.record_sha256(pth, weights.file_sha256(pth))
    assert weights.resolve_weights("tiny.pth", [tmp_path]) == pth


# ---------------------------------------------------------------- one honest end-to-end run

@pytest.fixture(scope="module")
def xmem_checkpoint(synthetic_weights_file):
    return synthetic_weights_file


def test_real_xmem_checkpoint_downloads_verifies_and_converts(server, tmp_path, xmem_checkpoint):
    url = _serve(server, "/v1.0/XMem.pth", str(xmem_checkpoint), kind="file")
    models = tmp_path / "models" / "memvos"
    path = ensure_weights("XMem.pth", models, url=url, convert=True)  # default: strict XMem load
    assert path == str(models / "XMem.safetensors")
    assert weights.read_recorded_sha256(models / "XMem.pth") == weights.file_sha256(xmem_checkpoint)
    assert _leftovers(models) == ["XMem.pth", "XMem.pth.sha256", "XMem.safetensors", "XMem.safetensors.sha256"]
    net = load_network(path)
    expected = weights.read_tensors(xmem_checkpoint)
    assert torch.equal(net.state_dict()["key_proj.key_proj.weight"], expected["key_proj.key_proj.weight"])

    truncated = _serve(server, "/v1.0/broken/XMem.pth", xmem_checkpoint.read_bytes()[:1 << 24],
                       content_type="application/octet-stream")
    # A whole response carrying a cut-off checkpoint: only the strict load can catch it.
    with pytest.raises(WeightsError, match="refused.*could not be read"):
        ensure_weights("XMem-s012.pth", models, url=truncated)
    assert not (models / "XMem-s012.pth").exists()
