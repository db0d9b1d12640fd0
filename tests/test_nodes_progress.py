"""Every long node (Refine, Composite, Suggest Frames) moves a progress bar frame by frame, stops
on ComfyUI's cancel, and does its work on ComfyUI's compute device."""

import pytest
import torch

from pack_loader import pack_for_tests
from comfy_stand_ins import Interrupted, tiny_clip
from workflow_executor import outputs_of

PACK = pack_for_tests()
NODES = PACK.NODE_CLASS_MAPPINGS
FRAMES = 5


@pytest.fixture(scope="module")
def shot(comfy):
    frames, masks = tiny_clip(num_frames=FRAMES)
    model = NODES["MemVOSLoadModel"]().load("XMem.pth", "cpu", "fp32")[0]
    (session,) = NODES["MemVOSNewSession"]().create(model, internal_size=32)
    for object_id in (1, 2):
        (session,) = NODES["MemVOSAddAnnotation"]().add(session, frames, masks[object_id], 0, object_id)
    out = NODES["MemVOSPropagate"]().propagate(session, frames, "forward", 0, -1, 0, 10.0)
    return frames, out["result"][0], out["result"][1]


@pytest.fixture
def frame_by_frame(comfy, monkeypatch):
    """ComfyUI reports no free memory: every op's budget falls to one frame per chunk."""
    monkeypatch.setattr(comfy.modules["comfy.model_management"], "get_free_memory", lambda device=None: 0,
                        raising=False)
    monkeypatch.setattr(PACK.memvos_core.ops.chunking, "MIN_BUDGET", 1)
    comfy.progress.clear()
    comfy.checks, comfy.interrupt_after = 0, None
    yield comfy
    comfy.interrupt_after = None


def run_refine(frames, session, masks):
    node = NODES["MemVOSRefine"]
    return outputs_of(node, node().refine(masks, temporal_radius=1, fill_holes=True, remove_islands_px=2, grow_px=1,
                                          edge_radius=2, feather_px=1.0, frames=frames, memvos_linked_outputs=""))


def run_composite(frames, session, masks):
    node = NODES["MemVOSComposite"]
    return outputs_of(node, node().composite(frames, masks, "overlay", draw_ids=True))


def run_suggest(frames, session, masks):
    node = NODES["MemVOSSuggestFrames"]
    return outputs_of(node, node().suggest(session, frames, masks, 2, 1, True))


# node -> (run, bar total, bar positions in order)
LONG_NODES = {
    # the refinement, then the preview's tiles
    "refine": (run_refine, 2 * FRAMES, list(range(1, 2 * FRAMES + 1))),
    # the frames, then the preview's tiles
    "composite": (run_composite, 2 * FRAMES, list(range(1, 2 * FRAMES + 1))),
    # the signals, the keys of every frame, then the two picks
    "suggest": (run_suggest, 2 * FRAMES + 2, list(range(1, 2 * FRAMES + 3))),
}


@pytest.mark.parametrize("name", LONG_NODES)
def test_long_nodes_move_the_bar_every_frame(name, shot, frame_by_frame):
    run, total, positions = LONG_NODES[name]
    run(*shot)
    assert frame_by_frame.progress == [(p, total) for p in positions]


@pytest.mark.parametrize("name", LONG_NODES)
def test_long_nodes_stop_on_cancel(name, shot, frame_by_frame):
    run, total, _ = LONG_NODES[name]
    frame_by_frame.interrupt_after = 3  # the user presses cancel while the third frame is worked on
    with pytest.raises(Interrupted):
        run(*shot)
    done = [p for p, _ in frame_by_frame.progress]
    assert done and max(done) <= 3, "no work is reported after the cancel"
    frame_by_frame.interrupt_after = None
    frame_by_frame.progress.clear()
    run(*shot)  # the inputs are untouched: the same node runs through afterwards
    assert frame_by_frame.progress[-1] == (total, total)


def test_results_do_not_depend_on_the_chunking(shot, frame_by_frame, monkeypatch):
    frames, session, masks = shot
    small = run_refine(frames, session, masks)
    small_composite = run_composite(frames, session, masks)
    monkeypatch.undo()  # back to the whole clip in one chunk
    whole = run_refine(frames, session, masks)
    whole_composite = run_composite(frames, session, masks)
    assert torch.equal(small[0].chunk(0, FRAMES), whole[0].chunk(0, FRAMES))
    for a, b in zip(small_composite, whole_composite):
        assert torch.equal(a, b)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this checks the routing where no GPU can take the work")
