"""Replaying the SAM 2.1 parity runs (tests/fixtures/sam2_parity, see its README) with our
network: the generated weights, the official frame loading, the recorded calling sequences."""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from memvos_core.runtime.frames import normalize

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "sam2_parity")
CLIP = os.path.join(os.path.dirname(__file__), "fixtures", "xmem_parity", "clip")  # the same clip
_CACHE = {}


def fixture_module(name, folder=FIXTURE):
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return __import__(name)


def generated_state(folder=FIXTURE):
    """The state dict of the fixture's weight rule (checked against its SHA-256)."""
    if folder not in _CACHE:
        wr = fixture_module("weights_rule", folder)
        keys = os.path.join(folder, "keys.json")
        state = wr.generate_state_dict(wr.load_specs(keys))
        assert wr.state_dict_sha256(state) == json.load(open(keys))["state_dict_sha256"]
        _CACHE[folder] = state
    return _CACHE[folder]


def official_frame(path, size):
    """The official JPEG-folder loader's arithmetic: PIL bicubic to S x S, /255 in float64,
    float32, then the ImageNet normalisation."""
    rgb = np.array(Image.open(path).convert("RGB").resize((size, size))) / 255.0
    return normalize(torch.from_numpy(rgb).permute(2, 0, 1).float())[None]


def replay_video_run(net, run_dir, clip=CLIP, max_frames=None):
    """Our outputs for a video run, under the fixture's key names (video_res_masks/tNN,
    callNN/video_res_masks, object_score_logits/tNN, obj_ptr/tNN/objI, lowres_masks/tNN/objI)."""
    from memvos_core.families.sam2.video import VideoTracker
    cfg = json.load(open(os.path.join(run_dir, "config.json")))
    size = net.image_size
    frames = lambda t: official_frame(os.path.join(clip, "frames", f"{t:05d}.png"), size)  # noqa: E731
    tracker = VideoTracker(net, frames, cfg["video_hw"], cfg["num_frames"])
    out, n_call, reverse = {}, 0, False
    for c in cfg["calls"]:
        a = c["args"]
        if c["call"] == "init_state":
            continue
        if c["call"] == "propagate_in_video":
            reverse = bool(a.get("reverse", False))
            break
        n_call += 1
        if c["call"] == "add_new_mask":
            lab = np.array(Image.open(os.path.join(run_dir, "annotations", f"{a['frame_idx']:05d}.png")))
            logits = tracker.add_mask(a["frame_idx"], a["obj_id"], lab == a["obj_id"])
        else:
            logits = tracker.add_points(a["frame_idx"], a["obj_id"], a.get("points"), a.get("labels"), a.get("box"),
                                        clear_old=a.get("clear_old_points", True))
        out[f"call{n_call:02d}/video_res_masks"] = logits
    for i, (t, ids, logits, scores) in enumerate(tracker.propagate(reverse=reverse)):
        if max_frames is not None and i >= max_frames:
            break
        out[f"video_res_masks/t{t:02d}"] = logits
        out[f"object_score_logits/t{t:02d}"] = torch.tensor(scores)
        for j, track in enumerate(tracker.objects.values()):
            rec = track.cond.get(t) or track.recent.get(t)
            out[f"obj_ptr/t{t:02d}/obj{ids[j]}"] = rec.pointer[0]
    return out


def frames_of(key):
    tags = [p for p in key.split("/") if len(p) == 3 and p[0] == "t" and p[1:].isdigit()]
    return int(tags[0][1:]) if tags else None


def compare_with_reference(run_dir, cand):
    """The fixture's recommended test (its compare.py) on the frames ``cand`` has:
    ``(ok, worst figures, first failing key)``."""
    ref = load_file(os.path.join(run_dir, "outputs.safetensors"))
    done = {frames_of(k) for k in cand}
    ref = {k: v for k, v in ref.items() if frames_of(k) is None or frames_of(k) in done}
    compare = fixture_module("compare")
    return compare.compare(ref, cand, verbose=True)
