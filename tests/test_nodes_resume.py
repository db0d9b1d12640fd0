"""A cancelled Propagate node resumes: queued again with the same inputs it continues from the
checkpoint its run left in ComfyUI's temp folder, and gives the masks of an uninterrupted run."""
import gc
import os

import pytest
import torch

from pack_loader import pack_for_tests
from comfy_stand_ins import Interrupted, annotated_session, tiny_clip

PACK = pack_for_tests()
NODES = PACK.NODE_CLASS_MAPPINGS
RUNS = PACK.nodes.propagation_runs
FRAMES, KEYS = 10, (0, 5)
WORK = (KEYS[-1] + 1) + FRAMES  # both directions: backward from frame 12 down, then forward over all


@pytest.fixture(scope="module")
def shot(comfy):
    frames, masks = tiny_clip(num_frames=FRAMES)
    return annotated_session(NODES, frames, masks, KEYS), frames


def propagate(session, frames, **widgets):
    settings = {"direction": "both", "start_frame": 0, "end_frame": -1, "first_frame_index": 0,
                "preview_fps": 10.0, "memvos_linked_outputs": "", **widgets}
    return NODES["MemVOSPropagate"]().propagate(session, frames, **settings)["result"]


def steps_of_propagate(comfy, total=WORK):
    """The frames of work a run reported (Propagate's bar; the preview's has its own total)."""
    return [done for done, of in comfy.progress if of == total]


def cancelled_at(comfy, session, frames, fraction, **widgets):
    """Runs the node and presses cancel once ``fraction`` of the work is done; returns the frames done."""
    comfy.progress.clear()
    frame = int(WORK * fraction)
    comfy.checks, comfy.interrupt_after = 0, 2 * frame  # a progress update and a cancel check per frame
    try:
        with pytest.raises(Interrupted):
            propagate(session, frames, **widgets)
    finally:
        comfy.interrupt_after = None
    return max(steps_of_propagate(comfy))


def run_folders(comfy):
    folder = os.path.join(comfy.dirs["temp"], RUNS.RUNS_FOLDER)
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def test_resume_after_cancel_gives_the_uninterrupted_masks_and_skips_the_done_work(comfy, shot):
    session, frames = shot
    done = cancelled_at(comfy, session, frames, 0.4)
    assert done == int(WORK * 0.4)
    assert len(run_folders(comfy)) == 1, "the cancelled run keeps its checkpoint in ComfyUI's temp folder"

    comfy.progress.clear()
    resumed_session, resumed = propagate(session, frames)[:2]
    steps = steps_of_propagate(comfy)
    assert steps[0] == done + 1 and steps[-1] == WORK, "the second run starts past the cancelled point"
    assert len(steps) == WORK - done, "only the frames after the checkpoint are computed again"

    comfy.progress.clear()
    whole_session, whole = propagate(session, frames)[:2]  # the resumed results hold their folder: afresh
    assert len(steps_of_propagate(comfy)) == WORK
    assert torch.equal(resumed.chunk(0, FRAMES), whole.chunk(0, FRAMES))
    for name in ("forward_state", "backward_state"):
        a, b = getattr(resumed_session, name), getattr(whole_session, name)
        assert a.tensors.keys() == b.tensors.keys()
        assert all(torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors)

    del resumed_session, resumed, whole_session, whole
    gc.collect()
    assert run_folders(comfy) == [], "a finished run's folder goes with its results"


def test_resume_and_cancel_with_other_inputs_starts_afresh(comfy, shot):
    session, frames = shot
    cancelled_at(comfy, session, frames, 0.4)
    changed = frames.clone()
    changed[3] = 1 - changed[3]  # one frame of the footage differs: another run
    comfy.progress.clear()
    _, masks = propagate(session, changed)[:2]
    assert steps_of_propagate(comfy)[0] == 1
    assert len(run_folders(comfy)) == 2
    del masks
    gc.collect()
    assert len(run_folders(comfy)) == 1, "the cancelled run is still there to resume"


def run_key(session, clip, first, direction, start, end):
    """The digest naming the node's run folder (the core's, over the node's digest of the frames)."""
    return PACK.memvos_core.session.run_folder.run_digest(session, first, direction, start, end,
                                                          RUNS.frames_key(clip))


def test_every_input_of_a_run_names_it(comfy, shot):
    session, frames = shot
    clip = PACK.nodes.common.check_frames(frames)
    key = run_key(session, clip, 0, "both", 0, FRAMES)
    assert key == run_key(session, clip.clone(), 0, "both", 0, FRAMES)
    changed = clip.clone()
    changed[7, 8, 8, 0] += 0.5  # one pixel the fingerprint samples
    one_object = session.remove_keyframe(KEYS[-1])
    others = [run_key(session, changed, 0, "both", 0, FRAMES),
              run_key(session, clip, 0, "forward", 0, FRAMES),
              run_key(session, clip, 0, "both", 1, FRAMES),
              run_key(session, clip, 0, "both", 0, FRAMES - 1),
              run_key(session, clip[1:], 1, "both", 1, FRAMES),
              run_key(one_object, clip, 0, "both", 0, FRAMES),
              run_key(session.replace(internal_size=48), clip, 0, "both", 0, FRAMES)]
    assert len({key, *others}) == len(others) + 1


def test_span_resume_and_cancel_continues_the_span_run_with_the_uncancelled_masks(comfy, shot):
    """A span run (rerun = span, after a keyframe was added) cancelled half-way keeps its
    checkpoint: queued again, the node continues it and gives the masks of an uncancelled one."""
    session, frames = shot
    _, masks = tiny_clip(num_frames=FRAMES)
    (fixed,) = NODES["MemVOSAddAnnotation"]().add(session, frames, masks[1], 8, 1)
    settings = {"direction": "both", "start_frame": 0, "end_frame": -1, "first_frame_index": 0,
                "preview_fps": 10.0, "rerun": "span", "memvos_linked_outputs": ""}
    node = NODES["MemVOSPropagate"]()
    node.propagate(session, frames, **settings)
    comfy.progress.clear()
    comfy.checks, comfy.interrupt_after = 0, 10  # a progress update and a cancel check per frame: 5 frames
    try:
        with pytest.raises(Interrupted):
            node.propagate(fixed, frames, **settings)
    finally:
        comfy.interrupt_after = None
    total = comfy.progress[0][1]
    done = max(d for d, of in comfy.progress if of == total)
    assert 0 < done < total < WORK, "a span run, not the whole range, cancelled part-way"
    comfy.progress.clear()
    resumed = node.propagate(fixed, frames, **settings)["result"]
    steps = [d for d, of in comfy.progress if of == total]
    assert steps[0] == done + 1 and steps[-1] == total and len(steps) == total - done
    assert node._record[1].spans == ((5, FRAMES),) and node._record[1].resumed_at == done

    reference = NODES["MemVOSPropagate"]()  # uncancelled (the resumed results hold that folder: afresh)
    reference.propagate(session, frames, **settings)
    expected = reference.propagate(fixed, frames, **settings)["result"]
    assert reference._record[1].spans == ((5, FRAMES),) and reference._record[1].resumed_at == 0
    assert torch.equal(resumed[1].chunk(0, FRAMES), expected[1].chunk(0, FRAMES))
    for name in ("forward_state", "backward_state"):
        a, b = getattr(resumed[0], name), getattr(expected[0], name)
        assert all(torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors)
