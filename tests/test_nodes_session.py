"""Load Model, New Session, Add Annotation Frame and Propagate, called as ComfyUI calls them."""
import json
import logging
import os

import pytest
import torch

from pack_loader import pack_for_tests
from comfy_stand_ins import Interrupted, link_weights, tiny_clip
from workflow_executor import outputs_of

PACK = pack_for_tests()
NODES = PACK.NODE_CLASS_MAPPINGS
SMALL = 32  # internal size for the tests


@pytest.fixture(autouse=True)
def fresh_counters(comfy):
    comfy.progress.clear()
    comfy.checks, comfy.interrupt_after, comfy.intermediate = 0, None, torch.device("cpu")


@pytest.fixture(scope="module")
def model(comfy):
    (loaded,) = outputs_of(NODES["MemVOSLoadModel"], NODES["MemVOSLoadModel"]().load("XMem.pth", "cpu", "auto"))
    return loaded


@pytest.fixture(scope="module")
def clip():
    return tiny_clip()


def new_session(model, **settings):
    returned = NODES["MemVOSNewSession"]().create(model, **{"internal_size": SMALL, **settings})
    (session,) = outputs_of(NODES["MemVOSNewSession"], returned)
    return session


def annotate(session, frames, mask, frame_index, object_id):
    returned = NODES["MemVOSAddAnnotation"]().add(session, frames, mask, frame_index, object_id)
    (session,) = outputs_of(NODES["MemVOSAddAnnotation"], returned)
    return session


@pytest.fixture(scope="module")
def annotated(model, clip):
    frames, masks = clip
    session = annotate(new_session(model), frames, masks[1], 0, 1)
    return annotate(session, frames, masks[2][:1], 0, 2)


@pytest.fixture(scope="module")
def propagated(comfy, annotated, clip):
    frames, _ = clip
    out = NODES["MemVOSPropagate"]().propagate(annotated, frames, "both", 0, -1, 0, 12.0)
    outputs_of(NODES["MemVOSPropagate"], out)
    return out, list(comfy.progress)


# ------------------------------------------------------------------ Load Model

def test_weights_menu_lists_local_files_and_the_known_checkpoints(comfy):
    spec = NODES["MemVOSLoadModel"].INPUT_TYPES()["required"]
    assert spec["weights"][0][:1] == ["XMem.pth"] and "XMem-s012.pth" in spec["weights"][0]
    assert spec["device"][0] == ["auto", "cpu", "cuda", "mps"]
    assert spec["precision"][0] == ["auto", "fp32", "fp16", "bf16"]


def test_loaded_model_waits_on_the_cpu_and_is_handed_to_the_memory_manager(model):
    model_nodes = PACK.nodes.model_nodes
    assert model.device == "cpu" and model.precision == "fp32" and model.model_id
    assert model in model_nodes._MANAGED
    assert model_nodes.ready_network(model) is model.network


def test_a_missing_file_says_where_to_put_it(comfy):
    with pytest.raises(Exception, match="was not found in .*memvos"):
        NODES["MemVOSLoadModel"]().load("missing.safetensors", "cpu", "auto")


def test_a_known_checkpoint_downloads_with_progress_and_cancel(comfy, monkeypatch, synthetic_weights_file):
    model_nodes = PACK.nodes.model_nodes
    calls = {}

    def fake_ensure(name, models_dir, *, search_dirs, progress, cancel):
        calls.update(name=name, models_dir=models_dir, search_dirs=search_dirs)
        progress(50, 100)
        progress(100, 100)
        cancel()
        return link_weights(synthetic_weights_file, str(comfy.root), "downloaded.pth")

    monkeypatch.setattr(model_nodes.core_weights, "ensure_weights", fake_ensure)
    (loaded,) = NODES["MemVOSLoadModel"]().load("XMem-s012.pth", "cpu", "fp32")
    assert calls["name"] == "XMem-s012.pth"
    assert calls["models_dir"] == os.path.join(comfy.dirs["models"], "memvos") == calls["search_dirs"][0]
    assert comfy.progress == [(50, 100), (100, 100)] and comfy.checks >= 3
    assert loaded.model_id


