"""The engine with MatAnyone against the official MatAnyone inference (fixture runs A-C, fp32,
CPU, generated weights; MatAnyone 2 has the same network and inference, so this covers both).

The engine gets the masks given to the official script and prepares them as the script does
(its closing). Runs A and B (the ellipse and the star, two separate official runs) are matted
here as two objects of ONE propagation: our objects are independent, so each must still match its own
run. Tolerance (fixture README, "Noise"): per frame max |dalpha| <= 1e-2 and mean <= 1e-3 for
A/B, 5e-2 / 5e-3 for C (long-term memory forced), the warm-up amplifying float noise.
"""
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cutie_fixture
import xmem_fixture
from memvos_core.runtime.engine import InferenceEngine
from memvos_core.families.matanyone import model as matanyone_model
from memvos_core.families.matanyone.closing import close_mask
from memvos_core.families.matanyone.synthetic import synthetic_matanyone_state_dict
from memvos_core.network import load_network
from memvos_core.network.synthetic import fingerprint

ROOT = Path(__file__).resolve().parent / "fixtures" / "matanyone_parity"
NUM_FRAMES = 16
TOLERANCE = {"A": (1e-2, 1e-3), "B": (1e-2, 1e-3), "C": (5e-2, 5e-3)}


@lru_cache(maxsize=None)
def fixture():
    return json.loads((ROOT / "fixture.json").read_text())


@lru_cache(maxsize=None)
def reference():
    with np.load(ROOT / "alpha_u16.npz") as z:
        return {k: torch.from_numpy(z[k].astype(np.float32) / 65535) for k in z.files}


@lru_cache(maxsize=None)
def network():
    return load_network(synthetic_matanyone_state_dict())


def given_mask(run, suffix=""):
    """The first-frame mask given to the official script (``suffix`` "_fed": what it fed the
    network after its closing), 0/1. The engine gets the given one and closes it itself."""
    name = fixture()["runs"][run]["mask"]
    image = Image.open(ROOT / f"mask_{name}{suffix}.png").convert("L")
    return torch.from_numpy(np.array(image).astype(np.float32) / 255)


def memory_config(run):
    return cutie_fixture.settings_config(fixture()["runs"][run]["settings"], memory_mode="xmem")


def propagate(runs, warmup_steps=None, frames=NUM_FRAMES):
    """One propagation with one object per run (the run's first-frame mask); yields per frame
    the alphas ``[len(runs),H,W]``. The runs share their memory settings."""
    engine = InferenceEngine(network(), memory_config(runs[0]))
    engine.set_num_objects(len(runs))
    with torch.inference_mode():
        for t in range(frames):
            if t == 0:
                mask = torch.stack([given_mask(run) for run in runs])
                prob = engine.step(xmem_fixture.frame_tensor(0), mask, list(range(1, len(runs) + 1)))
            else:
                prob = engine.step(xmem_fixture.frame_tensor(t))
            yield t, prob[1:]


def check_run(run, t, alpha, worst):
    ref = reference()[run][t]
    assert alpha.shape == ref.shape, f"run {run} frame {t}: shape"
    diff = (alpha - ref).abs()
    top, mean = diff.max().item(), diff.mean().item()
    worst[run] = (max(worst[run][0], top), max(worst[run][1], mean))
    limit_max, limit_mean = TOLERANCE[run]
    assert top <= limit_max and mean <= limit_mean, f"run {run} frame {t}: max {top:.2e}, mean {mean:.2e}"


def test_generated_weights_match_the_fixture():
    state = synthetic_matanyone_state_dict()
    expected = fixture()["fingerprints"]
    assert set(state) == set(expected)
    for key, ref in expected.items():
        ours = fingerprint(state[key])
        assert ours["first"] == pytest.approx(ref["first"], rel=1e-6, abs=1e-7), key
        assert ours["sum"] == pytest.approx(ref["sum"], rel=1e-5, abs=1e-4), key


@pytest.mark.parametrize("run", ["A", "B"])
def test_first_mask_is_closed_as_the_official_script_closes_it(run):
    closed = close_mask(given_mask(run))
    assert torch.equal(closed, given_mask(run, "_fed")) and not torch.equal(closed, given_mask(run))


def test_first_warm_up_prediction_matches(monkeypatch):
    """One warm-up step (no recurrence yet): far inside the tolerance (noise ~1e-5)."""
    monkeypatch.setattr(matanyone_model, "WARMUP_STEPS", 1)
    _, alpha = next(propagate(["A"]))
    assert (alpha[0] - reference()["A_warmup"][0]).abs().max() <= 1e-3


def test_runs_a_and_b_as_two_objects_of_one_propagation():
    worst = {"A": (0, 0), "B": (0, 0)}
    frames = 0
    for t, alpha in propagate(["A", "B"]):
        check_run("A", t, alpha[0], worst)
        check_run("B", t, alpha[1], worst)
        frames += 1
    assert frames == NUM_FRAMES
    print({run: f"max {a:.2e} mean {b:.2e}" for run, (a, b) in worst.items()})


def test_run_c_long_term_memory():
    worst = {"C": (0, 0)}
    for t, alpha in propagate(["C"]):
        check_run("C", t, alpha[0], worst)
    print({run: f"max {a:.2e} mean {b:.2e}" for run, (a, b) in worst.items()})
