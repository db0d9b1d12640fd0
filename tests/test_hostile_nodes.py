"""Hostile and unlucky inputs inside ComfyUI (issue 19): node paths stay inside the input folder,
the editor's routes for every frames source, saving to a bad disk, NaN, deep JSON, bad prompts."""
import errno
import gc
import io
import json
import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

from comfy_stand_ins import CLIP_HW, MEDIA_DIR, CLIP_NAME, StandInVideoFile, tiny_clip
from pack_loader import pack_for_tests
from workflow_executor import outputs_of

PACK = pack_for_tests()
NODES = PACK.NODE_CLASS_MAPPINGS
routes = PACK.nodes.routes
storage = PACK.memvos_core.session.storage
linked_outputs = PACK.nodes.linked_outputs
SMALL = 32


def run(node_id, method, *args, **kwargs):
    cls = NODES[node_id]
    return outputs_of(cls, getattr(cls(), method)(*args, **kwargs))


@pytest.fixture(scope="module")
def session(comfy):
    (model,) = run("MemVOSLoadModel", "load", "XMem.pth", "cpu", "auto")
    (made,) = run("MemVOSNewSession", "create", model, internal_size=SMALL)
    return model, made


def write_frames(folder, frames):
    os.makedirs(folder, exist_ok=True)
    for t, frame in enumerate(frames):
        Image.fromarray((frame.numpy() * 255).round().astype(np.uint8)).save(os.path.join(folder, f"{t:05d}.png"))
    return folder


# ------------------------------------------------------------------ 2. node paths stay inside input/

def test_2_load_frames_reads_only_inside_the_input_folder(comfy, tmp_path):
    frames, _ = tiny_clip(3)
    outside = write_frames(str(tmp_path / "private"), frames)
    messages = []
    for path in (outside, str(tmp_path / "does_not_exist"), str(tmp_path / "private" / "00000.png"), "/etc/passwd"):
        with pytest.raises(ValueError) as caught:
            run("MemVOSLoadFrames", "load", path, 24.0)
        messages.append(str(caught.value).replace(path, "<path>"))
    assert len(set(messages)) == 1, "the same words whether the path exists, is a file or a folder"
    assert "outside ComfyUI's input folder" in messages[0] and "\n" not in messages[0], messages[0]
    for sneaky in ("../private", "shots/../../private", "..\\private"):
        with pytest.raises(ValueError, match="no '..'"):
            run("MemVOSLoadFrames", "load", sneaky, 24.0)
    inside = write_frames(os.path.join(comfy.dirs["input"], "shot"), frames)
    assert run("MemVOSLoadFrames", "load", "shot", 24.0)[1] == 3
    assert run("MemVOSLoadFrames", "load", inside, 24.0)[1] == 3, "an absolute path inside input/ is fine"


def test_2_folders_listed_for_the_pack_are_readable(comfy, tmp_path, monkeypatch):
    frames, _ = tiny_clip(2)
    library = write_frames(str(tmp_path / "library" / "shot_a"), frames)
    yaml_listed = write_frames(str(tmp_path / "yaml_listed" / "shot_b"), frames)
    monkeypatch.setenv("MEMVOS_INPUT_DIRS", str(tmp_path / "library"))
    assert run("MemVOSLoadFrames", "load", library, 24.0)[1] == 2
    assert run("MemVOSLoadFrames", "load", "shot_a", 24.0)[1] == 2, "relative names are looked up there too"
    folder_paths = comfy.modules["folder_paths"]
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "memvos_inputs", ([str(tmp_path / "yaml_listed")], set()))
    assert run("MemVOSLoadFrames", "load", yaml_listed, 24.0)[1] == 2
    monkeypatch.delenv("MEMVOS_INPUT_DIRS")
    with pytest.raises(ValueError, match="outside ComfyUI's input folder"):
        run("MemVOSLoadFrames", "load", library, 24.0)