def test_cache_fingerprint_follows_the_weights_file(comfy, synthetic_weights_file):
    cls = NODES["MemVOSLoadModel"]
    before = cls.IS_CHANGED(weights="XMem.pth", device="cpu", precision="auto")
    path = os.path.join(comfy.dirs["models"], "memvos", "XMem.pth")
    stat = os.stat(path)
    os.remove(path)  # a link to the run's shared weights: replaced, never touched
    try:
        with open(path, "wb") as f:
            f.truncate(stat.st_size)  # the same size (sparse: no disk), only a later mtime
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        assert cls.IS_CHANGED(weights="XMem.pth", device="cpu", precision="auto") != before
    finally:
        os.remove(path)
        link_weights(synthetic_weights_file, os.path.dirname(path))
    assert cls.IS_CHANGED(weights="XMem.pth", device="cpu", precision="auto") == before
    assert cls.IS_CHANGED(weights="XMem-s012.pth", device="cpu", precision="auto") == "absent:XMem-s012.pth"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA machine can load on cuda")
def test_an_unavailable_device_is_a_clear_error(comfy):
    with pytest.raises(ValueError, match="device 'cuda'.*choose 'auto' or 'cpu'"):
        NODES["MemVOSLoadModel"]().load("XMem.pth", "cuda", "auto")


# ------------------------------------------------------------------ New Session

def test_new_session_defaults_are_xmems(model):
    session = new_session(model, internal_size=480)
    core_config = PACK.memvos_core.config.MemoryConfig()
    assert session.config == core_config and session.internal_size == 480 and not session.keyframes


def test_new_session_refuses_bad_settings(model):
    with pytest.raises(ValueError, match="internal_size 8 is too small"):
        new_session(model, internal_size=8)
    with pytest.raises(ValueError, match="min_mid_term_frames"):
        new_session(model, min_mid_term_frames=10, max_mid_term_frames=10)
    with pytest.raises(ValueError, match="not a MemVOS model"):
        NODES["MemVOSNewSession"]().create("XMem.pth")


# ------------------------------------------------------------------ Add Annotation Frame

def test_mask_layouts(model, clip):
    frames, masks = clip
    empty = new_session(model)
    for mask in (masks[1][3], masks[1][3:4], masks[1]):
        session = annotate(empty, frames, mask, 3, 1)
        (keyframe,) = session.keyframes
        assert keyframe.frame_index == 3 and keyframe.object_ids == (1,)
        assert torch.equal(keyframe.labels == 1, masks[1][3] > 0.5)
        assert torch.equal(keyframe.image, (frames[3] * 255).round().to(torch.uint8))
    single = annotate(empty, frames[3:4], masks[1][3], 7, 1)
    assert single.keyframes[0].frame_index == 7, "one frame connected: frame_index only says where it is"
    assert not empty.keyframes, "the input session is never changed"


def test_annotations_chain_and_inputs_stay_untouched(model, clip):
    frames, masks = clip
    frames_before, mask_before = frames.clone(), masks[2].clone()
    session = annotate(annotate(new_session(model), frames, masks[1], 0, 1), frames, masks[2], 4, 2)
    assert [k.frame_index for k in session.keyframes] == [0, 4] and session.object_ids == (1, 2)
    assert torch.equal(frames, frames_before) and torch.equal(masks[2], mask_before)


def test_a_mask_of_another_scale_is_resized_with_a_warning(model, clip, caplog):
    frames, masks = clip
    half = masks[1][0, ::2, ::2]
    with caplog.at_level(logging.WARNING, logger="memvos"):
        session = annotate(new_session(model), frames, half, 0, 1)
    assert "resized" in caplog.text
    assert session.keyframes[0].labels.shape == frames.shape[1:3]


def test_bad_annotations_are_clear_errors(model, clip):
    frames, masks = clip
    empty = new_session(model)
    with pytest.raises(ValueError, match="different aspect ratio"):
        annotate(empty, frames, masks[1][0, :, :20], 0, 1)
    with pytest.raises(ValueError, match="frame_index 9 is outside frames"):
        annotate(empty, frames, masks[1][0], 9, 1)
    with pytest.raises(ValueError, match="mask for object 1 on frame 0 is empty"):
        annotate(empty, frames, torch.zeros(24, 40), 0, 1)
    with pytest.raises(ValueError, match="batch of 3 masks but frames has 6"):
        annotate(empty, frames, masks[1][:3], 0, 1)
    with pytest.raises(ValueError, match="session is a str"):
        annotate("session", frames, masks[1][0], 0, 1)
    known = annotate(empty, frames, masks[1][0], 0, 1)
    absent = annotate(known, frames, torch.zeros(24, 40), 5, 1)
    assert absent.keyframe(5).object_ids == (1,) and not bool(absent.keyframe(5).labels.any())


# ------------------------------------------------------------------ Propagate

