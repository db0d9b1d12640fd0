"""Everything above the engine with SAM 2.1: sessions with keyframes (both directions, chunks
equal one pass), partial keyframes and a late object, save/load refusing another family, the
network recognised by the general loader."""
import pytest
import torch

from memvos_core.config import MemoryConfig
from memvos_core.runtime.model import load_model
from memvos_core.session import Session, SessionFileError
from sam2_fixture import generated_state
from session_helpers import assert_chunks_equal_one_pass, moving_discs, small_config

SIZE = 128   # the image_size setting; small keeps this file fast (1024 as released)


@pytest.fixture(scope="module")
def model():
    return load_model(generated_state(), name="sam2.1_hiera_tiny.pt")


@pytest.fixture(scope="module")
def shot():
    return moving_discs(num_frames=8)


def sam2_session(model, frames, labels, keys, mode="xmem++"):
    s = Session(model, small_config(mode, image_size=SIZE))
    for k in keys:
        s = s.add_label_map(k, frames[k], labels[k])
    return s


def test_the_general_loader_recognises_sam2(model):
    assert model.family == "sam2" and model.describe()["size"] == "tiny"


def test_the_image_size_setting_sizes_the_network_input_and_is_refused_out_of_range(model, shot):
    from memvos_core.config import parse_setting
    from memvos_core.runtime.engine import InferenceEngine
    assert MemoryConfig().image_size == 1024
    engine = InferenceEngine(model.network, MemoryConfig(image_size=64), "cpu")
    assert engine.model.network.image_size == 64 and model.network.image_size == 1024   # the loaded one untouched
    assert engine.model.network.image_encoder is model.network.image_encoder            # same weights
    engine.set_num_objects(1)
    image = torch.zeros(3, 48, 64)
    feats = engine.model.encode(image[None], None)
    assert feats.key.shape[-2:] == (4, 4)                  # 64 / 16
    # a keyframe on a frame of any size: nothing padded (the network resizes inside)
    prob = engine.step(torch.zeros(3, 36, 50), torch.ones(1, 36, 50), [1])
    assert prob.shape == (2, 36, 50)
    assert parse_setting(MemoryConfig(), "image_size=512").image_size == 512
    for bad, why in ((48, "at least 64"), (4112, "at most 4096"), (100, "multiple of 16")):
        with pytest.raises(ValueError, match=f"image_size={bad} must be .*{why}") as err:
            MemoryConfig(image_size=bad)
        assert "\n" not in str(err.value)


def test_chunks_give_the_same_masks_as_one_pass_in_both_directions(model, shot):
    frames, labels = shot
    s = sam2_session(model, frames, labels, [0, 5])
    assert_chunks_equal_one_pass(s, frames, {"forward": ((0, 4), (4, 8)), "backward": ((4, 8), (0, 4))})


def test_partial_keyframes_and_a_late_object(model, shot):
    frames, labels = shot
    s = Session(model, small_config("xmem++", image_size=SIZE))
    only = lambda t, o: labels[t] * (labels[t] == o)  # noqa: E731
    s = s.add_label_map(0, frames[0], only(0, 1))
    s = s.add_label_map(3, frames[3], only(3, 2))    # object 2 enters on frame 3, object 1 left out there
    _, result = s.propagate(frames)
    p2, p3, p5 = (result.probabilities(t) for t in (2, 3, 5))
    assert p2.shape[0] == p5.shape[0] == 3 and float(p2[2].max()) < 1e-3   # object 2 not there before frame 3
    assert bool(((p3[2] > 0.5) == (labels[3] == 2)).all())                # the keyframe's object 2 is exact
    assert bool((p3[1] > 0.5).any()) and bool((p5[1] > 0.5).any()) and bool((p5[2] > 0.5).any())


def test_save_load_continues_identically_and_refuses_the_other_family(model, shot, tmp_path, xmem_net):
    frames, labels = shot
    s1, _ = sam2_session(model, frames, labels, [0, 5]).propagate(frames[:4])
    path = s1.save(tmp_path / "sam2.memvos.safetensors")
    loaded = Session.load(path, model)
    _, a = s1.propagate(frames[4:], first_frame_index=4)
    _, b = loaded.propagate(frames[4:], first_frame_index=4)
    assert all(torch.equal(a.internal(t), b.internal(t)) for t in a.frame_indices)
    xmem_model = load_model(xmem_net.state_dict(), name="XMem.pth")
    with pytest.raises(SessionFileError, match="sam2 model family .* loaded model is xmem"):
        Session.load(path, xmem_model)


def test_suggest_frames_reads_sam2_keys(model, shot):
    from memvos_core.ops import compute_candidate_keys, select_annotation_candidates
    frames, labels = shot
    keys, shrinkages, selections = compute_candidate_keys(model.network.at_image_size(SIZE), frames[:4], internal_short_side=-1)
    assert keys.shape == (4, 256, 8, 8) and bool((shrinkages == 1).all())
    masks = torch.stack([(labels[t] > 0).float()[None] for t in range(4)])
    chosen = select_annotation_candidates(keys, shrinkages, selections, masks, k=2)
    assert len(chosen) == 2 and 0 not in chosen
