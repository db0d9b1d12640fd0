"""Select Objects, Refine Masks, Composite, Suggest Frames, Save / Load Session."""
import json
import os

import pytest
import torch

from pack_loader import pack_for_tests
from comfy_stand_ins import tiny_clip
from workflow_executor import outputs_of

PACK = pack_for_tests()
NODES = PACK.NODE_CLASS_MAPPINGS


@pytest.fixture(scope="module")
def clip():
    return tiny_clip(num_frames=5)


@pytest.fixture(scope="module")
def model(comfy):
    return NODES["MemVOSLoadModel"]().load("XMem.pth", "cpu", "fp32")[0]


@pytest.fixture(scope="module")
def propagated(model, clip):
    """Objects 1 and 2 annotated on frame 0, propagated forward over clip frames 1..4 of 5."""
    frames, masks = clip
    (session,) = NODES["MemVOSNewSession"]().create(model, internal_size=32)
    for object_id in (1, 2):
        (session,) = NODES["MemVOSAddAnnotation"]().add(session, frames, masks[object_id], 0, object_id)
    out = NODES["MemVOSPropagate"]().propagate(session, frames, "forward", 0, -1, 0, 10.0)
    return out["result"]


@pytest.fixture(scope="module")
def other_model(synthetic_weights):
    """A model with other weights (another model_id)."""
    weights = {k: (v * 1.01 if v.is_floating_point() else v) for k, v in synthetic_weights.items()}
    return PACK.memvos_core.runtime.model.load_model(weights)


@pytest.fixture(scope="module")
def masks(propagated):
    return propagated[1]


def select(masks, ids):
    return outputs_of(NODES["MemVOSSelectObjects"], NODES["MemVOSSelectObjects"]().select(masks, ids))


def refine(masks, **settings):
    return outputs_of(NODES["MemVOSRefine"], NODES["MemVOSRefine"]().refine(masks, **settings))


def composite(frames, masks, mode, **settings):
    returned = NODES["MemVOSComposite"]().composite(frames, masks, mode, **settings)
    outputs_of(NODES["MemVOSComposite"], returned)
    return returned


# ------------------------------------------------------------------ Select Objects

def test_select_objects(masks):
    chosen, mask, image = select(masks, "2")
    assert chosen.object_ids == (2,)
    assert torch.equal(mask, masks.chunk(0, 5, [2])[:, 0])
    assert torch.equal(image, mask.unsqueeze(-1).expand(-1, -1, -1, 3))
    everyone, union, _ = select(masks, " ")
    assert everyone.object_ids == (1, 2) and torch.equal(union, masks.chunk(0, 5).amax(1))
    both, _, _ = select(masks, "2, 1")
    assert both.object_ids == (2, 1)


def test_select_objects_errors(masks):
    with pytest.raises(ValueError, match=r"object_ids: object\(s\) \[3\] are not in these masks"):
        select(masks, "3")
    with pytest.raises(ValueError, match="is not a list of object ids"):
        select(masks, "one")
    with pytest.raises(ValueError, match="not a MEMVOS_MASKS"):
        select(torch.zeros(5, 24, 40), "1")


# ------------------------------------------------------------------ Refine Masks

def test_refine_defaults_change_nothing(masks):
    refined, union = refine(masks)
    assert refined.object_ids == masks.object_ids and refined.stored is not None, "kept on disk, not in RAM"
    assert torch.allclose(refined.chunk(0, 5), masks.chunk(0, 5), atol=1e-3)
    assert masks.dense is None and masks.result is not None, "the input masks are untouched"


