"""Sessions: immutability, keyframes, directions, chunks, resolution, progress/cancel, files."""
import pytest
import torch

import xmem_fixture as fx
from memvos_core.runtime.model import load_model
from memvos_core.session import PropagationCancelled, Session, SessionFileError, combine
from memvos_core.session.blend import blend_weight, object_weights
from session_helpers import moving_discs, same, session_with_keys, small_config, stored


@pytest.fixture(scope="module")
def model(synthetic_weights):
    return load_model(synthetic_weights)


@pytest.fixture(scope="module")
def shot():
    return moving_discs()


def all_tensors(session):
    out = [t for k in session.keyframes for t in (k.image, k.labels)]
    for state in (session.forward_state, session.backward_state):
        if state is not None:
            out += list(state.tensors.values())
    return out


def test_operations_never_modify_the_session_they_are_given(model, shot):
    frames, labels = shot
    s0 = session_with_keys(model, frames, labels, [0])
    s1, _ = s0.propagate(frames[:6])
    before = [t.clone() for t in all_tensors(s1)]
    frames_before = frames.clone()
    s2 = s1.add_annotation(3, frames[3], (labels[3] == 2).float(), 2)
    s3, _ = s1.propagate(frames[6:], first_frame_index=6)   # continues s1's memory
    with pytest.raises(AttributeError):
        s1.keyframes = ()  # the bundle is frozen
    for a, b in zip(all_tensors(s1), before):
        assert torch.equal(a, b)
    assert torch.equal(frames, frames_before)
    assert s2 is not s1 and s3 is not s1 and s1.keyframes[0].object_ids == (1, 2)
    assert s1.forward_state.next_frame == 6 and s3.forward_state.next_frame == 12


def test_keyframe_output_is_exactly_the_artists_mask(model, shot):
    frames, labels = shot
    s = session_with_keys(model, frames, labels, [0, 7])
    _, result = s.propagate(frames, direction="both")
    for k in (0, 7):
        assert torch.equal(result.labels(k), labels[k])
        prob = result.probabilities(k)
        for j, o in enumerate(result.object_ids):
            assert torch.equal(prob[j + 1], (labels[k] == o).float())


def test_object_first_annotated_in_a_later_keyframe(model, shot):
    frames, labels = shot
    s = Session(model, small_config("xmem"), internal_size=-1)
    s = s.add_annotation(0, frames[0], labels[0] == 1, 1)
    s = s.add_annotation(4, frames[4], labels[4] == 2, 2)
    assert s.object_ids == (1, 2) and s.keyframe(4).object_ids == (2,)
    _, result = s.propagate(frames)
    assert result.probabilities(2).shape[0] == 3
    assert result.probabilities(2)[2].max() == 0          # object 2 unknown before frame 4
    assert torch.equal(result.labels(4) == 2, labels[4] == 2)
    assert (result.labels(6) == 2).any() and (result.labels(6) == 1).any()


@pytest.mark.parametrize("mode", ["xmem", "xmem++"])
def test_backward_reaches_frames_before_the_first_keyframe(model, shot, mode):
    frames, labels = shot
    s = session_with_keys(model, frames, labels, [6], mode=mode)
    _, fwd = s.propagate(frames, direction="forward")
    _, bwd = s.propagate(frames, direction="backward")
    assert all(bwd.reached(i) for i in range(7))
    assert (bwd.labels(2) > 0).any()
    if mode == "xmem":
        assert not any(fwd.reached(i) for i in range(6))  # XMem cannot go before its annotation
    else:
        assert all(fwd.reached(i) for i in range(12))   # XMem++ reads permanent memory from frame 0


@pytest.mark.parametrize("mode", ["xmem", "xmem++"])
def test_both_directions_is_the_documented_blend(model, shot, mode):
    frames, labels = shot
    s = session_with_keys(model, frames, labels, [1, 9], mode=mode)
    _, fwd = s.propagate(frames, direction="forward", start=1, end=10)
    _, bwd = s.propagate(frames, direction="backward", start=1, end=10)
    _, both = s.propagate(frames, direction="both", start=1, end=10)
    assert both.frame_indices == list(range(1, 10))
    keys = {1: [1, 9], 2: [1, 9]}
    for t in range(1, 10):
        expected = combine([1, 2], fwd.stored(t), bwd.stored(t), object_weights(t, keys))
        assert torch.equal(both.internal(t), expected.planes), t
    assert blend_weight(3, 1, 9) == pytest.approx(0.75)
    assert not torch.equal(both.internal(5), fwd.internal(5)) and not torch.equal(both.internal(5), bwd.internal(5))


@pytest.mark.parametrize("mode", ["xmem", "xmem++"])
def test_chunks_give_the_same_masks_as_one_pass(model, shot, mode):
    frames, labels = shot
    s = session_with_keys(model, frames, labels, [0, 3], mode=mode)
    _, whole = s.propagate(frames)
    s1, first = s.propagate(frames[:6], first_frame_index=0)
    _, second = s1.propagate(frames[6:], first_frame_index=6)
    chunked = {**stored(first), **stored(second)}
    assert sorted(chunked) == whole.frame_indices
    for t, prob in stored(whole).items():
        assert same(chunked[t], prob), t
    # Backward chunks continue the same way, from the end of the shot down.
    _, whole_b = s.propagate(frames, direction="backward")
    s2, late = s.propagate(frames[6:], first_frame_index=6, direction="backward")
    _, early = s2.propagate(frames[:6], first_frame_index=0, direction="backward")
    chunked_b = {**stored(late), **stored(early)}
    for t, prob in stored(whole_b).items():
        assert same(chunked_b[t], prob), t


