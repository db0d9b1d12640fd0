"""MatAnyone checkpoints: recognised from their keys, loaded strictly from .pth (weights_only)
and .safetensors, bad files refused with one clear error, the licence stated on loading, the
official files known for download."""
import logging
from functools import lru_cache

import pytest
import torch

from memvos_core.families.matanyone.network import MatAnyoneNetwork
from memvos_core.families.matanyone.synthetic import synthetic_matanyone_state_dict
from memvos_core.network import CheckpointError, detect_family, load_network
from memvos_core.weights import KNOWN_CHECKPOINTS


@lru_cache(maxsize=None)
def release_state():
    return synthetic_matanyone_state_dict()


def test_recognised_from_keys_apart_from_cutie():
    state = release_state()
    assert detect_family(state) == "matanyone"
    cutie_like = {k: v for k, v in state.items() if not k.startswith(("temp_sparity.", "mask_decoder.pred_mat."))}
    assert detect_family(cutie_like) == "cutie"


def test_release_layout_loads_strictly_from_safetensors_with_the_licence_logged(tmp_path, caplog):
    from safetensors.torch import save_file
    path = tmp_path / "matanyone2.safetensors"
    save_file({k: v.contiguous() for k, v in release_state().items()}, str(path))
    with caplog.at_level(logging.WARNING):
        net = load_network(path)
    assert isinstance(net, MatAnyoneNetwork) and net.family == "matanyone" and not net.training
    # The single-object inputs are widened by a zero "others" channel; everything else as stored.
    w = net.state_dict()["mask_encoder.conv1.weight"]
    assert w.shape[1] == 5 and torch.equal(w[:, :4], release_state()["mask_encoder.conv1.weight"])
    assert not w[:, 4].any()
    assert torch.equal(net.state_dict()["temp_sparity.conv3x3_out.weight"],
                       release_state()["temp_sparity.conv3x3_out.weight"])
    licence = [r.getMessage() for r in caplog.records if "S-Lab License 1.0" in r.getMessage()]
    assert len(licence) == 1 and "non-commercial" in licence[0]


def test_pth_with_pickled_code_is_refused(tmp_path):
    path = tmp_path / "matanyone.pth"
    torch.save({"weights": release_state()["temp_sparity.conv3x3_out.weight"], "hook": logging.getLogger}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_network(path)


@pytest.mark.parametrize("damage, message", [
    (lambda s: s.pop("mask_decoder.up_2_1.out_conv.conv1.weight"), "1 missing keys"),
    (lambda s: s.update({"mask_decoder.extra.weight": torch.zeros(1)}), "1 unexpected keys"),
    (lambda s: s.update({"mask_decoder.pred_mat.weight": torch.zeros(1, 8, 3, 3)}), "wrong shapes"),
    (lambda s: s.pop("pix_feat_proj.weight"), "not a complete MatAnyone checkpoint"),
])
def test_damaged_state_is_refused_with_one_clear_line(damage, message):
    state = dict(release_state())
    damage(state)
    with pytest.raises(CheckpointError, match=message) as info:
        load_network(state, source_name="matanyone.pth")
    text = str(info.value)
    assert "matanyone.pth" in text and "MatAnyone" in text and "\n" not in text


def test_official_files_are_known_for_download():
    for name, repo in (("matanyone.pth", "MatAnyone"), ("matanyone2.pth", "MatAnyone2")):
        known = KNOWN_CHECKPOINTS[name]
        assert known.family == "matanyone"
        assert known.url == f"https://github.com/pq-yang/{repo}/releases/download/v1.0.0/{name}"
        assert "non-commercial" in known.description
