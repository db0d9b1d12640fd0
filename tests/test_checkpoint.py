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


def _rss_anon_mib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("RssAnon:"))


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the process's memory from /proc")
def test_pth_tensors_are_mapped_from_the_file_and_a_legacy_file_still_loads(tmp_path):
    """Read into memory, a checkpoint's tensors were a second copy of the weights beside the
    network's, and the allocator kept most of it once freed (a 237 MiB XMem took +391 MiB)."""
    weights = {"big": torch.arange(16 * 2 ** 20, dtype=torch.float32)}  # 64 MiB
    path, legacy = tmp_path / "big.pth", tmp_path / "legacy.pth"
    torch.save(weights, path)
    torch.save({"small": torch.ones(3)}, legacy, _use_new_zipfile_serialization=False)
    before = _rss_anon_mib()
    state = read_state_dict(path)
    assert _rss_anon_mib() - before < 16, "the tensors were read into anonymous memory"
    assert torch.equal(state["big"], weights["big"])
    assert torch.equal(read_state_dict(legacy)["small"], torch.ones(3)), "a pre-zip file cannot be mapped: read"


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


# ----------------------------------------------------------------------------- damaged files: whole messages

def _damaged(kind, source):
    data = source.read_bytes()
    if kind == "truncated":
        return data[: len(data) // 3]
    return os.urandom(4096) if kind == "random bytes" else data


@pytest.mark.parametrize("name, kind, release", [
    ("XMem.pth", "truncated", True),                       # a known release file
    ("XMem-s012.pth", "random bytes", True),
    ("xmem_finetuned_on_my_shots.pth", "truncated", False),  # renamed, a hash no release has
    ("xmem_finetuned_on_my_shots.safetensors", "random bytes", False),
])
def test_damaged_weights_message_is_whole_and_fits_whose_file_it_is(tmp_path, saved_pth, name, kind, release):
    from memvos_core.families.registry import release_url_of
    from memvos_core.runtime.model import load_model
    path = tmp_path / name
    path.write_bytes(_damaged(kind, saved_pth))
    with pytest.raises(CheckpointError) as err:
        load_model(str(path), name=name)
    text = str(err.value)
    assert str(path) in text and "\n" not in text
    if release:
        assert text.endswith(f"download it again: {release_url_of(path)}") and release_url_of(path).startswith("https://")
    else:
        assert "download" not in text
        assert text.endswith("re-export or copy it again, or pick another file")
    # torch's paragraph ("... transferred incorrectly, o") is quoted as its first sentence, whole words.
    assert "If you are seeing this error" not in text and len(text) < 500
    if kind == "truncated" and name.endswith(".pth"):
        assert "(RuntimeError: PytorchStreamReader failed reading zip archive: failed finding central directory)" in text


def test_fine_tuned_weights_load_and_impossible_values_get_the_owners_fix(tmp_path, synthetic_weights):
    from memvos_core.runtime.model import load_model
    tuned = {k: (v * 1.01 if v.is_floating_point() else v) for k, v in synthetic_weights.items()}
    torch.save(tuned, tmp_path / "xmem_tuned.pth")  # a file no release has: it simply loads
    assert load_model(str(tmp_path / "xmem_tuned.pth")).network is not None
    diverged = {k: (v * float("nan") if v.is_floating_point() else v) for k, v in synthetic_weights.items()}
    for name, fix in (("xmem_tuned_nan.pth", "re-export or copy it again, or pick another file"),
                      ("XMem.pth", "download it again: https://")):
        torch.save(diverged, tmp_path / name)
        with pytest.raises(CheckpointError, match="NaN") as err:
            load_model(str(tmp_path / name))
        assert fix in str(err.value) and ("download" in str(err.value)) == (name == "XMem.pth")


@pytest.mark.parametrize("text, limit, expected", [
    ("short enough", 20, "short enough"),
    ("it was transferred incorrectly, or the disk failed", 36, "it was transferred incorrectly, or\u2026"),
    ("it was transferred incorrectly, or the disk failed", 33, "it was transferred incorrectly\u2026"),
    ("one\nparagraph   with  spaces", 40, "one paragraph with spaces"),
    ("a" * 50, 10, "a" * 9 + "\u2026"),
])
def test_a_quoted_error_is_cut_at_a_word_boundary(text, limit, expected):
    from memvos_core.error_text import shortened
    assert shortened(text, limit) == expected and len(shortened(text, limit)) <= limit


def test_a_quoted_error_keeps_its_first_sentence():
    from memvos_core.error_text import error_detail
    exc = RuntimeError("PytorchStreamReader failed reading zip archive: failed finding central directory. "
                       "This is an internal miniz error. If you are seeing this error ...\nmore")
    assert error_detail(exc) == "PytorchStreamReader failed reading zip archive: failed finding central directory"
    assert error_detail(RuntimeError("")) == "no detail"
