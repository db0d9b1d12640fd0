"""Downloading Cutie checkpoints: the published md5 is checked, and the default verification loads
a file into the network of its own family (against a server on 127.0.0.1)."""
import dataclasses
import hashlib

import pytest

import cutie_fixture as cf
from memvos_core import weights
from memvos_core.weights import WeightsError, download_weights, ensure_weights
from test_weights import _leftovers, _pth_bytes, _serve, _tiny_state, server, tiny_verify  # noqa: F401


def test_the_published_md5_is_checked_for_the_official_file(server, tmp_path, monkeypatch):  # noqa: F811
    body = _pth_bytes(_tiny_state())
    url = _serve(server, "/v1.0/cutie-base-mega.pth", body)
    known = weights.KNOWN_CHECKPOINTS["cutie-base-mega.pth"]
    for md5, ok in (("0" * 32, False), (hashlib.md5(body).hexdigest(), True)):
        monkeypatch.setitem(weights.KNOWN_CHECKPOINTS, known.name, dataclasses.replace(known, url=url, md5=md5))
        folder = tmp_path / md5[:4]
        if ok:
            assert ensure_weights(known.name, folder, verify=tiny_verify) == str(folder / known.name)
        else:
            with pytest.raises(WeightsError, match="md5 .* is not the one the official project publishes"):
                ensure_weights(known.name, folder, verify=tiny_verify)
            assert _leftovers(folder) == []


def test_default_verification_loads_into_the_files_own_family(server, tmp_path):  # noqa: F811
    partial = {k: v for k, v in cf.state_dict("small").items() if k.startswith("pixel_encoder.conv1")}
    url = _serve(server, "/v1.0/broken-cutie.pth", _pth_bytes(partial))
    with pytest.raises(WeightsError, match="refused: .*not a complete Cutie checkpoint"):
        download_weights(url, tmp_path / "cutie-small-mega.pth")
    assert _leftovers(tmp_path) == []