def test_propagate_outputs(propagated, clip, comfy):
    frames, masks = clip
    (out, _) = propagated
    session, mask_set, union, label_map = out["result"]
    assert tuple(union.shape) == (6, 24, 40) and tuple(label_map.shape) == (6, 24, 40, 3)
    keyframe = (masks[1][0] + masks[2][0]) > 0
    assert torch.equal(union[0] > 0.5, keyframe) and float(union.max()) <= 1.0
    palette = PACK.memvos_core.media_io.palette.davis_palette().float() / 255
    assert torch.equal(label_map[0][masks[1][0] > 0], palette[1].expand(int(masks[1][0].sum()), 3))
    assert mask_set.object_ids == (1, 2) and mask_set.clip_start == 0 and mask_set.num_frames == 6
    later = mask_set.chunk(5, 6)[0]
    assert float(later[0][masks[1][5] > 0].mean()) > float(later[0][masks[1][5] == 0].mean()), "object 1 followed"
    # One keyframe at the start: "both" runs the forward pass only (the backward one adds nothing).
    assert session.forward_state is not None and session.backward_state is None
    entry = out["ui"]["memvos_preview"][0]
    with open(os.path.join(comfy.dirs["temp"], entry["subfolder"], entry["filename"])) as f:
        manifest = json.load(f)
    assert manifest["num_frames"] == 6 and manifest["fps"] == 12.0
    assert [o["id"] for o in manifest["objects"]] == [1, 2]
    assert manifest["keyframes"] == [{"frame": 0, "clip_frame": 0, "objects": [1, 2]}]


def test_progress_reports_every_frame_of_the_work(propagated, annotated):
    _, progress = propagated
    assert progress[:6] == [(n, 6) for n in range(1, 7)]   # "both" from one keyframe at 0: the forward pass
    assert progress[6:] == [(6, 6)]   # then the connected mask / label_map batch, its own bar (one chunk)
    assert annotated.forward_state is None, "the input session is never changed"


def test_cancel_stops_within_a_frame(comfy, annotated, clip):
    frames, _ = clip
    comfy.interrupt_after = 3
    with pytest.raises(Interrupted):
        NODES["MemVOSPropagate"]().propagate(annotated, frames, "forward", 0, -1, 0, 12.0)
    assert len(comfy.progress) <= 2, "cancel is checked every frame"


def test_frame_range_and_chunk_offset(comfy, annotated, clip):
    frames, _ = clip
    out = NODES["MemVOSPropagate"]().propagate(annotated, frames, "forward", 1, 3, 0, 12.0)
    session, mask_set, union, _ = out["result"]
    assert tuple(union.shape) == (3, 24, 40) and mask_set.clip_start == 1
    assert session.forward_state.next_frame == 4
    with pytest.raises(ValueError, match="start_frame 9 .. end_frame -1 selects none of the frames"):
        NODES["MemVOSPropagate"]().propagate(annotated, frames, "forward", 9, -1, 0, 12.0)
    with pytest.raises(ValueError, match="clip frames 10..15"):
        NODES["MemVOSPropagate"]().propagate(annotated, frames, "forward", 0, 5, 10, 12.0)


def test_outputs_go_to_the_intermediate_device(comfy, annotated, clip):
    frames, _ = clip
    comfy.intermediate = torch.device("meta")
    out = NODES["MemVOSPropagate"]().propagate(annotated, frames[:2], "forward", 0, -1, 0, 12.0)
    session, _, union, label_map = out["result"]
    assert union.device.type == "meta" and label_map.device.type == "meta"
    assert {t.device.type for t in session.forward_state.tensors.values()} == {"meta"}, "memory state too"


def test_propagate_refuses_bad_inputs(model, annotated, clip):
    frames, _ = clip
    with pytest.raises(ValueError, match="no keyframe: open the MemVOS Keyframes node"):
        NODES["MemVOSPropagate"]().propagate(new_session(model), frames, "both", 0, -1, 0, 12.0)
    with pytest.raises(ValueError, match="annotations were drawn on 24x40 frames"):
        NODES["MemVOSPropagate"]().propagate(annotated, torch.rand(2, 30, 50, 3), "both", 0, -1, 0, 12.0)
    with pytest.raises(ValueError, match=r"frames must be an IMAGE batch"):
        NODES["MemVOSPropagate"]().propagate(annotated, frames[..., :2], "both", 0, -1, 0, 12.0)


def test_new_session_test_time_augmentation_widgets(model):
    plain = new_session(model)
    assert plain.tta_scales == () and plain.tta_flip is False
    tta = new_session(model, tta_flip=True, tta_scales="1.0, 0.75")
    assert tta.tta_scales == (1.0, 0.75) and tta.tta_flip is True
    with pytest.raises(ValueError, match="tta_scales"):
        new_session(model, tta_scales="big")
    with pytest.raises(ValueError, match="between 0.25 and 4"):
        new_session(model, tta_scales="1.0, 9")
