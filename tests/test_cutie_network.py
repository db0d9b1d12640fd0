"""Cutie checkpoints: the reference's keys and shapes, family detection, strict loading, the gaps a
real file may have, bad files; and the pieces the parity runs cannot see (attention masks)."""
import pytest
import torch
from safetensors.torch import save_file

import cutie_fixture as cf
from memvos_core.families.cutie.model import stagger_offsets
from memvos_core.runtime.model import load_model
from memvos_core.network import CheckpointError, load_network
from memvos_core.network.cutie import CutieNetwork
from memvos_core.network.cutie_transformer import attention_mask
from memvos_core.families.cutie.checkpoint import AUX_SPECS as CUTIE_AUX_SPECS
from memvos_core.network.synthetic import fingerprint


@pytest.mark.parametrize("variant", ["base", "small"])
def test_state_dict_has_the_reference_keys_and_shapes(variant):
    expected = cf.weights_info()[variant]["keys"]
    ours = {k: [list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in CutieNetwork(variant).state_dict().items()}
    ours.update({k: [list(s), "float32"] for k, s, _ in CUTIE_AUX_SPECS})  # training-only head, dropped on load
    assert len(ours) == cf.weights_info()[variant]["num_keys"] == len(expected)
    assert ours == {k: v[:2] for k, v in expected.items()}


@pytest.mark.parametrize("variant", ["base", "small"])
def test_generated_weights_match_fixture_fingerprints(variant):
    expected = cf.weights_info()[variant]["keys"]
    state = cf.state_dict(variant)
    assert set(state) == set(expected)
    for key, (_, _, total, first) in expected.items():
        ours = fingerprint(state[key])
        assert ours["first"] == pytest.approx(first, rel=1e-6, abs=1e-9), key
        assert ours["sum"] == pytest.approx(total, rel=1e-6, abs=1e-6), key


def test_positional_encoding_buffers_are_what_the_network_computes():
    built = CutieNetwork("small").state_dict()
    for key in ("object_transformer.spatial_pe.inv_freq", "object_summarizer.pos_enc.inv_freq"):
        assert torch.allclose(built[key], cf.state_dict("small")[key], rtol=1e-7, atol=0)


@pytest.fixture(scope="module")
def small_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cutie")
    state = cf.state_dict("small")
    torch.save(state, folder / "cutie-small-mega.pth")
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "cutie-small.safetensors"))
    return folder


def test_family_and_dims_come_from_the_file(small_files):
    for name in ("cutie-small-mega.pth", "cutie-small.safetensors"):
        model = load_model(str(small_files / name))
        assert model.family == "cutie" and model.name == name
        assert model.describe()["variant"] == "small" and model.describe()["family"] == "cutie"
        assert not model.network.training
        loaded = model.network.state_dict()["mask_decoder.pred.bias"]
        assert torch.equal(loaded, cf.state_dict("small")["mask_decoder.pred.bias"])
    assert load_network(cf.state_dict("base")).dims["variant"] == "base"


def test_missing_unexpected_and_wrong_shapes_are_named():
    state = dict(cf.state_dict("small"))
    del state["object_transformer.blocks.1.ffn.linear2.bias"]
    state["object_transformer.extra.weight"] = torch.zeros(1)
    state["mask_decoder.pred.weight"] = torch.zeros(1, 64, 3, 3)
    with pytest.raises(CheckpointError) as err:
        load_network(state, source_name="odd-cutie.pth")
    msg = str(err.value)
    for part in ("odd-cutie.pth", "Cutie network", "blocks.1.ffn.linear2.bias", "object_transformer.extra.weight",
                 "mask_decoder.pred.weight (1, 64, 3, 3) (expected (1, 128, 3, 3))"):
        assert part in msg


def test_single_object_checkpoint_gets_zero_others_channels():
    state = dict(cf.state_dict("small"))
    for key in ("mask_encoder.conv1.weight", "pixel_fuser.sensory_compress.weight"):
        state[key] = state[key][:, :-1].clone()
    loaded = load_network(state).state_dict()
    for key in ("mask_encoder.conv1.weight", "pixel_fuser.sensory_compress.weight"):
        assert torch.equal(loaded[key][:, :-1], state[key]) and not loaded[key][:, -1].any()


