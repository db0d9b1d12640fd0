"""Access to the XMem parity fixtures copied into tests/fixtures/xmem_parity (see its builder)."""
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from memvos_core.config import MemoryConfig
from memvos_core.runtime.frames import normalize

ROOT = Path(__file__).resolve().parent / "fixtures" / "xmem_parity"
NUM_FRAMES = 16
PROB_TOL = 1e-3       # max |dprob| per frame (fixture README: ~7x the reference's own noise)
DECISIVE_MARGIN = 2e-3


def run_dir(run):
    return ROOT / f"run_{run}"


def run_config(run):
    return json.loads((run_dir(run) / "config.json").read_text())


def annotated_frames(run):
    return sorted(int(t) for t in run_config(run)["annotated_frames"])


def memory_config(run):
    """The engine settings equal to the reference run's (run D: XMem++, whose memory manager
    counted long-term usage although its config said otherwise; README "Runs")."""
    cfg = run_config(run)
    ic = cfg["inference_core_config"]
    usage = cfg.get("long_term_usage_counting_actually_used_by_memory", ic["enable_long_term_count_usage"])
    return MemoryConfig(
        top_k=ic["top_k"], mem_every=ic["mem_every"], deep_update_every=ic["deep_update_every"],
        enable_long_term=ic["enable_long_term"], enable_long_term_count_usage=usage,
        min_mid_term_frames=ic["min_mid_term_frames"], max_mid_term_frames=ic["max_mid_term_frames"],
        num_prototypes=ic["num_prototypes"], max_long_term_elements=ic["max_long_term_elements"],
        memory_mode="xmem++" if run == "D" else "xmem")


def frame_path(t):
    return ROOT / "clip" / "frames" / f"{t:05d}.png"


@lru_cache(maxsize=None)
def frame_rgb(t):
    """uint8 ``[H,W,3]``."""
    return np.array(Image.open(frame_path(t)).convert("RGB"))


def frame_tensor(t):
    """Normalised ``[3,H,W]`` float32, prepared exactly as the reference run was."""
    return normalize(torch.from_numpy(frame_rgb(t)).permute(2, 0, 1).float().div(255))


def annotation_path(run, t):
    return run_dir(run) / "annotations" / f"{t:05d}.png"


def annotation_indices(run, t):
    return np.array(Image.open(annotation_path(run, t)))


@lru_cache(maxsize=None)
def reference_probs(run):
    """Per frame, float32 ``[num_objects+1,H,W]`` with background first."""
    return probs_from_planes(run_dir(run) / "objects_u16.npz", NUM_FRAMES)


def probs_from_planes(path, num_frames):
    """The fixtures' uint16 object planes as float32 probabilities, background (1 - sum) first."""
    data = np.load(path)
    out = []
    for t in range(num_frames):
        objects = torch.from_numpy(data[f"t{t:02d}"].astype(np.float32) / 65535)
        out.append(torch.cat([1 - objects.sum(0, keepdim=True), objects], 0))
    return out


def compare(prob, ref):
    """(max |dprob|, number of argmax flips where the reference's top-2 margin is decisive)."""
    assert prob.shape == ref.shape, f"shape {tuple(prob.shape)} != reference {tuple(ref.shape)}"
    diff = (prob.float() - ref).abs().max().item()
    top2 = ref.topk(2, dim=0).values
    decisive = (top2[0] - top2[1]) > DECISIVE_MARGIN
    flips = int(((prob.argmax(0) != ref.argmax(0)) & decisive).sum())
    return diff, flips
