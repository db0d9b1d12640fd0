"""Property-based fuzzing of every node (issue 19): generated inputs, called as ComfyUI calls them.

For each node, hypothesis draws every input from its INPUT_TYPES: widget values inside and
outside their ranges (NaN, infinities, huge numbers, odd text, JSON nested 5,000 deep), IMAGE
and MASK tensors of every wrong shape, dtype and content (NaN, RGBA, empty, other sizes), the
pack's link types or things that are not them, and every frames source (IMAGE, Load Frames,
Load Video). A case passes when the node either returns outputs without NaN whose pictures have
the frames' size (or the size asked for), or raises one of the pack's own clear errors: a
ValueError of one line raised by the pack's code (not by torch, PIL or numpy deep inside).
Derandomized (fixed seed, no example database): the same cases on every run.
"""
import json
import math
import os
import traceback
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from comfy_stand_ins import CLIP_NAME, MEDIA_DIR, StandInVideoFile, tiny_clip
from pack_loader import REPO_ROOT, pack_for_tests
from workflow_executor import outputs_of

PACK = pack_for_tests()
NODES = PACK.NODE_CLASS_MAPPINGS
MaskSet = PACK.nodes.mask_set.MaskSet
scaled_size = PACK.nodes.frames_nodes.scaled_size
T, H, W = 4, 16, 24  # the fuzzed shot: small, so that Propagate runs in a fraction of a second
CASES = Counter()      # cases run per node
COMPLETED = Counter()  # of which returned outputs (the rest: one of the pack's clear errors)
EXAMPLES = {  # cases per node: 563 in all; the costly nodes get fewer
    "MemVOSLoadModel": 8, "MemVOSNewSession": 50, "MemVOSAddAnnotation": 45, "MemVOSKeyframes": 50,
    "MemVOSPropagate": 30, "MemVOSSelectObjects": 40, "MemVOSRefine": 35, "MemVOSComposite": 35,
    "MemVOSSuggestFrames": 30, "MemVOSSaveSession": 30, "MemVOSLoadSession": 35, "MemVOSLoadFrames": 40,
    "MemVOSGetFrames": 45, "MemVOSGetMasks": 40, "MemVOSSaveMasks": 25, "MemVOSMasksToKeyframes": 25,
}
PACK_DIRS = tuple(os.path.join(REPO_ROOT, d) + os.sep for d in ("memvos_core", "nodes"))
DEEP = "[" * 5000 + "]" * 5000
HOSTILE_TEXT = ["", " ", "0", "-1", "1, 2", "1 2 3", "255", "256", "1e3", "nan", "NaN", "a", "../../etc/passwd",
                "/etc/passwd", "\x00", "é", "9" * 40, DEEP, "{", '{"format": "memvos-keyframes"}', "#00ff00",
                "#12345", "red"]


# ------------------------------------------------------------------ the world the nodes see

class World:
    """Everything a case may connect: built once per module from the nodes themselves."""