def test_refine_steps_do_what_they_say(masks, clip):
    frames, _ = clip
    hard, _ = refine(masks, binarize=True, threshold=0.5)
    assert set(torch.unique(hard.chunk(0, 5)).tolist()) <= {0.0, 1.0}
    area = hard.chunk(0, 5).sum()
    grown, _ = refine(masks, binarize=True, grow_px=2)
    shrunk, _ = refine(masks, binarize=True, grow_px=-1)
    assert grown.chunk(0, 5).sum() > area > shrunk.chunk(0, 5).sum()
    soft, union = refine(masks, binarize=True, feather_px=2.0)
    values = soft.chunk(0, 5)
    assert bool(((values > 0.05) & (values < 0.95)).any())
    assert torch.allclose(union, values.amax(1))
    smooth, _ = refine(masks, temporal_radius=1, edge_radius=2, frames=frames)
    assert smooth.chunk(0, 5).shape == masks.chunk(0, 5).shape


def test_refine_needs_frames_for_temporal_and_edges(masks, clip):
    with pytest.raises(ValueError, match="frames is not connected"):
        refine(masks, temporal_radius=1)
    frames, _ = clip
    with pytest.raises(ValueError, match="frames has 3 frames but the masks cover 5"):
        refine(masks, edge_radius=2, frames=frames[:3])


# ------------------------------------------------------------------ Composite

def test_composite_modes(masks, clip, comfy):
    frames, _ = clip
    union = masks.chunk(0, 5).amax(1)
    for mode, channels in (("overlay", 3), ("matte rgba", 4), ("matte on black", 3), ("replace background", 3)):
        out = composite(frames, masks, mode)
        image, mask, mask_image = out["result"]
        assert tuple(image.shape) == (5, 24, 40, channels), mode
        assert torch.allclose(mask, union) and torch.equal(mask_image[..., 1], mask)
        entry = out["ui"]["memvos_preview"][0]
        assert os.path.isfile(os.path.join(comfy.dirs["temp"], entry["subfolder"], entry["filename"]))
    rgba = composite(frames, masks, "matte rgba")["result"][0]
    assert torch.equal(rgba[..., :3], frames) and torch.allclose(rgba[..., 3], union)
    green = composite(frames, masks, "replace background", background_color="#00ff00")["result"][0]
    outside = union == 0
    assert torch.allclose(green[outside], torch.tensor([0.0, 1.0, 0.0]).expand(int(outside.sum()), 3))
    picture = torch.full((1, 12, 20, 3), 0.25)
    behind = composite(frames, masks, "replace background", background=picture)["result"][0]
    assert torch.allclose(behind[outside], torch.full((int(outside.sum()), 3), 0.25))


def test_composite_inpaint_prep(masks, clip):
    frames, raw = clip
    image, mask, mask_image = composite(frames, masks, "inpaint", object_ids="1", grow_px=2, feather_px=1.0)["result"]
    assert torch.equal(image, frames), "frames go to inpainting unchanged"
    one = masks.chunk(0, 5, [1])[:, 0] >= 0.5
    assert bool((mask[one] == 1).all()) and mask.sum() > one.sum()
    assert float(mask[0][raw[2][0] > 0].max()) == 0.0, "object 2 is kept (on the keyframe, where it is exact)"
    assert torch.equal(mask_image[..., 0], mask)


def test_composite_aligns_a_sub_range_with_the_whole_shot(propagated, clip):
    frames, _ = clip
    session = propagated[0]
    out = NODES["MemVOSPropagate"]().propagate(session, frames, "forward", 2, 3, 0, 10.0)
    part = out["result"][1]
    assert part.clip_start == 2 and part.num_frames == 2
    image = composite(frames, part, "matte rgba")["result"][0]
    assert torch.equal(image[..., :3], frames[2:4])
    with pytest.raises(ValueError, match="frames has 4 frames but the masks cover 2"):
        composite(frames[:4], part, "overlay")
    with pytest.raises(ValueError, match="frames are 20\u00d712 but the masks"):
        composite(torch.rand(2, 12, 20, 3), part, "overlay")