def test_training_head_counters_and_buffers_may_be_absent_or_extra():
    state = {k: v for k, v in cf.state_dict("small").items()
             if not k.startswith("aux_computer.") and not k.endswith(("num_batches_tracked", "inv_freq"))}
    state["pixel_mean"] = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)  # some older files carry these
    net = load_network(state)
    assert torch.equal(net.state_dict()["object_summarizer.pos_enc.inv_freq"],
                       CutieNetwork("small").state_dict()["object_summarizer.pos_enc.inv_freq"])


def test_mixed_foreign_and_odd_files_are_refused():
    state = dict(cf.state_dict("small"))
    with pytest.raises(CheckpointError, match="mixes XMem keys"):
        load_network({**state, "key_encoder.conv1.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r"not a checkpoint of any known model family \(XMem, Cutie, "):
        load_network({"hello": torch.zeros(3)})
    with pytest.raises(CheckpointError, match="neither base .1024. nor small .256."):
        load_network({**state, "pix_feat_proj.weight": torch.zeros(256, 512, 1, 1)})
    partial = {k: v for k, v in state.items() if not k.startswith("object_transformer.query_init")}
    with pytest.raises(CheckpointError, match="not a complete Cutie checkpoint"):
        load_network(partial)


def test_attention_masks_follow_the_foreground():
    """Non-trivial masks (the parity runs only see masks that block nothing): object 0 wins the
    left half, object 1 the right, they tie in the last column; object 2 wins nowhere."""
    logits = torch.full((1, 3, 2, 4), -9.0)
    logits[0, 0, :, :2] = 5
    logits[0, 1, :, 2:] = 5
    logits[0, 0, :, 3] = 5              # a tie: both objects are foreground there
    mask = attention_mask(logits, heads=2, num_queries=4).view(1, 3, 2, 4, 8)
    fg = torch.tensor([[1, 1, 0, 1, 1, 1, 0, 1], [0, 0, 1, 1, 0, 0, 1, 1], [0] * 8], dtype=torch.bool)
    for o in range(3):
        for h in range(2):
            first, second = mask[0, o, h, :2], mask[0, o, h, 2:]
            if fg[o].any():
                assert torch.equal(first, ~fg[o].expand(2, 8))   # object queries: blocked off the object
                assert torch.equal(second, fg[o].expand(2, 8))   # background queries: blocked on it
            else:  # blocked everywhere -> the row is opened instead of producing NaN
                assert not first.any() and not second.any()


def test_stagger_offsets_follow_the_reference_table():
    table = {1: {1}, 3: {1, 2, 3}, 5: {1, 2, 3, 4, 5}, 7: {1, 2, 4, 6, 7}, 10: {1, 3, 6, 8, 10}}
    for mem_every, offsets in table.items():
        assert stagger_offsets(mem_every, 5) == offsets


def test_chunking_objects_is_exact_in_the_mask_encoder_and_decoder():
    """Objects are independent there (the "others" channel is made before chunking); only the
    memory read couples them, which is why cutie_chunk_size can change results."""
    net = cf.network("small")
    gen = torch.Generator().manual_seed(3)
    image = torch.randn(1, 3, 32, 48, generator=gen)
    masks = torch.rand(1, 3, 32, 48, generator=gen)
    sensory = torch.randn(1, 3, 256, 2, 3, generator=gen)
    with torch.no_grad():
        feats = net.encode_key(image)
        whole = net.encode_mask(image, feats.features, sensory, masks, True, -1)
        chunked = net.encode_mask(image, feats.features, sensory, masks, True, 1)
        for a, b in zip(whole, chunked):
            assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)
        readout = torch.randn(1, 3, 256, 2, 3, generator=gen)
        for a, b in zip(net.decode(feats.features, readout, sensory, True, -1),
                        net.decode(feats.features, readout, sensory, True, 2)):
            assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)