@pytest.fixture(scope="module")
def world(comfy):
    w = World()
    w.frames, masks = tiny_clip(T, H, W)
    folder = os.path.join(comfy.dirs["input"], "fuzz_shot")
    os.makedirs(folder, exist_ok=True)
    for t in range(T):
        Image.fromarray((w.frames[t].numpy() * 255).round().astype(np.uint8)).save(os.path.join(folder, f"{t:05d}.png"))
    w.source = outputs_of(NODES["MemVOSLoadFrames"], NODES["MemVOSLoadFrames"]().load("fuzz_shot", 12.0))[0]
    w.video = StandInVideoFile(os.path.join(MEDIA_DIR, CLIP_NAME))
    w.mask = masks[1]
    (w.model,) = outputs_of(NODES["MemVOSLoadModel"], NODES["MemVOSLoadModel"]().load("XMem.pth", "cpu", "auto"))
    (w.empty,) = outputs_of(NODES["MemVOSNewSession"], NODES["MemVOSNewSession"]().create(w.model, internal_size=-1))
    (w.annotated,) = outputs_of(NODES["MemVOSAddAnnotation"],
                                NODES["MemVOSAddAnnotation"]().add(w.empty, w.frames, masks[1][:1], 0, 1))
    (w.annotated,) = outputs_of(NODES["MemVOSAddAnnotation"],
                                NODES["MemVOSAddAnnotation"]().add(w.annotated, w.frames, masks[2][2:3], 2, 2))
    out = outputs_of(NODES["MemVOSPropagate"], NODES["MemVOSPropagate"]().propagate(w.annotated, w.frames))
    w.propagated, w.masks = out[0], out[1]
    suggested = outputs_of(NODES["MemVOSSuggestFrames"],
                           NODES["MemVOSSuggestFrames"]().suggest(w.propagated, w.frames, w.masks))
    w.suggestions = suggested[3]
    (w.session_file,) = outputs_of(NODES["MemVOSSaveSession"],
                                   NODES["MemVOSSaveSession"]().save(w.annotated, "fuzz/session"))
    keyframe = np.zeros((H, W), np.uint8)
    keyframe[2:8, 2:8] = 1
    w.keyframe_file = "memvos/fuzz_keyframe.png"
    os.makedirs(os.path.join(comfy.dirs["input"], "memvos"), exist_ok=True)
    with open(os.path.join(comfy.dirs["input"], w.keyframe_file), "wb") as f:
        f.write(PACK.nodes.keyframe_files.png_bytes(keyframe))
    w.input_dir = comfy.dirs["input"]
    return w


def not_a():
    """Things that are not what a link should carry."""
    return st.sampled_from([None, "text", 3, 2.5, [], {}, torch.zeros(2, 2), object()])


# ------------------------------------------------------------------ strategies per input type
# Each input has a strategy of sensible values (inside the widget's range, the right link type,
# the shot's own frames) and one of hostile values. A case is all sensible (half of them), sensible
# but for one hostile input, or hostile anywhere: so the nodes run to their outputs often enough
# to check them.

def tensors(world, kind, hostile):
    """IMAGE or MASK batches: the shot's own, or every way to get one wrong."""
    f = world.frames
    good = f if kind == "IMAGE" else world.mask
    if not hostile:
        sensible = [good, good[:1], good[0]]
        if kind == "IMAGE":
            sensible.append(torch.cat([f, torch.ones(*f.shape[:3], 1)], -1))  # RGBA
        return st.sampled_from(sensible)
    nan = good.clone()
    nan.view(-1)[7] = math.nan
    variants = [good * 3 - 1, nan, good.to(torch.uint8), good[:0], torch.rand(T, H // 2, W // 2, *good.shape[3:]),
                torch.rand(T, 30, 30, *good.shape[3:]), torch.rand(2, 3, 4, 5, 6), torch.rand(5), good.double(),
                good.bool(), torch.full_like(good, math.inf)]
    if kind == "IMAGE":
        variants += [f[..., :2], f.permute(0, 3, 1, 2)]
    else:
        variants += [good[:, None], (good > 0.5).float()]
    return st.one_of(st.sampled_from(variants), not_a())


def frames_inputs(world, hostile):
    sources = st.sampled_from([world.source, world.video])
    return st.one_of(tensors(world, "IMAGE", hostile), sources) if hostile else \
        st.one_of(tensors(world, "IMAGE", False), sources)


def ints(options, hostile):
    low, high = options.get("min", -10 ** 6), options.get("max", 10 ** 6)
    if not hostile:  # small values (frame numbers in the shot), and some up to 64 (sizes): huge ones are only slow
        return st.one_of(st.integers(low, min(high, low + 6)), st.just(options.get("default", low)),
                         st.integers(low, min(high, low + 64)))
    return st.sampled_from([low - 1, high + 1, -2 ** 63, 2 ** 64, high, True])


def floats(options, hostile):
    low, high = options.get("min", -1e6), options.get("max", 1e6)
    if not hostile:
        return st.one_of(st.floats(low, min(high, low + 50), allow_nan=False), st.just(options.get("default", low)))
    return st.sampled_from([math.nan, math.inf, -math.inf, low - 1, high * 10, -0.0, 1e308])


def texts(name, world, hostile):
    if hostile:
        return st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=12))
    sensible = {
        "keyframes": [keyframes_spec(world), "", keyframes_spec(world, frame=99), keyframes_spec(world, objects=[300]),
                      keyframes_spec(world, file="memvos/missing.png")],
        "session_file": [world.session_file, "fuzz/missing.session.safetensors"],
        "path": ["fuzz_shot", os.path.join(world.input_dir, "fuzz_shot"), "fuzz_shot/00000.png", "missing"],
        "filename_prefix": ["fuzz/out", "fuzz/" + "x" * 300, "fuzz/", "a/b/c"],
        "tta_scales": ["", "1.0", "0.5, 1.0", "0", "100"],
        "background_color": ["#00ff00", "#fff", "white"],
        "mask_frames": ["0", "1", "0, 2", "9"], "label_map_frames": ["0", "1", "0, 2"],
        "mask_object_ids": ["1", "2", "1, 2", "255"], "object_ids": ["", "1", "2", "1, 2", "7"],
    }.get(name, [""])
    return st.sampled_from(sensible)


