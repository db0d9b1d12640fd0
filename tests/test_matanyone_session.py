"""Sessions with the MatAnyone family: a soft alpha per object for several objects in one run,
keyframes anywhere (permanent memory or not), both directions blended without renormalising
overlapping mattes, chunks equal to one pass, save/load continuing identically and refusing
another family's weights."""
import pytest
import torch

import cutie_fixture as cf
from memvos_core.families.matanyone import model as matanyone_model
from memvos_core.families.matanyone.synthetic import synthetic_matanyone_state_dict
from memvos_core.runtime.model import load_model
from memvos_core.session import Session, SessionFileError, combine
from memvos_core.session.blend import QUANT, object_weights
from session_helpers import assert_chunks_equal_one_pass, moving_discs, same, small_config, stored


@pytest.fixture(autouse=True)
def short_warm_up(monkeypatch):
    """Two warm-up predictions instead of 11: the session properties do not depend on how many
    (parity does, in test_matanyone_parity.py), and every first keyframe of a pass pays them."""
    monkeypatch.setattr(matanyone_model, "WARMUP_STEPS", 2)


@pytest.fixture(scope="module")
def model():
    return load_model(synthetic_matanyone_state_dict(), name="matanyone-synthetic.pth")


@pytest.fixture(scope="module")
def shot():
    return moving_discs(num_frames=8, height=32, width=48)


def matting_session(model, frames, labels, keys, mode="xmem++"):
    s = Session(model, small_config(mode, buffer_tokens=20), internal_size=-1)
    for k in keys:
        s = s.add_label_map(k, frames[k], labels[k])
    return s


def test_soft_alpha_per_object_several_objects_in_one_run(model, shot):
    frames, labels = shot
    s, result = matting_session(model, frames, labels, [0]).propagate(frames)
    assert s.forward_state.engine_meta["family"] == "matanyone"
    for t in range(len(frames)):
        planes = result.internal(t).float() / QUANT
        assert planes.shape[0] == 2
        soft = ((planes > 0.01) & (planes < 0.99)).float().mean().item()
        assert soft > 0.05, f"frame {t}: alpha is not soft ({soft:.3f} strictly between)"
    # Mattes are independent: somewhere the two objects' alphas add up to more than 1.
    assert any((result.internal(t).float().sum(0) > QUANT * 1.05).any() for t in range(len(frames)))


@pytest.mark.parametrize("mode", ["xmem", "xmem++"])
def test_chunks_equal_one_pass_in_both_directions_with_keyframes_anywhere(model, shot, mode):
    frames, labels = shot
    s = matting_session(model, frames, labels, [0, 5], mode=mode)
    assert_chunks_equal_one_pass(s, frames, {"forward": ((0, 4), (4, 8)), "backward": ((4, 8), (0, 4))})


def test_both_directions_blend_overlapping_mattes_unnormalised(model, shot):
    frames, labels = shot
    s = matting_session(model, frames, labels, [1, 6])
    _, fwd = s.propagate(frames, direction="forward", start=1, end=7)
    _, bwd = s.propagate(frames, direction="backward", start=1, end=7)
    _, both = s.propagate(frames, direction="both", start=1, end=7)
    keys = {1: [1, 6], 2: [1, 6]}
    for t in range(1, 7):
        expected = combine([1, 2], fwd.stored(t), bwd.stored(t), object_weights(t, keys), exclusive=False)
        assert torch.equal(both.internal(t), expected.planes), t


def test_save_load_continues_identically_and_refuses_another_family(model, shot, tmp_path):
    frames, labels = shot
    s1, _ = matting_session(model, frames, labels, [0]).propagate(frames[:4])
    _, a = s1.propagate(frames[4:], first_frame_index=4)
    path = s1.save(tmp_path / "matte.memvos.safetensors")
    loaded = Session.load(path, model)
    _, b = loaded.propagate(frames[4:], first_frame_index=4)
    for t, prob in stored(a).items():
        assert same(stored(b)[t], prob), t
    cutie = load_model(cf.state_dict("base"), name="cutie-base-synthetic.pth")
    with pytest.raises(SessionFileError, match="matanyone model family .* loaded model is cutie"):
        Session.load(path, cutie)


def test_a_later_keyframe_of_a_warmed_object_is_its_mask_as_given(model, shot, monkeypatch):
    """As the official core, given a mask for an object it already tracks (``step(image, mask,
    objects)`` after the first frame): the frame's alpha is the mask as given, neither closed nor
    warmed up, and it is written to memory; only an object's first keyframe in a pass is closed
    and warmed up (the warm-up clears the object's memory, which would drop what came before)."""
    frames, labels = shot
    labels, K = labels.clone(), 7              # the discs do not overlap there
    hole = (labels[K] == 1).nonzero()[len((labels[K] == 1).nonzero()) // 2]
    labels[K, hole[0], hole[1]] = 0          # a one-pixel hole the closing would fill
    warm_ups = []
    original = matanyone_model.MatAnyoneModel._warm_up

    def counted(self, feats, ids):
        warm_ups.append(list(ids))
        return original(self, feats, ids)
    monkeypatch.setattr(matanyone_model.MatAnyoneModel, "_warm_up", counted)
    s = matting_session(model, frames, labels, [0, K])
    _, forward = s.propagate(frames, direction="forward")
    assert [len(ids) for ids in warm_ups] == [2], "one warm-up, on the first keyframe, for both objects"
    given = torch.stack([(labels[K] == o).float() for o in (1, 2)])
    assert torch.equal(forward.internal(K).float() / QUANT, given), "frame K: the mask as given"
    first = forward.internal(0).float() / QUANT
    assert ((first > 0.01) & (first < 0.99)).any(), "frame 0: the warmed-up (soft) matte"
    warm_ups.clear()
    _, backward = s.propagate(frames, direction="backward", start=0, end=K + 1)
    assert [len(ids) for ids in warm_ups] == [2], "backward, frame K is the objects' first keyframe: warmed up there"
    assert not torch.equal(backward.internal(K).float() / QUANT, given)
    assert torch.equal(backward.internal(0).float() / QUANT,
                       torch.stack([(labels[0] == o).float() for o in (1, 2)])), "frame 0, later in this pass"
