"""Loading checkpoints: strict keys, single-object variant, wrong / truncated / malicious files."""
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from memvos_core.network import CheckpointError, load_network, read_state_dict
from memvos_core.families.xmem.checkpoint import infer_dims


@pytest.fixture(scope="module")
def saved_pth(synthetic_weights_file):
    return synthetic_weights_file


def test_pth_loads_strictly_with_dims_from_shapes(saved_pth, synthetic_weights):
    net = load_network(saved_pth)
    assert net.dims == {"key_dim": 64, "value_dim": 512, "hidden_dim": 64}
    assert not net.training
    assert torch.equal(net.state_dict()["decoder.pred.weight"], synthetic_weights["decoder.pred.weight"])


def test_safetensors_loads(tmp_path, synthetic_weights):
    path = tmp_path / "XMem.safetensors"
    save_file({k: v.contiguous() for k, v in synthetic_weights.items()}, str(path))
    net = load_network(path)
    assert torch.equal(net.state_dict()["key_proj.key_proj.weight"], synthetic_weights["key_proj.key_proj.weight"])


def test_missing_and_unexpected_keys_are_named(synthetic_weights):
    state = dict(synthetic_weights)
    del state["decoder.pred.bias"]
    state["decoder.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as err:
        load_network(state, source_name="odd.pth")
    msg = str(err.value)
    assert "odd.pth" in msg and "decoder.pred.bias" in msg and "decoder.extra.weight" in msg


def test_wrong_shape_is_named(synthetic_weights):
    state = dict(synthetic_weights)
    state["decoder.pred.weight"] = torch.zeros(1, 128, 3, 3)
    with pytest.raises(CheckpointError, match=r"decoder\.pred\.weight \(1, 128, 3, 3\) \(expected \(1, 256, 3, 3\)\)"):
        load_network(state)


def test_single_object_checkpoint_gets_a_zero_others_channel(synthetic_weights):
    state = dict(synthetic_weights)
    state["value_encoder.conv1.weight"] = synthetic_weights["value_encoder.conv1.weight"][:, :4].clone()
    net = load_network(state)
    w = net.state_dict()["value_encoder.conv1.weight"]
    assert w.shape == (64, 5, 7, 7)
    assert torch.equal(w[:, :4], state["value_encoder.conv1.weight"]) and not w[:, 4].any()


def test_old_checkpoint_without_bn_counters_loads(synthetic_weights):
    state = {k: v for k, v in synthetic_weights.items() if not k.endswith("num_batches_tracked")}
    assert len(state) == 412 - 58
    load_network(state)


def test_training_checkpoint_and_module_prefix_are_unwrapped(synthetic_weights):
    wrapped = {"it": 1, "network": {f"module.{k}": v for k, v in synthetic_weights.items()}}
    load_network(wrapped)


def test_no_sensory_variant_runs(synthetic_weights):
    state = {k: v for k, v in synthetic_weights.items()
             if not k.startswith(("value_encoder.hidden_reinforce", "decoder.hidden_update"))}
    for key in ("decoder.fuser.block1.conv1.weight", "decoder.fuser.block1.downsample.weight"):
        state[key] = state[key][:, :1536].clone()
    assert infer_dims(state)["hidden_dim"] == 0
    net = load_network(state)
    from memvos_core import InferenceEngine, MemoryConfig
    engine = InferenceEngine(net, MemoryConfig(memory_mode="xmem"))
    engine.set_num_objects(1)
    mask = torch.zeros(1, 32, 48)
    mask[0, 8:20, 10:30] = 1
    with torch.no_grad():
        engine.step(torch.rand(3, 32, 48), mask, [1])
        prob = engine.step(torch.rand(3, 32, 48))
    assert prob.shape == (2, 32, 48)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pth"
    torch.save({"hello": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="not a checkpoint of any known model family"):
        load_network(path)
    html = tmp_path / "XMem.pth"
    html.write_text("<html>rate limited</html>")
    with pytest.raises(CheckpointError, match="could not be read"):
        load_network(html)


def test_truncated_file(tmp_path, saved_pth):
    path = tmp_path / "XMem.pth"
    data = saved_pth.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError) as err:
        load_network(path)
    assert str(path) in str(err.value) and "download it again" in str(err.value)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_with_code_payload_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "XMem.pth"
    with open(path, "wb") as f:
        pickle.dump({"key_encoder.conv1.weight": _Payload(marker)}, f)
    with pytest.raises(CheckpointError, match="could not be read"):
        read_state_dict(path)
    assert not marker.exists()
    torch.save({"x": _Payload(marker)}, tmp_path / "zip.pth")
    with pytest.raises(CheckpointError):
        read_state_dict(tmp_path / "zip.pth")
    assert not marker.exists()


def test_missing_file_says_so(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_state_dict(tmp_path / "nope.pth")