def keyframes_spec(world, frame=0, objects=(1,), file=None):
    return json.dumps({"format": "memvos-keyframes", "version": 1, "objects": [{"id": 1, "name": "a"}],
                       "keyframes": [{"frame": frame, "file": file or world.keyframe_file, "objects": list(objects)}]})


def links(kind, world, hostile):
    if kind == "MEMVOS_LINKED_OUTPUTS":  # written by the pack's own prompt hook
        return st.sampled_from([None, "", "mask", "label_map", "mask,label_map,mask_image", "bogus"])
    if hostile:
        return not_a()
    return st.sampled_from({"MEMVOS_MODEL": [world.model],
                            "MEMVOS_SESSION": [world.empty, world.annotated, world.propagated],
                            "MEMVOS_MASKS": [world.masks], "MEMVOS_SUGGESTIONS": [world.suggestions]}[kind])


def value_for(name, kind, options, world, hostile):
    if name == "weights":  # the local file, or one listed and deleted since (nothing is downloaded: no network)
        return st.sampled_from(["XMem.pth", "missing.pth"])
    if kind == "UNIQUE_ID":  # filled in by ComfyUI: the node's id in the prompt
        return st.sampled_from(["5", None])
    if isinstance(kind, (list, tuple)):  # ComfyUI refuses any other value before the node runs
        return st.sampled_from(list(kind))
    if kind == "INT":
        return ints(options, hostile)
    if kind == "FLOAT":
        return floats(options, hostile)
    if kind == "BOOLEAN":
        return st.booleans()
    if kind == "STRING":
        return texts(name, world, hostile)
    if kind in ("IMAGE", "MASK"):
        return tensors(world, kind, hostile)
    if "," in kind:  # the frames union
        return frames_inputs(world, hostile)
    return links(kind, world, hostile)


# ------------------------------------------------------------------ what a case must satisfy

