"""SAM 2.1 with test-time augmentation and in the batch command: the flip variants average to a
mirror-symmetric result, scale variants continue across chunks, and a batch of SAM 2.1 shots
writes what single-shot runs write. Tiny shots at image size 64 keep it fast."""
import shutil
from pathlib import Path

import pytest
import torch

from batch_shots import CLIP, assert_same_outputs, one_torch_thread, single_shot_argv, write_shots_json
from memvos_core.command.cli import main
from memvos_core.runtime.model import load_model
from sam2_fixture import generated_state
from session_helpers import moving_discs, small_config
from memvos_core.session import Session

SIZE = 64


@pytest.fixture(scope="module")
def model():
    return load_model(generated_state(), name="sam2.1_hiera_tiny.pt")


def session(model, frames, labels, keys, **tta):
    s = Session(model, small_config("keyframes", image_size=SIZE), internal_size=-1, **tta)
    for k in keys:
        s = s.add_label_map(k, frames[k], labels[k])
    return s


def test_flip_tta_is_mirror_symmetric(model):
    frames, labels = moving_discs(num_frames=3)
    mirrored, mirrored_labels = torch.flip(frames, dims=[2]), torch.flip(labels, dims=[2])
    _, plain = session(model, frames, labels, [0]).propagate(frames)
    _, tta = session(model, frames, labels, [0], tta_flip=True).propagate(frames)
    _, tta_m = session(model, mirrored, mirrored_labels, [0], tta_flip=True).propagate(mirrored)
    for t in (1, 2):
        # both variants write the same average, so mirroring the shot only swaps them
        assert (tta.probabilities(t) - torch.flip(tta_m.probabilities(t), dims=[2])).abs().max() < 1e-4, t
    assert (tta.probabilities(2) - plain.probabilities(2)).abs().max() > 1e-3   # the mirrored variant counts


def test_scale_tta_keeps_keyframes_exact_and_continues_across_chunks(model):
    frames, labels = moving_discs(num_frames=5)
    s = session(model, frames, labels, [0, 3], tta_scales=(1.0, 0.75))
    _, whole = s.propagate(frames)
    assert torch.equal(whole.labels(3), labels[3])
    s1, _ = s.propagate(frames[:2], shot_length=5)
    assert len(s1.forward_state.engine_meta["engines"]) == 2
    _, second = s1.propagate(frames[2:], first_frame_index=2)
    for t in range(2, 5):
        assert torch.equal(second.internal(t), whole.internal(t)), t


@pytest.fixture(autouse=True)
def one_thread_per_worker(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def test_a_batch_of_sam2_shots_writes_what_single_shot_runs_write(tmp_path):
    weights = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": generated_state()}, weights)
    shots = []
    for k, (first, options) in enumerate(((0, {"direction": "forward"}),
                                          (6, {"direction": "both", "soft": True}))):
        folder = tmp_path / f"shot{k}"
        (folder / "frames").mkdir(parents=True)
        (folder / "masks").mkdir()
        for t in range(first, first + 4):
            shutil.copy(CLIP / "clip" / "frames" / f"{t:05d}.png", folder / "frames" / f"{t:05d}.png")
        key = first + (0 if k == 0 else 2)   # shot 1's keyframe mid-shot: both passes run
        shutil.copy(CLIP / "run_D" / "annotations" / "00000.png", folder / "masks" / f"{key:05d}.png")
        shots.append({"frames": f"shot{k}/frames", "masks": f"shot{k}/masks", "out": f"out/shot{k}",
                      "weights": str(weights), "device": "cpu", "size": 48, "set": {"image_size": SIZE}, **options})
    with one_torch_thread():
        for k, shot in enumerate(shots):
            assert main(single_shot_argv(shot, tmp_path, tmp_path / "ref" / f"shot{k}")) == 0
    assert main(["batch", str(write_shots_json(tmp_path, shots)), "--workers", "1", "--quiet"]) == 0
    for k in range(len(shots)):
        assert_same_outputs(tmp_path / "out" / f"shot{k}", tmp_path / "ref" / f"shot{k}")
    assert any(Path(tmp_path / "out" / "shot1" / "soft").rglob("*.png"))