def test_nodes_send_their_work_to_comfyuis_device(shot, comfy, monkeypatch):
    """With ComfyUI's device set to a GPU this PyTorch cannot use, the work fails there: proof
    that it is sent to ComfyUI's device, not left on the intermediate one."""
    monkeypatch.setattr(comfy.modules["comfy.model_management"], "get_torch_device", lambda: torch.device("cuda"))
    frames, session, masks = shot
    for run in (run_refine, run_composite):
        with pytest.raises((RuntimeError, AssertionError), match="CUDA|cuda"):
            run(frames, session, masks)


# ----------------------------------------------------------------------------- every phase that can take long

def run_propagate(frames, session, masks):
    node = NODES["MemVOSPropagate"]
    return outputs_of(node, node().propagate(session, frames, "forward", 0, -1, 0, 10.0))


def run_refine_with_union(frames, session, masks):
    node = NODES["MemVOSRefine"]
    return outputs_of(node, node().refine(masks, feather_px=1.0, frames=frames, memvos_linked_outputs="mask"))


def run_save_masks(frames, session, masks):
    node = NODES["MemVOSSaveMasks"]
    return outputs_of(node, node().save(masks, "memvos/progress", "matte", "", True, "none", 0.0))


def run_get_masks(frames, session, masks):
    node = NODES["MemVOSGetMasks"]
    return outputs_of(node, node().get(masks, memvos_linked_outputs="mask,label_map"))


def run_get_frames(frames, session, masks):
    node = NODES["MemVOSGetFrames"]
    return outputs_of(node, node().get(frames, 0, FRAMES, 0))


def run_select_with_union(frames, session, masks):
    node = NODES["MemVOSSelectObjects"]
    return outputs_of(node, node().select(masks, "1", memvos_linked_outputs="mask"))


def run_masks_to_keyframes(frames, session, masks):
    node = NODES["MemVOSMasksToKeyframes"]
    fresh = NODES["MemVOSNewSession"]().create(session.model, internal_size=32)[0]
    return outputs_of(node, node().convert(fresh, masks, frames, ", ".join(str(t) for t in range(FRAMES))))


# Each node's phases that grow with the shot, as the bars they move (their totals, in order): a
# phase missing here left the artist at a still bar (the preview pages: minutes at 100 %).
# Not here, as they take well under a second whatever the shot: Load Frames (a frame count and
# the first frame), Keyframes and Add Annotation (one frame each), New Session, Select Objects
# without its union (a view).
PHASES = {
    "propagate: the pass, its connected mask / label_map, then the preview pages": (run_propagate, [FRAMES] * 3),
    "refine: refinement, preview, union": (run_refine_with_union, [3 * FRAMES]),
    "composite: composited preview": (run_composite, [2 * FRAMES]),
    "suggest frames": (run_suggest, [2 * FRAMES + 2]),
    "save masks": (run_save_masks, [FRAMES]),
    "get masks": (run_get_masks, [FRAMES]),
    "get frames": (run_get_frames, [FRAMES]),
    "select objects: union": (run_select_with_union, [FRAMES]),
    "masks to keyframes": (run_masks_to_keyframes, [FRAMES]),
}


def bars(progress):
    """``[(total, [positions])]`` of the recorded updates, a new bar at each ``("bar", total)``."""
    out = []
    for done, total in progress:
        if done == "bar":
            out.append((total, []))
        else:
            out[-1][1].append(done)
    return out


@pytest.mark.parametrize("phase", PHASES)
def test_every_long_phase_reports_progress(phase, shot, frame_by_frame, monkeypatch):
    run, totals = PHASES[phase]
    monkeypatch.setattr(PACK.nodes.propagate_node, "PREVIEW_BAR_PIXELS", 0)  # a long shot's preview...
    monkeypatch.setitem(PACK.nodes.preview.write_preview.__kwdefaults__, "page_px", 48)  # ...of many pages
    monkeypatch.setattr(PACK.nodes.frames_nodes, "GET_CHUNK", 2)  # the loops' chunks: a few frames
    monkeypatch.setattr(PACK.nodes.mask_set.MaskSet.chunks, "__defaults__", (2,))
    utils = frame_by_frame.modules["comfy.utils"]

    class MarkedBar(utils.ProgressBar):
        def __init__(self, total):
            super().__init__(total)
            frame_by_frame.progress.append(("bar", total))
    monkeypatch.setattr(utils, "ProgressBar", MarkedBar)
    run(*shot)
    seen = bars(frame_by_frame.progress)
    assert [total for total, _ in seen] == totals, f"{phase}: bars {seen}"
    for total, positions in seen:
        assert positions and positions[-1] == total, f"{phase}: a bar stopped at {positions} of {total}"
        assert len(set(positions)) >= 2, f"{phase}: the bar jumped to its end ({positions})"
        assert positions == sorted(positions), f"{phase}: the bar went back ({positions})"
