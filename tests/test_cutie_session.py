"""Everything above the engine with Cutie: sessions (immutability, keyframes, both directions,
chunks, save/load, refusing the other family), test-time augmentation, the engine's state and
object deletion; and run E reproduced through a session (keyframes in permanent memory)."""
import pytest
import torch

import cutie_fixture as cf
from memvos_core.config import MemoryConfig
from memvos_core.runtime.engine import InferenceEngine
from memvos_core.runtime.frames import normalize
from memvos_core.runtime.model import load_model
from memvos_core.session import Session, SessionFileError, combine
from memvos_core.session.blend import blend_weight, object_weights
from session_helpers import assert_chunks_equal_one_pass, moving_discs, same, small_config, stored

CUTIE_SMALL_MEMORY = {"buffer_tokens": 20}  # long-term pruning target 200 - 16 - 20 tokens


@pytest.fixture(scope="module")
def model():
    return load_model(cf.state_dict("base"), name="cutie-base-synthetic.pth")


@pytest.fixture(scope="module")
def shot():
    return moving_discs()


def cutie_session(model, frames, labels, keys, mode="xmem++", **kw):
    s = Session(model, small_config(mode, **CUTIE_SMALL_MEMORY), internal_size=kw.pop("internal_size", -1), **kw)
    for k in keys:
        s = s.add_label_map(k, frames[k], labels[k])
    return s


def test_session_tensors_are_never_modified(model, shot):
    frames, labels = shot
    s1, _ = cutie_session(model, frames, labels, [0]).propagate(frames[:6])
    before = {k: t.clone() for k, t in s1.forward_state.tensors.items()}
    s2, _ = s1.propagate(frames[6:], first_frame_index=6)      # continues s1's memory
    s1.add_annotation(3, frames[3], (labels[3] == 2).float(), 2)
    assert s1.forward_state.tensors.keys() == before.keys()
    assert all(torch.equal(s1.forward_state.tensors[k], t) for k, t in before.items())
    assert s1.forward_state.engine_meta["family"] == "cutie" and s2.forward_state.next_frame == 12


@pytest.mark.parametrize("mode", ["xmem", "xmem++"])
def test_chunks_give_the_same_masks_as_one_pass_in_both_directions(model, shot, mode):
    frames, labels = shot
    s = cutie_session(model, frames, labels, [0, 7], mode=mode)
    assert_chunks_equal_one_pass(s, frames, {"forward": ((0, 6), (6, 12)), "backward": ((6, 12), (0, 6))})


def test_both_directions_blend_and_keyframes_are_exact(model, shot):
    frames, labels = shot
    s = cutie_session(model, frames, labels, [1, 9])
    _, fwd = s.propagate(frames, direction="forward", start=1, end=10)
    _, bwd = s.propagate(frames, direction="backward", start=1, end=10)
    _, both = s.propagate(frames, direction="both", start=1, end=10)
    keys = {1: [1, 9], 2: [1, 9]}
    for t in range(1, 10):
        expected = combine([1, 2], fwd.stored(t), bwd.stored(t), object_weights(t, keys))
        assert torch.equal(both.internal(t), expected.planes), t
    assert blend_weight(3, 1, 9) == 0.75
    for k in (1, 9):
        assert torch.equal(both.labels(k), labels[k])
    assert (both.labels(5) == 1).any() and (both.labels(5) == 2).any()


def test_object_first_annotated_later_and_backward_before_the_first_keyframe(model, shot):
    frames, labels = shot
    s = Session(model, small_config("xmem", **CUTIE_SMALL_MEMORY), internal_size=-1)
    s = s.add_annotation(0, frames[0], labels[0] == 1, 1).add_annotation(4, frames[4], labels[4] == 2, 2)
    _, result = s.propagate(frames)
    assert result.probabilities(2)[2].max() == 0          # object 2 unknown before frame 4
    assert torch.equal(result.labels(4) == 2, labels[4] == 2)
    assert (result.labels(6) == 2).any() and (result.labels(6) == 1).any()
    _, bwd = cutie_session(model, frames, labels, [6]).propagate(frames, direction="backward")
    assert all(bwd.reached(i) for i in range(7)) and (bwd.labels(2) > 0).any()


