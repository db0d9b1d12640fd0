"""The engine against the official XMem / XMem++ inference (fixture runs A-D, fp32, CPU)."""
import json

import pytest
import torch
from safetensors.torch import load_file

import xmem_fixture as fx
from memvos_core.runtime.engine import InferenceEngine
from memvos_core.runtime.frames import aggregate, pad, pad_amounts, unpad
from memvos_core.memory.similarity import readout, similarity, topk_softmax
from memvos_core.network.synthetic import fingerprint


def run_engine(net, run):
    """Drive the engine with the fixture README's calling sequence; yield (t, prob)."""
    config = fx.memory_config(run)
    engine = InferenceEngine(net, config)
    annotated = fx.annotated_frames(run)
    seen = []

    def one_hot(t):
        idx = fx.annotation_indices(run, t)
        new = sorted(set(idx.flatten().tolist()) - {0})
        seen.extend(label for label in new if label not in seen)
        return torch.stack([torch.from_numpy(idx == label).float() for label in seen]), new

    xmem_plus = config.memory_mode == "keyframes"
    with torch.no_grad():
        if xmem_plus:  # XMem++ preloads every annotation into permanent memory, in frame order
            for t in annotated:
                mask, _ = one_hot(t)
                engine.set_num_objects(len(seen))
                engine.add_permanent(fx.frame_tensor(t), mask)
        for t in range(fx.NUM_FRAMES):
            mask = valid = None
            if t in annotated:
                mask, valid = one_hot(t)
                if xmem_plus:
                    valid = list(range(1, len(seen) + 1))  # exhaustive annotations
                engine.set_num_objects(len(seen))
            prob = engine.step(fx.frame_tensor(t), mask, valid, end=t == fx.NUM_FRAMES - 1,
                               write_memory=not (xmem_plus and t in annotated))
            yield t, prob, engine


@pytest.mark.parametrize("run", ["A", "B", "C", "D"])
def test_probabilities_match_reference(xmem_net, run):
    refs = fx.reference_probs(run)
    worst = 0.0
    for t, prob, _ in run_engine(xmem_net, run):
        diff, flips = fx.compare(prob, refs[t])
        worst = max(worst, diff)
        assert diff <= fx.PROB_TOL, f"run {run} frame {t}: max |dprob| {diff:.2e}"
        assert flips == 0, f"run {run} frame {t}: {flips} decisive argmax flips"
    print(f"run {run}: max |dprob| {worst:.2e}")


def test_memory_schedule_of_run_b_consolidates_and_prunes(xmem_net):
    sizes = {t: engine.memory.sizes() for t, _, engine in run_engine(xmem_net, "B")}
    assert sizes[3]["long_term"] == 0 and sizes[4]["long_term"] == 12   # first consolidation
    assert sizes[4]["working"] == 168                                   # first frame + newest
    assert sizes[10]["long_term"] == 42 and sizes[15]["long_term"] == 42  # pruned 36 -> 30, +12


def test_run_c_adds_a_second_object_group(xmem_net):
    for t, prob, engine in run_engine(xmem_net, "C"):
        assert prob.shape[0] == (2 if t < 4 else 3)
    assert [v.shape[-1] for v in engine.memory.working.values] == [336, 252]


def test_intermediate_tensors_of_run_a_match(xmem_net):
    debug = load_file(str(fx.run_dir("A") / "debug.safetensors"))
    image, _ = pad(fx.frame_tensor(1))
    with torch.no_grad():
        feats = xmem_net.encode_key(image.unsqueeze(0), True, True)
    for name, ours in (("key", feats.key), ("selection", feats.selection)):
        ref = debug[f"t01/{name}"]
        assert (ours - ref).abs().max() <= 1e-3 * ref.abs().max()


def test_components_readout_and_aggregate():
    comp = load_file(str(fx.ROOT / "components.safetensors"))
    sim = similarity(comp["readout/mem_key"], comp["readout/mem_shrinkage"],
                     comp["readout/query_key"], comp["readout/query_selection"])
    assert torch.allclose(sim, comp["readout/similarity"], rtol=1e-5, atol=1e-4)
    aff = topk_softmax(sim, 30)
    assert torch.allclose(aff, comp["readout/affinity_top30"], atol=1e-6)
    out = readout(aff, comp["readout/mem_value"])
    assert (out - comp["readout/readout_top30"]).abs().max() < 1e-5
    prob = aggregate(comp["aggregate/object_prob"], dim=0)
    assert (prob - comp["aggregate/prob"]).abs().max() < 1e-6


def test_padding_amounts_match_reference():
    assert pad_amounts(109, 187) == (2, 3, 1, 2)
    assert pad_amounts(480, 854) == (5, 5, 0, 0)
    assert pad_amounts(100, 161) == (7, 8, 6, 6)
    assert pad_amounts(17, 31) == (0, 1, 7, 8)
    x = torch.rand(2, 109, 187)
    padded, pads = pad(x)
    assert padded.shape[-2:] == (112, 192) and torch.equal(unpad(padded, pads), x)


def test_generated_weights_match_fixture_fingerprints(synthetic_weights):
    expected = json.loads((fx.ROOT / "weight_fingerprints.json").read_text())
    assert set(expected) == set(synthetic_weights)
    for key, fp in expected.items():
        ours = fingerprint(synthetic_weights[key])
        assert ours["first"] == pytest.approx(fp["first"], rel=1e-6, abs=1e-9), key
        assert ours["sum"] == pytest.approx(fp["sum"], rel=1e-6, abs=1e-6), key
