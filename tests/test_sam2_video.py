"""SAM 2.1 video tracking against the official video predictor (runs B, C, D of the parity
fixture, image size 512), on their first two processed frames: the prompt outputs, then the
first tracked frame with its memory and pointers (the full runs are in the README's figures)."""
import json
import os

import pytest
import torch

from memvos_core.families.sam2.checkpoint import build_sam2
from sam2_fixture import FIXTURE, compare_with_reference, generated_state, replay_video_run


@pytest.fixture(scope="module")
def net512():
    return build_sam2(generated_state(), "generated", 512)


_RUNS = {}


def replayed(net, run):
    """Each run is replayed once per test session (two processed frames)."""
    if run not in _RUNS:
        _RUNS[run] = replay_video_run(net, os.path.join(FIXTURE, f"run_{run}"), max_frames=2)
    return _RUNS[run]


@pytest.mark.parametrize("run", ["B", "C", "D"])
def test_first_frames_match_the_official_video_predictor(net512, run):
    run_dir = os.path.join(FIXTURE, f"run_{run}")
    cand = replayed(net512, run)
    ok, worst, first = compare_with_reference(run_dir, cand)
    assert ok, (worst, first)
    cfg = json.load(open(os.path.join(run_dir, "config.json")))
    first_frames = cfg["calls"][-1]["processing_order"][:2]
    assert {f"video_res_masks/t{t:02d}" for t in first_frames} <= set(cand)


def test_an_empty_mask_prompt_marks_the_object_absent(net512):
    """Run C's object 3: score -10, the no-object pointer."""
    cand = replayed(net512, "C")
    assert cand["object_score_logits/t15"].tolist() == [10.0, 10.0, -10.0]
    assert torch.allclose(cand["obj_ptr/t15/obj3"], net512.no_obj_ptr[0])
