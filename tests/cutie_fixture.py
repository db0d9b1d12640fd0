"""Access to the Cutie parity fixtures copied into tests/fixtures/cutie_parity (see its builder),
and the fixture README's calling sequences driven through our engine."""
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import xmem_fixture
from memvos_core.config import MemoryConfig
from memvos_core.runtime.engine import InferenceEngine
from memvos_core.network import load_network
from memvos_core.network.synthetic import synthetic_state_dict

ROOT = Path(__file__).resolve().parent / "fixtures" / "cutie_parity"
RUNS = "ABCDE"
NUM_FRAMES = 16
frame_tensor = xmem_fixture.frame_tensor   # the same clip, prepared the same way
frame_rgb = xmem_fixture.frame_rgb
compare = xmem_fixture.compare             # same tolerance rule (fixture README, "Noise")


def run_dir(run):
    return ROOT / f"run_{run}"


@lru_cache(maxsize=None)
def run_config(run):
    return json.loads((run_dir(run) / "config.json").read_text())


@lru_cache(maxsize=None)
def weights_info():
    return json.loads((ROOT / "weights.json").read_text())


@lru_cache(maxsize=None)
def state_dict(variant):
    return synthetic_state_dict(family="cutie", variant=variant)


@lru_cache(maxsize=None)
def network(variant):
    return load_network(state_dict(variant))


def variant(run):
    return run_config(run)["model"]


def annotated_frames(run):
    return sorted(int(t) for t in run_config(run)["annotated_frames"])


def memory_config(run, **changes):
    """Our settings equal to the reference run's ``inference_core_config``."""
    return settings_config(run_config(run)["settings"], memory_mode="xmem++" if run == "E" else "xmem", **changes)


def settings_config(s, **changes):
    """Our settings equal to a Cutie-style ``inference_core_config`` (also MatAnyone's)."""
    lt = s["long_term"]
    return MemoryConfig(
        top_k=s["top_k"], mem_every=s["mem_every"], stagger_updates=s["stagger_updates"],
        chunk_size=s["chunk_size"], enable_long_term=s["use_long_term"], max_mem_frames=s["max_mem_frames"],
        enable_long_term_count_usage=lt["count_usage"], min_mid_term_frames=lt["min_mem_frames"],
        max_mid_term_frames=lt["max_mem_frames"], num_prototypes=lt["num_prototypes"],
        max_long_term_elements=lt["max_num_tokens"], buffer_tokens=lt["buffer_tokens"], **changes)


def annotation_labels(run, t):
    return np.array(Image.open(run_dir(run) / "annotations" / f"{t:05d}.png"))


@lru_cache(maxsize=None)
def reference_probs(run):
    """Per frame, float32 ``[num_objects+1,H,W]`` with background first."""
    return xmem_fixture.probs_from_planes(run_dir(run) / "objects_u16.npz", NUM_FRAMES)


def schedule(run):
    """The reference's steps (run E: the two preloads first), with memory sizes after each."""
    return run_config(run)["schedule"]


def run_engine(run, net=None, config=None):
    """Drive the engine with the README's calling sequence; yield ``(step, t, prob, engine)``
    (``t`` None for run E's preloads). A: eval_vos defaults; B: long-term memory forced; C: an
    object annotated at frame 4 only; D: the small model; E: keyframes committed to permanent
    memory first (``force_permanent``), then stepped again with their masks."""
    net = net if net is not None else network(variant(run))
    engine = InferenceEngine(net, config or memory_config(run))
    annotated = annotated_frames(run)
    seen = []

    def one_hot(t):
        labels = annotation_labels(run, t)
        new = sorted(set(labels.flatten().tolist()) - {0})
        seen.extend(label for label in new if label not in seen)
        engine.set_num_objects(len(seen))
        return torch.stack([torch.from_numpy(labels == label).float() for label in seen]), new

    exhaustive = run == "E"   # process_video.py passes every object's plane
    step = 0
    with torch.no_grad():
        if exhaustive:
            for t in annotated:
                mask, _ = one_hot(t)
                prob = engine.step(frame_tensor(t), mask, list(range(1, len(seen) + 1)), write_permanent=True)
                yield step, None, prob, engine
                step += 1
        for t in range(NUM_FRAMES):
            mask = valid = None
            if t in annotated:
                mask, valid = one_hot(t)
                if exhaustive:
                    valid = list(range(1, len(seen) + 1))
            prob = engine.step(frame_tensor(t), mask, valid, end=not exhaustive and t == NUM_FRAMES - 1)
            yield step, t, prob, engine
            step += 1


def bucket_sizes(engine):
    """Our memory sizes in the fixture schedule's terms (objects 1-based)."""
    return [{"objects": [o + 1 for o in b["objects"]], "permanent": b["permanent"],
             "temporary": b["temporary"], "long_term": b["long_term"]} for b in engine.memory.bucket_sizes()]