def test_composite_refuses_bad_settings(masks, clip):
    frames, _ = clip
    with pytest.raises(ValueError, match="mode 'blend' is not one of"):
        composite(frames, masks, "blend")
    with pytest.raises(ValueError, match="background colour 'green'"):
        composite(frames, masks, "replace background", background_color="green")
    with pytest.raises(ValueError, match="background has 3 frames but the masks cover 5"):
        composite(frames, masks, "replace background", background=torch.rand(3, 24, 40, 3))


# ------------------------------------------------------------------ Suggest Frames

def test_suggest_frames(propagated, clip, comfy):
    frames, _ = clip
    session, masks, _, _ = propagated
    report, top, listed, suggestions = outputs_of(
        NODES["MemVOSSuggestFrames"], NODES["MemVOSSuggestFrames"]().suggest(session, frames, masks, 3, 1, True))
    assert isinstance(report, str) and report
    frames_listed = [int(f) for f in listed.split(",")] if listed else []
    assert [s["frame"] for s in suggestions] == frames_listed and len(frames_listed) <= 3
    assert top == (frames_listed[0] if frames_listed else -1)
    assert 0 not in frames_listed, "the annotated frame is not suggested again"
    assert all(set(s) == {"frame", "object_id", "reason", "score", "detail"} for s in suggestions)
    out = composite(frames, masks, "overlay", suggestions=suggestions)
    entry = out["ui"]["memvos_preview"][0]
    with open(os.path.join(comfy.dirs["temp"], entry["subfolder"], entry["filename"])) as f:
        manifest = json.load(f)
    assert [s["clip_frame"] for s in manifest["suggestions"]] == sorted(frames_listed)


def test_suggest_refuses_masks_of_another_model(propagated, clip, other_model):
    frames, _ = clip
    _, masks, _, _ = propagated
    (other_session,) = NODES["MemVOSNewSession"]().create(other_model, internal_size=32)
    with pytest.raises(ValueError, match="another model"):
        NODES["MemVOSSuggestFrames"]().suggest(other_session, frames, masks, 3, 1, False)


# ------------------------------------------------------------------ Save / Load Session

def test_save_and_load_session(propagated, model, comfy):
    session = propagated[0]
    saver, loader = NODES["MemVOSSaveSession"](), NODES["MemVOSLoadSession"]
    first = saver.save(session, "memvos/shot")["result"][0]
    second = saver.save(session, "memvos/shot")
    outputs_of(NODES["MemVOSSaveSession"], second)
    assert first == "memvos/shot_00001.session.safetensors"
    assert second["result"][0] == "memvos/shot_00002.session.safetensors" and second["ui"]["text"] == [second["result"][0]]
    (loaded,) = outputs_of(loader, loader().load(model, first))
    assert [k.frame_index for k in loaded.keyframes] == [0] and loaded.object_ids == (1, 2)
    assert loaded.forward_state.next_frame == session.forward_state.next_frame
    fingerprint = loader.IS_CHANGED(session_file=first, model=None)
    absolute = os.path.join(comfy.dirs["output"], "memvos", "shot_00001.session.safetensors")
    assert loader().load(model, absolute)[0].object_ids == (1, 2)
    os.utime(absolute, ns=(0, 10**9))
    assert loader.IS_CHANGED(session_file=first, model=None) != fingerprint


def test_session_files_refuse_what_they_should(propagated, other_model):
    session = propagated[0]
    saved = NODES["MemVOSSaveSession"]().save(session, "memvos/refuse")["result"][0]
    other = other_model
    with pytest.raises(ValueError, match="was made with model"):
        NODES["MemVOSLoadSession"]().load(other, saved)
    with pytest.raises(ValueError, match="session_file 'nope.session.safetensors' was not found"):
        NODES["MemVOSLoadSession"]().load(other, "nope.session.safetensors")
    with pytest.raises(ValueError, match="filename_prefix '../escape' must be a relative path inside"):
        NODES["MemVOSSaveSession"]().save(session, "../escape")