def test_internal_resolution_and_results_at_input_size(model, shot):
    frames, labels = shot
    s = session_with_keys(model, frames, labels, [0], internal_size=32)
    s2, result = s.propagate(frames[:4])
    assert s2.forward_state.internal_hw == (32, 42)
    assert result.internal(2).shape == (2, 32, 42)
    assert result.probabilities(2).shape == (3, 48, 64)
    assert result.object_masks().shape == (4, 2, 48, 64)


def test_progress_every_frame_and_cancel_leaves_the_session_valid(model, shot):
    frames, labels = shot
    s = session_with_keys(model, frames, labels, [0])
    calls = []
    s.propagate(frames[:5], progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 5) for i in range(1, 6)]
    seen = []

    def cancel():
        seen.append(1)
        return len(seen) > 3

    with pytest.raises(PropagationCancelled):
        s.propagate(frames, cancel=cancel)
    assert len(seen) == 4 and s.forward_state is None
    _, again = s.propagate(frames[:5])
    _, fresh = session_with_keys(model, frames, labels, [0]).propagate(frames[:5])
    assert all(torch.equal(again.internal(t), fresh.internal(t)) for t in range(5))


def test_save_and_load_round_trip_and_refusals(model, shot, tmp_path, synthetic_weights):
    frames, labels = shot
    s = session_with_keys(model, frames, labels, [0, 5])
    s1, _ = s.propagate(frames[:6])
    path = s1.save(tmp_path / "shot.memvos.safetensors")
    loaded = Session.load(path, model)
    assert [k.frame_index for k in loaded.keyframes] == [0, 5]
    assert loaded.config == s1.config and loaded.forward_state.next_frame == 6
    _, a = s1.propagate(frames[6:], first_frame_index=6)
    _, b = loaded.propagate(frames[6:], first_frame_index=6)
    assert all(torch.equal(a.internal(t), b.internal(t)) for t in a.frame_indices)
    other_weights = dict(synthetic_weights)
    other_weights["decoder.pred.bias"] = other_weights["decoder.pred.bias"] + 1
    with pytest.raises(SessionFileError, match="not the loaded"):
        Session.load(path, load_model(other_weights))
    with pytest.raises(SessionFileError, match="other memory settings.*top_k"):
        Session.load(path, model, config=s1.config.replace(top_k=5))
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a file")
    with pytest.raises(SessionFileError):
        Session.load(junk, model)
    assert not list(tmp_path.glob("*.part"))


def test_bad_annotations_get_clear_errors(model, shot):
    frames, labels = shot
    s = Session(model)
    with pytest.raises(ValueError, match="different aspect ratio"):
        s.add_annotation(0, frames[0], torch.ones(10, 10), 1)
    with pytest.raises(ValueError, match="out of range"):
        s.add_annotation(0, frames[0], labels[0] == 1, 0)
    with pytest.raises(ValueError, match="no annotation"):
        s.propagate(frames)
    resized = s.add_annotation(0, frames[0], torch.nn.functional.interpolate(
        (labels[0] == 1).float()[None, None], size=(24, 32))[0, 0], 1)
    assert resized.keyframe(0).labels.shape == (48, 64)
    with pytest.raises(ValueError, match="same shot at the same size"):
        resized.propagate(frames[:, :24])


def test_run_d_parity_through_a_session(model):
    frames = [torch.from_numpy(fx.frame_rgb(t)) for t in range(fx.NUM_FRAMES)]
    s = Session(model, fx.memory_config("D"), internal_size=-1)
    for t in fx.annotated_frames("D"):
        s = s.add_label_map(t, frames[t], torch.from_numpy(fx.annotation_indices("D", t)))
    _, result = s.propagate(frames)
    refs = fx.reference_probs("D")
    for t in range(fx.NUM_FRAMES):
        diff, flips = fx.compare(result.probabilities(t), refs[t])
        assert diff <= fx.PROB_TOL and flips == 0, (t, diff, flips)


def test_key_batching_in_the_pass_loop_changes_no_mask(model, shot):
    """The CUDA default encodes keys a few frames ahead (EngineOptions.key_batch): through the
    session's own loop, both directions, the stored results equal frame-by-frame encoding up to
    float rounding (a batched convolution may sum in another order)."""
    from memvos_core.runtime.perf import EngineOptions, engine_options
    frames, labels = shot
    s = session_with_keys(model, frames, labels, [2, 7])
    results = {}
    for batch in (1, 3):
        with engine_options(EngineOptions(sparse_readout=True, key_batch=batch)):
            _, results[batch] = s.propagate(frames, direction="both")
    a, b = stored(results[1]), stored(results[3])
    assert a.keys() == b.keys() and [t for t in a if a[t] is None] == [t for t in b if b[t] is None]
    worst = max((a[t].float() - b[t].float()).abs().max().item() / 65535 for t in a if a[t] is not None)
    assert worst < 1e-3, worst