def is_clear_error(exc):
    """One of the pack's own errors: a ValueError or an error class of the pack (WeightsError),
    raised by the pack's code (not by torch, PIL or numpy deep inside), in one line."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = isinstance(exc, ValueError) or type(exc).__module__.startswith(PACK.__name__)
    message = str(exc)
    return (ours and bool(frames) and frames[-1].filename.startswith(PACK_DIRS) and bool(message)
            and "\n" not in message)


def reference_size(inputs):
    frames = inputs.get("frames")
    if torch.is_tensor(frames) and frames.dim() == 4 and frames.shape[-1] in (3, 4):
        return tuple(frames.shape[1:3])
    if frames is not None and hasattr(frames, "frame_hw"):
        return tuple(frames.frame_hw)
    masks = inputs.get("masks")
    return tuple(masks.frame_hw) if isinstance(masks, MaskSet) else None


def check_outputs(node_id, inputs, result):
    size = reference_size(inputs)
    short_side = inputs.get("short_side")
    if size is not None and isinstance(short_side, int) and short_side > 0:
        size = scaled_size(size, short_side)
    for k, value in enumerate(result):
        if isinstance(value, MaskSet):
            part = value.chunk(0, min(2, value.num_frames), value.select(None))
            assert bool(torch.isfinite(part).all()), f"{node_id} output {k}: NaN in the masks"
            continue
        if not torch.is_tensor(value):
            continue
        if value.is_floating_point():
            assert bool(torch.isfinite(value).all()), f"{node_id} output {k}: NaN or infinity"
        if value.dim() >= 3 and size is not None:
            assert value.shape[0] >= 1 and tuple(value.shape[1:3]) == tuple(size), (
                f"{node_id} output {k} has shape {tuple(value.shape)}; the frames are {size}")


def run_case(node_id, inputs):
    cls = NODES[node_id]
    CASES[node_id] += 1
    try:
        returned = getattr(cls(), cls.FUNCTION)(**inputs)
    except Exception as exc:
        if is_clear_error(exc):
            return

        pytest.fail(f"{node_id}: {type(exc).__name__}: {exc}\n{''.join(traceback.format_tb(exc.__traceback__))}"
                    f"inputs: { {k: _shown(v) for k, v in inputs.items()} }")
    check_outputs(node_id, inputs, outputs_of(cls, returned))
    COMPLETED[node_id] += 1


def _shown(value):
    if torch.is_tensor(value):
        return f"tensor{tuple(value.shape)} {value.dtype}"
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


def draw_inputs(data, cls, world):
    spec = cls.INPUT_TYPES()
    entries = [(section, name, entry) for section in ("required", "optional", "hidden")
               for name, entry in spec.get(section, {}).items()]
    mode = data.draw(st.sampled_from(["sensible", "sensible", "one hostile", "hostile anywhere"]), label="mode")
    target = data.draw(st.sampled_from([name for _, name, _ in entries]), label="hostile input") \
        if mode == "one hostile" else None
    inputs = {}
    for section, name, entry in entries:
        if section == "optional" and data.draw(st.booleans(), label=f"{name} connected?"):
            continue
        kind = entry[0] if isinstance(entry, tuple) else entry
        options = entry[1] if isinstance(entry, tuple) and len(entry) > 1 else {}
        hostile = name == target or (mode == "hostile anywhere" and data.draw(st.booleans(), label=f"{name} hostile?"))
        inputs[name] = data.draw(value_for(name, kind, options, world, hostile), label=name)
    return inputs


def fuzz(node_id):
    @settings(max_examples=EXAMPLES[node_id], derandomize=True, database=None, deadline=None, print_blob=True,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def case(world, data):
        run_case(node_id, draw_inputs(data, NODES[node_id], world))
    return case


@pytest.mark.parametrize("node_id", sorted(EXAMPLES))
def test_fuzz_node(node_id, world):
    fuzz(node_id)(world)


def test_fuzz_covered_every_node_with_500_cases():
    """Runs after the fuzz tests (file order): every node fuzzed, at least 500 cases in all."""
    print("fuzz cases per node (returned outputs / all): " + ", ".join(
        f"{k.replace('MemVOS', '')} {COMPLETED[k]}/{n}" for k, n in sorted(CASES.items())))
    assert set(CASES) == set(NODES) == set(EXAMPLES)
    assert sum(CASES.values()) >= 500, CASES
