"""Test-time augmentation: flip/scale variants averaged, with consistent memory."""
import pytest
import torch

from memvos_core.runtime.model import load_model
from session_helpers import moving_discs, session_with_keys


@pytest.fixture(scope="module")
def model(synthetic_weights):
    return load_model(synthetic_weights)


def run(model, frames, labels, **tta):
    s = session_with_keys(model, frames, labels, [0], **tta)
    return s.propagate(frames)


def test_flip_tta_is_exactly_mirror_symmetric(model):
    frames, labels = moving_discs(num_frames=6)
    mirrored, mirrored_labels = torch.flip(frames, dims=[2]), torch.flip(labels, dims=[2])
    _, plain = run(model, frames, labels)
    _, plain_m = run(model, mirrored, mirrored_labels)
    _, tta = run(model, frames, labels, tta_flip=True)
    _, tta_m = run(model, mirrored, mirrored_labels, tta_flip=True)
    for t in range(1, 6):
        a = tta.probabilities(t)
        b = torch.flip(tta_m.probabilities(t), dims=[2])
        # Both variants write the same averaged mask, so mirroring the shot only swaps them.
        assert (a - b).abs().max() < 1e-4, t
    t = 5
    plain_gap = (plain.probabilities(t) - torch.flip(plain_m.probabilities(t), dims=[2])).abs().max()
    assert plain_gap > 1e-2  # without TTA the network is not mirror-symmetric
    assert (tta.probabilities(t) - plain.probabilities(t)).abs().max() > 1e-3


def test_scale_tta_keeps_keyframes_exact_and_continues_across_chunks(model):
    frames, labels = moving_discs(num_frames=8)
    s = session_with_keys(model, frames, labels, [0, 5], tta_scales=(1.0, 0.75), tta_flip=True)
    _, whole = s.propagate(frames)
    assert torch.equal(whole.labels(5), labels[5])
    s1, first = s.propagate(frames[:4])
    assert len(s1.forward_state.engine_meta["engines"]) == 4
    _, second = s1.propagate(frames[4:], first_frame_index=4)
    for t in range(4, 8):
        assert torch.equal(second.internal(t), whole.internal(t))


def test_a_family_that_cannot_share_variants_is_refused_with_one_line():
    """MatAnyone's warm-up rewrites each variant's memory from its own alpha: refused, not averaged."""
    from memvos_core.families.matanyone.synthetic import synthetic_matanyone_state_dict
    from memvos_core.session import Session
    from session_helpers import small_config
    matting = load_model(synthetic_matanyone_state_dict(), name="matanyone-synthetic.pth")
    frames, labels = moving_discs(num_frames=2, height=32, width=32)

    def session_with(**tta):
        s = Session(matting, small_config(buffer_tokens=20), internal_size=-1, **tta)
        return s.add_label_map(0, frames[0], labels[0])
    for tta in ({"tta_flip": True}, {"tta_scales": (1.0, 0.75)}):
        s = session_with(**tta)
        with pytest.raises(ValueError, match=r"^tta_flip / tta_scales: .*MatAnyone.*set tta_flip off") as err:
            s.propagate(frames)
        assert "\n" not in str(err.value)
    _, plain = session_with().propagate(frames)
    assert plain.internal(1) is not None, "without augmentation it runs"
