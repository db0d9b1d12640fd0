"""One piece of code per idea: the helpers the nodes and the core share are the same objects and
follow the same rules (aspect ratio, frame checks, object id range, chunks)."""
from pathlib import Path

import pytest
import torch

from memvos_core.runtime import frames as core_frames
from memvos_core.ops import composite as core_composite
from memvos_core.ops import chunking as core_chunking
from memvos_core.ops import inputs as core_inputs
from memvos_core.session import keyframes as core_keyframes
from memvos_core.session import objects as core_objects
from pack_loader import pack_for_tests

PACK = pack_for_tests()
common = PACK.nodes.common
session_nodes = PACK.nodes.session_nodes
mask_set = PACK.nodes.mask_set


def _where(function):
    code = function.__code__
    return Path(code.co_filename).resolve(), code.co_firstlineno


def test_nodes_use_the_cores_helpers():
    """(The pack is loaded under its own package name, so compare where the code lives.)"""
    assert _where(common.mask_to_image) == _where(core_composite.mask_to_image)
    assert common.MAX_OBJECT_ID == core_objects.MAX_OBJECT_ID == 255


FRAME_HW = (480, 854)


@pytest.mark.parametrize("mask_hw, same", [
    ((480, 854), True),
    ((32, 56), True),       # the network's internal size of a 480x854 shot (854*32/480 = 56.9, rounded down)
    ((270, 480), True),     # 16:9 at half size
    ((480, 768), False),    # 16:10
    ((480, 640), False),    # 4:3
])
def test_one_aspect_rule_for_every_mask_path(mask_hw, same):
    """The ops' check, the core keyframe path and the Add Annotation node agree."""
    assert core_frames.same_aspect(mask_hw, FRAME_HW) == same
    mask = torch.zeros(mask_hw)
    outcomes = []
    for call in (lambda: core_inputs.check_aspect(mask_hw, FRAME_HW, "masks"),
                 lambda: core_keyframes.mask_to_binary(mask, FRAME_HW),
                 lambda: session_nodes.fit_mask(mask, FRAME_HW)):
        try:
            call()
            outcomes.append(True)
        except ValueError as exc:
            assert "aspect ratio" in str(exc)
            outcomes.append(False)
    assert outcomes == [same] * 3


@pytest.mark.parametrize("bad, words", [
    (torch.zeros(2, 8, 8), "must be an IMAGE batch"),
    (torch.zeros(1, 8, 8, 3, dtype=torch.uint8), "expected float values in 0..1"),
    (torch.zeros(0, 8, 8, 3), "is empty"),
    ([1, 2, 3], "must be an IMAGE batch"),
])
def test_one_frame_check_with_the_callers_hint(bad, words):
    with pytest.raises(ValueError, match=words) as core_error:
        core_inputs.check_frames(bad)
    with pytest.raises(ValueError, match=words) as node_error:
        common.check_frames(bad)
    # a tensor gets the IMAGE hint; anything else is not a frames source the node knows
    hint = "Get Video Components" if torch.is_tensor(bad) else "Load Video"
    assert hint in str(node_error.value) and hint not in str(core_error.value)
    rgba = torch.rand(2, 4, 5, 4)
    assert torch.equal(common.check_frames(rgba), rgba[..., :3])
    rgb = torch.rand(2, 4, 5, 3)
    assert common.check_frames(rgb) is rgb  # the caller's own tensor: the editor's routes hold it weakly


def test_frame_chunks_are_the_one_chunker():
    assert core_chunking.frame_chunks(10, 4) == [(0, 4), (4, 8), (8, 10)]
    with pytest.raises(ValueError, match="at least 1 frame"):
        core_chunking.frame_chunks(10, 0)
    masks = mask_set.MaskSet(object_ids=(1,), clip_start=0, num_frames=10, frame_hw=(4, 4), frames_first_index=0,
                             frames_count=10, dense=torch.zeros(10, 1, 4, 4, dtype=torch.float16))
    assert masks.chunks(4) == core_chunking.frame_chunks(10, 4)


@pytest.mark.parametrize("count", [0, 1, 2, 3])
def test_labels_of_is_the_argmax_over_the_background_and_the_objects(count):
    """Labels are kept as a running best, one object at a time (a concatenated copy and int64
    indices took 9 times the labels' bytes): they stay the argmax of [1 - sum, objects...], the
    first of equal values winning, and a NaN too, as argmax's."""
    g = torch.Generator().manual_seed(count)
    for trial in range(6):
        part = (torch.rand(2, count, 9, 11, generator=g) * 4).round() / 8  # many ties
        if count and trial % 2:
            part[torch.rand(part.shape, generator=g) < 0.1] = float("nan")
        if count and trial == 4:
            part[:, :, :3] = -0.0
        ids = list(range(4, 4 + count))
        background = (1 - part.sum(1, keepdim=True)).clamp(min=0)
        argmax = torch.tensor([0, *ids], dtype=torch.uint8)[torch.cat([background, part], 1).argmax(1)]
        assert torch.equal(mask_set.labels_of(part, ids), argmax)
