"""SAM 2.1 checkpoints: strict loading of the generated tiny weights (the parity fixture's rule),
size detection for the four released layouts, and one clear error for each kind of bad file."""
import pytest
import torch

from memvos_core.families.sam2.checkpoint import build_sam2, detect_size, load_sam2
from memvos_core.families.sam2.network import SIZES, Sam2Network
from memvos_core.network.checkpoint import CheckpointError
from sam2_fixture import generated_state


@pytest.fixture(scope="module")
def tiny_state():
    return generated_state()


def _layout(size):
    with torch.device("meta"):
        return Sam2Network(size).state_dict()


@pytest.mark.parametrize("size,params", [("tiny", 38_962_754), ("small", 46_060_610),
                                         ("base_plus", 80_850_434), ("large", 224_446_898)])
def test_each_released_size_is_recognised_from_its_keys(size, params):
    state = _layout(size)
    assert detect_size(state) == size
    assert sum(t.numel() for t in state.values()) == params
    assert SIZES[size].embed_dim == state["image_encoder.trunk.patch_embed.proj.weight"].shape[0]


def test_generated_tiny_weights_load_strictly_from_an_official_layout_pt(tmp_path, tiny_state):
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": tiny_state}, path)
    net = load_sam2(str(path), image_size=512)
    assert net.size == "tiny" and net.image_size == 512 and net.grid == 32
    w = net.state_dict()["sam_mask_decoder.iou_token.weight"]
    assert torch.equal(w, tiny_state["sam_mask_decoder.iou_token.weight"])


def test_missing_unexpected_and_misshapen_keys_are_named(tiny_state):
    state = dict(tiny_state)
    del state["no_obj_ptr"]
    with pytest.raises(CheckpointError, match=r"1 missing keys \(no_obj_ptr\)"):
        build_sam2(state, "cut.pt")
    state = dict(tiny_state, extra=torch.zeros(1))
    with pytest.raises(CheckpointError, match="unexpected keys.*extra"):
        build_sam2(state, "extra.pt")
    state = dict(tiny_state)
    state["obj_ptr_tpos_proj.weight"] = torch.zeros(32, 256)
    with pytest.raises(CheckpointError, match=r"wrong shapes.*obj_ptr_tpos_proj.weight \(32, 256\)"):
        build_sam2(state, "shape.pt")


def test_an_unreleased_trunk_and_a_foreign_file_are_refused(tiny_state):
    state = {k: v for k, v in tiny_state.items() if not k.startswith("image_encoder.trunk.blocks.11.")}
    with pytest.raises(CheckpointError, match="96 wide with 11 blocks, none of the released sizes"):
        build_sam2(state, "odd.pt")
    with pytest.raises(CheckpointError, match="not a SAM 2 checkpoint"):
        build_sam2({"key_encoder.conv1.weight": torch.zeros(1)}, "xmem.pth")


def test_corrupt_and_pickled_code_files_are_refused(tmp_path):
    bad = tmp_path / "sam2.1_hiera_tiny.pt"
    bad.write_bytes(b"<html>not found</html>")
    with pytest.raises(CheckpointError, match="sam2.1_hiera_tiny.pt"):
        load_sam2(str(bad))
    evil = tmp_path / "evil.pt"
    torch.save({"model": {"x": torch.zeros(1)}, "cfg": object()}, evil)
    with pytest.raises(CheckpointError, match="refused"):
        load_sam2(str(evil))


def test_image_size_must_fit_the_stride(tiny_state):
    with pytest.raises(ValueError, match="multiple of 16"):
        build_sam2(tiny_state, "t.pt", image_size=500)
