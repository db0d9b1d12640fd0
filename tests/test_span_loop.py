"""The correction loop on the sources artists use, through the node executor: a Load Video shot
and a Load Frames shot go Keyframes -> Propagate; a frame is fixed as the editor fixes it (the
propagated mask and the frame read through /memvos/labels and /memvos/frame, answering 200, and a
new keyframe PNG written to input/memvos/ with the keyframes widget updated); queued again,
Propagate (rerun = span) runs only the span the fix affects, keeps the frames before it byte for
byte and hands the player the kept frames; the fixed frame is the fixed mask."""
import io
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from comfy_stand_ins import CLIP_NAME, MEDIA_DIR, tiny_clip
from pack_loader import pack_for_tests
from workflow_executor import Executor, NodeInfo

PACK = pack_for_tests()
NODES = PACK.NODE_CLASS_MAPPINGS
files = PACK.nodes.keyframe_files
routes = PACK.nodes.routes
preview = PACK.nodes.preview
KEYS, FIX = (0, 10), 13        # keyframes of the first run; the frame fixed afterwards
FRAMES = 16                     # both sources hold 16 frames
SPAN_WORK = (FRAMES - KEYS[-1]) + (FIX + 1 - KEYS[-1])  # forward 10..15, backward 13 down to 10


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny networks: one thread


def write_png(comfy, name, labels):
    """An indexed keyframe PNG in input/memvos/, as the editor uploads it; its name for the widget."""
    folder = os.path.join(comfy.dirs["input"], "memvos")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(files.png_bytes(np.asarray(labels, dtype=np.uint8)))
    return f"memvos/{name}"


def spec(keyframes):
    return json.dumps({"format": "memvos-keyframes", "version": 1, "objects": [{"id": 1}, {"id": 2}],
                       "keyframes": [{"frame": f, "file": p, "objects": [1, 2]} for f, p in keyframes]})


def prompt(source, keyframes):
    """Load Model -> New Session -> Keyframes -> Propagate on ``source`` (node "3"), every widget set."""
    out = {
        "1": {"class_type": "MemVOSLoadModel", "inputs": {"weights": "XMem.pth", "device": "cpu", "precision": "fp32"}},
        "2": {"class_type": "MemVOSNewSession", "inputs": {"model": ["1", 0], "internal_size": 32}},
        "3": source,
        "4": {"class_type": "MemVOSKeyframes", "inputs": {"session": ["2", 0], "frames": ["3", 0],
                                                          "keyframes": spec(keyframes)}},
        "5": {"class_type": "MemVOSPropagate", "inputs": {"session": ["4", 0], "frames": ["3", 0]}},
    }
    for node in out.values():
        if node["class_type"] in NODES:
            for name, kind, options in NodeInfo(node["class_type"], NODES).widgets:
                node["inputs"].setdefault(name, options.get("default", kind[0] if isinstance(kind, list) else None))
    return out


def route(handler, token, frame):
    status, kind, body = handler({"token": token, "frame": str(frame)})
    assert status == 200, (status, body[:200])  # not 410: the shot is held while its outputs are cached
    return np.asarray(Image.open(io.BytesIO(body)))


def fixed(labels):
    """The artist's fix: object 1 moved three pixels right (over the background only)."""
    out = labels.copy()
    one = out == 1
    out[one] = 0
    moved = np.roll(one, 3, axis=1) & (out == 0)
    out[moved] = 1
    return out


def the_loop(comfy, source, first_keys, hw):
    cache, instances = {}, {}
    keys = [(f, write_png(comfy, f"{source['class_type']}_{f}.png", labels)) for f, labels in first_keys]
    run = Executor(NODES, cache, instances)
    outputs, ui = run.run(prompt(source, keys))
    before = outputs["5"][1].result
    # the player's "fix this frame": the propagated mask and the frame, through the editor's routes
    propagated = route(routes.labels_response, ui["5"]["memvos_preview"][0]["masks_token"], FIX)
    frame = route(routes.frame_response, ui["4"]["memvos_keyframes"][0]["token"], FIX)
    assert propagated.shape == hw and frame.shape == (*hw, 3)
    correction = fixed(propagated)
    assert (correction != propagated).any()
    keys.append((FIX, write_png(comfy, f"{source['class_type']}_fix{FIX}.png", correction)))
    comfy.progress.clear()
    again = Executor(NODES, cache, instances)
    outputs, ui = again.run(prompt(source, keys))
    assert again.executed == ["4", "5"], "only Keyframes and Propagate run again"
    after = outputs["5"][1].result
    totals = {total for _, total in comfy.progress}
    assert (SPAN_WORK, SPAN_WORK) in comfy.progress, comfy.progress       # the span's frames of work
    assert (FRAMES - KEYS[0]) + (KEYS[-1] + 1) not in totals               # not the whole shot's
    for t in range(KEYS[-1]):
        assert np.array_equal(after.internal(t).numpy(), before.internal(t).numpy()), t  # kept, byte for byte
    assert np.array_equal(after.labels(FIX).numpy(), correction)          # the fix is the mask there
    assert not np.array_equal(after.internal(FIX).numpy(), before.internal(FIX).numpy())
    manifest = preview.read_manifest(comfy.dirs["temp"], ui["5"]["memvos_preview"][0])
    assert manifest["stale"] == [{"frame": 0, "count": KEYS[-1]}]           # the player marks the kept frames
    # the fixed frame reads back through the route as the new mask
    assert np.array_equal(route(routes.labels_response, ui["5"]["memvos_preview"][0]["masks_token"], FIX), correction)


def test_video_source_load_video_fix_a_frame_reruns_only_the_span(comfy):
    masks = os.path.join(MEDIA_DIR, "cli_masks")
    first = [(f, np.asarray(Image.open(os.path.join(masks, f"{f:05d}.png")))) for f in KEYS]
    the_loop(comfy, {"class_type": "LoadVideo", "inputs": {"file": CLIP_NAME}}, first, (108, 186))


def test_video_source_load_frames_fix_a_frame_reruns_only_the_span(comfy):
    frames, masks = tiny_clip(num_frames=FRAMES)
    folder = os.path.join(comfy.dirs["input"], "loop_shot")
    os.makedirs(folder, exist_ok=True)
    for t, frame in enumerate(frames):
        Image.fromarray((frame.numpy() * 255).round().astype(np.uint8)).save(os.path.join(folder, f"{t:05d}.png"))
    labels = np.zeros((FRAMES, *frames.shape[1:3]), np.uint8)
    for object_id, m in masks.items():
        labels[m.numpy() > 0.5] = object_id
    first = [(f, labels[f]) for f in KEYS]
    the_loop(comfy, {"class_type": "MemVOSLoadFrames", "inputs": {"path": "loop_shot", "fps": 12.0}}, first,
             tuple(frames.shape[1:3]))