def test_2_load_session_reads_no_file_outside_the_comfyui_folders(comfy, session, tmp_path):
    model, made = session
    secret = tmp_path / "secret.session.safetensors"
    made.save(secret)
    with pytest.raises(ValueError, match="outside ComfyUI's input folder") as caught:
        run("MemVOSLoadSession", "load", model, str(secret))
    assert str(tmp_path / "missing.safetensors") not in str(caught.value)


# ------------------------------------------------------------------ 3. routes for every frames source

def _sources(comfy):
    """Every frames input the Keyframes node takes, as ``(name, frames input, height, width)``."""
    frames, _ = tiny_clip(4)
    rgba = torch.cat([frames, torch.ones(*frames.shape[:3], 1)], -1)
    write_frames(os.path.join(comfy.dirs["input"], "route_shot"), frames)
    (loaded, _, _) = run("MemVOSLoadFrames", "load", "route_shot", 12.0)
    video = StandInVideoFile(os.path.join(MEDIA_DIR, CLIP_NAME))
    h, w = frames.shape[1:3]
    return [("IMAGE", frames.clone(), h, w), ("RGBA IMAGE", rgba, h, w), ("Load Frames", loaded, h, w),
            ("Load Video", video, *CLIP_HW)]


def _image(body):
    return np.asarray(Image.open(io.BytesIO(body)))


def test_3_routes_serve_every_frames_source_while_the_output_is_cached(comfy, session):
    _, made = session
    for name, frames, h, w in _sources(comfy):
        mask = torch.zeros(1, h, w)
        mask[0, 2:10, 3:12] = 1
        returned = NODES["MemVOSKeyframes"]().build(made, frames, "", mask=mask, mask_frames="1", mask_object_ids="3")
        (out,) = outputs_of(NODES["MemVOSKeyframes"], returned)
        token = returned["ui"]["memvos_keyframes"][0]["token"]
        del returned
        gc.collect()  # whatever the node made inside build() is gone; only its output (out) is held
        status, kind, body = routes.frame_response({"token": token, "frame": "1"})
        assert (status, kind) == (200, "image/jpeg"), (name, body[:200])
        assert _image(body).shape == (h, w, 3), name
        status, _, body = routes.labels_response({"token": token, "frame": "1"})
        assert status == 200 and int(_image(body)[5, 5]) == 3, name
        for query, expected in ((dict(token="../../etc/passwd", frame="0"), 404),
                                (dict(token=token + "/../x", frame="0"), 404),
                                (dict(token=token, frame="../../etc/passwd"), 400),
                                (dict(token=token, frame="1e3"), 400),
                                (dict(token=token, frame="-1"), 404),
                                (dict(token=token, frame=str(10 ** 30)), 404),
                                (dict(token="", frame="0"), 404),
                                (dict(frame="0"), 404)):
            for route in (routes.frame_response, routes.labels_response):
                status, kind, body = route(query)
                assert status == expected and kind == "application/json", (name, query, status)
                assert json.loads(body)["error"] and "Traceback" not in body.decode(), (name, query)
        # ComfyUI drops the node's output: the token is dead, and the frames it kept are freed.
        del out
        gc.collect()
        for route in (routes.frame_response, routes.labels_response):
            status, _, body = route({"token": token, "frame": "1"})
            assert status == 410 and "run the workflow again" in json.loads(body)["error"], name
        assert routes.REGISTRY._entries[token][2] == {}, f"{name}: the frames were kept after the session went"


# ------------------------------------------------------------------ 6. Save Session to a bad disk

