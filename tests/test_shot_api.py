"""The library API for a shot: open, keyframes, propagation as a generator of final frames,
save and resume; the same numbers as the session it wraps."""
import torch

from memvos_core.runtime.model import load_model
from memvos_core.shot import Shot
from session_helpers import moving_discs, small_config


def test_shot_yields_every_final_frame_as_the_session_computes_it(synthetic_weights, tmp_path):
    model = load_model(synthetic_weights)
    frames, labels = moving_discs(num_frames=8, height=32, width=32)
    shot = Shot.open(model, frames, small_config(), internal_size=-1)
    shot.add_keyframe(0, labels[0]).add_keyframe(6, labels[6]).add_keyframe(6, labels[6])  # replaced
    assert [k.frame_index for k in shot.session.keyframes] == [0, 6]
    reference_session, reference = shot.session.propagate(frames, direction="both")
    seen = {i: prob for i, prob in shot.propagate(direction="both")}
    assert sorted(seen) == list(range(8))
    for i in range(8):
        assert torch.equal(seen[i], reference.probabilities(i))
    shot.save(tmp_path / "s.safetensors")
    again = Shot.resume(tmp_path / "s.safetensors", model, frames)
    assert [k.frame_index for k in again.session.keyframes] == [0, 6] and again.session.forward_state is not None


def test_closing_the_generator_stops_the_propagation(synthetic_weights):
    model = load_model(synthetic_weights)
    frames, labels = moving_discs(num_frames=10, height=32, width=32)
    shot = Shot.open(model, frames, small_config(), internal_size=-1).add_keyframe(0, labels[0])
    seen = []
    steps = shot.propagate(direction="forward", progress=lambda done, total: seen.append(done))
    first = next(steps)
    steps.close()
    assert first[0] == 0 and len(seen) < 10 and shot.result is None