def test_save_load_continues_identically_and_refuses_the_other_family(model, shot, tmp_path, xmem_net):
    frames, labels = shot
    s1, _ = cutie_session(model, frames, labels, [0, 5]).propagate(frames[:6])
    path = s1.save(tmp_path / "cutie.memvos.safetensors")
    loaded = Session.load(path, model)
    _, a = s1.propagate(frames[6:], first_frame_index=6)
    _, b = loaded.propagate(frames[6:], first_frame_index=6)
    assert all(torch.equal(a.internal(t), b.internal(t)) for t in a.frame_indices)
    xmem_model = load_model(xmem_net.state_dict(), name="XMem.pth")
    with pytest.raises(SessionFileError, match="cutie model family .* loaded model is xmem"):
        Session.load(path, xmem_model)
    xmem_file = Session(xmem_model).add_label_map(0, frames[0], labels[0]).save(tmp_path / "xmem.safetensors")
    with pytest.raises(SessionFileError, match="xmem model family .* loaded model is cutie"):
        Session.load(xmem_file, model)


def test_flip_tta_is_mirror_symmetric(model):
    frames, labels = moving_discs(num_frames=5)
    mirrored, mirrored_labels = torch.flip(frames, dims=[2]), torch.flip(labels, dims=[2])
    _, tta = cutie_session(model, frames, labels, [0], tta_flip=True).propagate(frames)
    _, tta_m = cutie_session(model, mirrored, mirrored_labels, [0], tta_flip=True).propagate(mirrored)
    for t in range(1, 5):
        assert (tta.probabilities(t) - torch.flip(tta_m.probabilities(t), dims=[2])).abs().max() < 1e-4, t


def test_engine_state_round_trip_and_family_check(model, shot, xmem_net):
    frames, labels = shot
    images = [normalize(f.permute(2, 0, 1)) for f in frames]
    config = small_config("xmem", **CUTIE_SMALL_MEMORY)
    engine = InferenceEngine(model.network, config)
    engine.set_num_objects(2)
    mask = torch.stack([(labels[0] == o).float() for o in (1, 2)])
    with torch.no_grad():
        engine.step(images[0], mask, [1, 2])
        for t in range(1, 6):
            engine.step(images[t])
        tensors, meta = engine.state()
        resumed = InferenceEngine.from_state(model.network, config, tensors, meta)
        for t in range(6, 9):
            assert torch.equal(engine.step(images[t]), resumed.step(images[t])), t
    with pytest.raises(ValueError, match="made by a cutie model"):
        InferenceEngine.from_state(xmem_net, config, tensors, meta)


def test_deleting_an_object_forgets_it_everywhere(model, shot):
    frames, labels = shot
    images = [normalize(f.permute(2, 0, 1)) for f in frames]
    engine = InferenceEngine(model.network, small_config("xmem", **CUTIE_SMALL_MEMORY))
    with torch.no_grad():
        engine.set_num_objects(1)
        engine.step(images[0], (labels[0] == 1).float()[None], [1])
        engine.set_num_objects(2)   # object 2 arrives later: a bucket of its own
        engine.step(images[2], torch.stack([torch.zeros(48, 64), (labels[2] == 2).float()]), [2])
        engine.step(images[3])
        assert [b["objects"] for b in engine.memory.bucket_sizes()] == [[0], [1]]
        engine.delete_objects([1])
        assert engine.num_objects == 1 and [b["objects"] for b in engine.memory.bucket_sizes()] == [[1]]
        assert set(engine.model.sensory) == set(engine.model.object_memory) == {1}
        assert engine.model.last_mask.shape[1] == 1
        prob = engine.step(images[4])
    assert prob.shape == (2, 48, 64) and (prob.argmax(0) == 1).any()
    with pytest.raises(ValueError, match="not all among"):
        engine.delete_objects([3])


def test_xmem_refuses_to_delete_objects(xmem_net):
    engine = InferenceEngine(xmem_net, MemoryConfig())
    engine.set_num_objects(1)
    with pytest.raises(ValueError, match="cannot forget an object"):
        engine.delete_objects([1])