def test_6_save_session_node_on_a_bad_disk_is_one_line(comfy, session, monkeypatch):
    _, made = session
    prefix = "memvos/" + "s" * 300
    with pytest.raises(ValueError) as caught:
        run("MemVOSSaveSession", "save", made, prefix)
    message = str(caught.value)
    assert message.startswith(f"filename_prefix {prefix!r}: could not write") and "too long" in message, message
    assert "\n" not in message

    def read_only(tensors, path, metadata=None):
        raise OSError(errno.EROFS, "Read-only file system", path)
    monkeypatch.setattr(storage, "save_file", read_only)
    with pytest.raises(ValueError, match=r"^filename_prefix 'ro/session': could not write .*Read-only file system"):
        run("MemVOSSaveSession", "save", made, "ro/session")
    leftovers = [n for _, _, names in os.walk(comfy.dirs["output"]) for n in names if n.endswith(".part")]
    assert leftovers == []


# ------------------------------------------------------------------ 8. NaN, deep JSON, bad prompts

def test_8_load_frames_refuses_a_frame_rate_that_is_not_a_number(comfy):
    write_frames(os.path.join(comfy.dirs["input"], "fps_shot"), tiny_clip(2)[0])
    for fps in (math.nan, math.inf, -1.0, 0.0):
        with pytest.raises(ValueError, match=r"^fps .*0\.1\.\.1000"):
            run("MemVOSLoadFrames", "load", "fps_shot", fps)


def test_8_get_frames_refuses_nan_frames(comfy):
    frames, _ = tiny_clip(3)
    frames[1, 4, 4, 0] = math.nan
    with pytest.raises(ValueError, match=r"frames holds NaN or infinite values \(first in frame 1\)"):
        run("MemVOSGetFrames", "get", frames, 0, 3, 0)


def test_8_linked_numbers_outside_the_declared_range_are_one_line(comfy):
    frames, _ = tiny_clip(2)
    for value, words in ((math.inf, "is inf: give a number in 0.0..256.0"), (math.nan, "is nan"),
                         (1e308, r"1e\+308 is outside 0.0..256.0"), ("2", "is '2', not a number")):
        with pytest.raises(ValueError, match=f"^feather_px {words}"):
            NODES["MemVOSRefine"]().refine(None, feather_px=value)
    with pytest.raises(ValueError, match=r"^short_side 10000000000 is outside 0\.\.16384: give a whole number"):
        run("MemVOSGetFrames", "get", frames, 0, 2, 10 ** 10)
    with pytest.raises(ValueError, match=r"^start_frame is 1\.5, not a whole number"):
        run("MemVOSGetFrames", "get", frames, 1.5, 2, 0)


def test_5_a_short_side_over_the_pixel_limit_is_refused_before_anything_is_made(comfy):
    frames, _ = tiny_clip(2)
    with pytest.raises(ValueError, match=r"^short_side 16384 makes frames of 27306x16384 .* over the limit of "
                                         r"134,217,728 pixels: choose a smaller short_side"):
        run("MemVOSGetFrames", "get", frames, 0, 2, 16384)


def test_8_deeply_nested_keyframes_widget_is_one_line(comfy, session, tmp_path):
    _, made = session
    deep = "[" * 5000 + "]" * 5000
    assert "nested too deeply" in NODES["MemVOSKeyframes"].VALIDATE_INPUTS(deep)
    with pytest.raises(ValueError, match="keyframes: not valid JSON .*nested too deeply"):
        NODES["MemVOSKeyframes"]().build(made, tiny_clip(2)[0], deep)


@pytest.mark.parametrize("body", [
    {"prompt": {"1": "not a node"}}, {"prompt": {"1": {"class_type": "MemVOSGetMasks", "inputs": ["x"]}}},
    {"prompt": {"1": {"class_type": ["MemVOSGetMasks"], "inputs": {}}}}, {"prompt": {"1": None, "2": 5}},
    {"prompt": {"1": {"class_type": "MemVOSGetMasks", "inputs": {"masks": ["2", 0]}},
                "2": {"class_type": "MemVOSGetMasks", "inputs": None}}},
    {"prompt": []}, [], "text", None,
])
def test_8_malformed_prompt_bodies_pass_the_hook(body):
    # the server logs a traceback for every exception of a handler; ComfyUI's validation refuses the body
    assert linked_outputs.on_prompt(body, NODES) is body