def test_run_e_through_a_session_matches_the_reference(model):
    """Keyframes 0 and 10 in xmem++ mode: the session commits both to permanent memory, then
    propagates from frame 0, as the reference's process_video.py does."""
    frames = [torch.from_numpy(cf.frame_rgb(t)) for t in range(cf.NUM_FRAMES)]
    s = Session(model, cf.memory_config("E"), internal_size=-1)
    for t in cf.annotated_frames("E"):
        s = s.add_label_map(t, frames[t], torch.from_numpy(cf.annotation_labels("E", t)))
    _, result = s.propagate(frames)
    refs = cf.reference_probs("E")
    for t in range(cf.NUM_FRAMES):
        diff, flips = cf.compare(result.probabilities(t), refs[t])
        assert diff <= 1e-3 and flips == 0, (t, diff, flips)


def test_speed_options_compute_the_same(model, shot):
    """Dense and sparse top-k readout agree to rounding; features encoded ahead in a batch are the
    ones the step would compute."""
    from memvos_core.runtime.perf import EngineOptions
    frames, labels = shot
    images = [normalize(f.permute(2, 0, 1)) for f in frames[:6]]
    mask = torch.stack([(labels[0] == o).float() for o in (1, 2)])
    config = small_config("xmem", **CUTIE_SMALL_MEMORY)
    outputs = {}
    for name, options in (("dense", EngineOptions.plain()), ("sparse", EngineOptions(sparse_readout=True)),
                          ("ahead", EngineOptions(sparse_readout=True, key_batch=3))):
        engine = InferenceEngine(model.network, config, options=options)
        engine.set_num_objects(2)
        ahead = engine.encode_keys(images) if name == "ahead" else [None] * len(images)
        with torch.no_grad():
            outputs[name] = [engine.step(images[0], mask, [1, 2], feats=ahead[0])]
            outputs[name] += [engine.step(images[t], feats=ahead[t]) for t in range(1, len(images))]
    for t in range(1, len(images)):
        assert (outputs["dense"][t] - outputs["sparse"][t]).abs().max() < 1e-4, t
        assert (outputs["ahead"][t] - outputs["sparse"][t]).abs().max() < 1e-4, t


def test_bf16_autocast_keeps_sensory_and_summaries_in_float32(model, shot):
    frames, labels = shot
    images = [normalize(f.permute(2, 0, 1)) for f in frames[:3]]
    engine = InferenceEngine(model.network, small_config("xmem", **CUTIE_SMALL_MEMORY), precision="bf16")
    engine.set_num_objects(2)
    with torch.no_grad():
        engine.step(images[0], torch.stack([(labels[0] == o).float() for o in (1, 2)]), [1, 2])
        prob = engine.step(images[1])
    assert prob.dtype == torch.float32 and torch.isfinite(prob).all()
    assert all(t.dtype == torch.float32 for t in list(engine.model.sensory.values()) +
               list(engine.model.object_memory.values()))


def test_object_chunks_couple_objects_only_within_a_chunk(model, shot):
    """cutie_chunk_size: a chunk as large as the bucket is the whole bucket (identical masks);
    one object per chunk hides the other object from the pixel fusion and the attention masks,
    so the masks change, a little (spec §3.4)."""
    frames, labels = shot
    images = [normalize(f.permute(2, 0, 1)) for f in frames[:5]]
    mask = torch.stack([(labels[0] == o).float() for o in (1, 2)])
    outputs = {}
    for chunk in (-1, 2, 1):
        engine = InferenceEngine(model.network, small_config("xmem", chunk_size=chunk, **CUTIE_SMALL_MEMORY))
        engine.set_num_objects(2)
        with torch.no_grad():
            outputs[chunk] = [engine.step(images[0], mask, [1, 2])] + [engine.step(im) for im in images[1:]]
    assert all(torch.equal(a, b) for a, b in zip(outputs[-1], outputs[2]))
    gap = max((a - b).abs().max().item() for a, b in zip(outputs[-1][1:], outputs[1][1:]))
    assert 0 < gap < 0.5
