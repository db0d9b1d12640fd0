"""The Keyframes node: its files, its inputs and their precedence, API-mode runs, bad input, routes."""
import gc
import io
import json
import logging
import os

import numpy as np
import pytest
import torch
from PIL import Image

from pack_loader import pack_for_tests
from comfy_stand_ins import tiny_clip
from workflow_executor import Executor, NodeInfo, outputs_of

PACK = pack_for_tests()
NODES = PACK.NODE_CLASS_MAPPINGS
KEYFRAMES = NODES["MemVOSKeyframes"]
files = PACK.nodes.keyframe_files
routes = PACK.nodes.routes
davis_palette = PACK.memvos_core.media_io.palette.davis_palette
SMALL = 32
H, W = 24, 40


@pytest.fixture(scope="module")
def model(comfy):
    (loaded,) = outputs_of(NODES["MemVOSLoadModel"], NODES["MemVOSLoadModel"]().load("XMem.pth", "cpu", "auto"))
    return loaded


@pytest.fixture(scope="module")
def session(model):
    (made,) = outputs_of(NODES["MemVOSNewSession"], NODES["MemVOSNewSession"]().create(model, internal_size=SMALL))
    return made


@pytest.fixture(scope="module")
def clip():
    return tiny_clip()


def write_keyframe(comfy, name, labels):
    """An indexed keyframe PNG in the input folder, as the editor uploads it; returns its path there."""
    relative = f"memvos/{name}"
    path = os.path.join(comfy.dirs["input"], "memvos", name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(files.png_bytes(np.asarray(labels, dtype=np.uint8)))
    return relative


def spec(*keyframes, objects=None):
    """The widget's JSON: keyframes as (frame, file, [objects])."""
    return json.dumps({"format": "memvos-keyframes", "version": 1,
                       "objects": objects if objects is not None else [{"id": 1, "name": "orange"}, {"id": 2}],
                       "keyframes": [{"frame": f, "file": p, "objects": o} for f, p, o in keyframes]})


def labels_of(masks, frame):
    labels = np.zeros((H, W), np.uint8)
    for object_id, m in masks.items():
        labels[m[frame].numpy() > 0.5] = object_id
    return labels


def build(session, frames, keyframes="", **inputs):
    returned = KEYFRAMES().build(session, frames, keyframes, **inputs)
    (out,) = outputs_of(KEYFRAMES, returned)
    return out, returned["ui"]["memvos_keyframes"][0]


def counts(session):
    """``{frame: {object id: pixels}}`` of a session's keyframes."""
    result = {}
    for k in session.keyframes:
        ids, n = torch.unique(k.labels, return_counts=True)
        result[k.frame_index] = {int(i): int(c) for i, c in zip(ids, n) if int(i)}
    return result


def input_files(comfy):
    return sorted(os.path.relpath(os.path.join(d, f), comfy.dirs["input"])
                  for d, _, fs in os.walk(comfy.dirs["input"]) for f in fs)


# ------------------------------------------------------------------ the files

def test_keyframe_png_round_trip_is_exact_and_a_davis_annotation(tmp_path):
    labels = np.random.default_rng(0).integers(0, 256, (H, W)).astype(np.uint8)
    path = tmp_path / "k.png"
    path.write_bytes(files.png_bytes(labels))
    with Image.open(path) as img:
        assert img.mode == "P" and img.size == (W, H)
        assert img.getpalette()[:12] == davis_palette()[:4].flatten().tolist()
    assert np.array_equal(files.read_label_png(str(path), "k.png"), labels)


def test_spec_round_trip_and_defaults():
    text = spec((10, "memvos/b.png", [2, 1]), (0, "memvos/a.png", [1]),
                objects=[{"id": 1, "name": "car", "color": [255, 0, 0]}, {"id": 2}])
    parsed = files.parse_spec(text)
    assert [k.frame for k in parsed.keyframes] == [0, 10] and parsed.keyframes[1].objects == (1, 2)
    assert parsed.objects[0] == files.ObjectInfo(1, "car", (255, 0, 0)) and parsed.objects[1].color is None
    assert files.parse_spec(parsed.to_json()) == parsed
    assert files.parse_spec("") == files.parse_spec("  ") == files.KeyframeSpec()


def test_painted_keyframes_become_the_session_keyframes(comfy, session, clip):
    frames, masks = clip
    first = write_keyframe(comfy, "k0.png", labels_of(masks, 0))
    only_2 = np.where(labels_of(masks, 4) == 2, 2, 0)
    later = write_keyframe(comfy, "k4.png", only_2)
    before = frames.clone()
    out, ui = build(session, frames, spec((0, first, [1, 2]), (4, later, [1, 2])))
    assert [k.frame_index for k in out.keyframes] == [0, 4] and out.object_ids == (1, 2)
    assert np.array_equal(out.keyframe(0).labels.numpy(), labels_of(masks, 0))
    assert out.keyframe(4).object_ids == (1, 2) and not bool((out.keyframe(4).labels == 1).any()), \
        "object 1 listed without pixels = not visible on frame 4"
    assert torch.equal(out.keyframe(4).image, (frames[4] * 255).round().to(torch.uint8))
    assert torch.equal(frames, before) and session.keyframes == (), "inputs are never written"
    assert ui["num_frames"] == 6 and (ui["width"], ui["height"]) == (W, H)
    assert ui["keyframes"][1] == {"frame": 4, "objects": [1, 2], "sources": {"1": "painted", "2": "painted"}}


def test_no_keyframe_yet_passes_the_session_on_and_still_shows_the_shot(session, clip, caplog):
    frames, _ = clip
    with caplog.at_level(logging.WARNING, logger="memvos"):
        out, ui = build(session, frames, "")
    assert out is session and "no keyframe yet" in caplog.text
    assert ui["num_frames"] == 6 and ui["keyframes"] == [] and len(ui["token"]) == 24


# ------------------------------------------------------------------ inputs and precedence

def test_masks_and_label_maps_from_other_nodes(session, clip):
    frames, masks = clip
    batch = torch.stack([masks[1][0], masks[2][0], masks[1][3]])
    out, _ = build(session, frames, mask=batch, mask_frames="0, 0, 3", mask_object_ids="1, 2, 1")
    assert counts(out) == {0: {1: int(masks[1][0].sum()), 2: int(masks[2][0].sum())}, 3: {1: int(masks[1][3].sum())}}
    colours = davis_palette().float() / 255
    label_map = colours[torch.from_numpy(labels_of(masks, 5)).long()][None]
    out, ui = build(session, frames, label_map=label_map, label_map_frames="5")
    assert np.array_equal(out.keyframe(5).labels.numpy(), labels_of(masks, 5))
    assert ui["keyframes"] == [{"frame": 5, "objects": [1, 2], "sources": {"1": "label_map", "2": "label_map"}}]


def test_precedence_painted_over_mask_over_label_map_over_session(comfy, session, clip):
    """Per frame and object: a higher source replaces the object it annotates and takes the pixels it
    paints; objects it does not annotate keep what the lower sources gave them."""
    frames, _ = clip
    block = lambda x0, x1, value: np.pad(np.full((H, x1 - x0), value, np.uint8), ((0, 0), (x0, W - x1)))  # noqa: E731
    # session: object 4 on columns 0..8; label map: objects 3 (cols 4..12) and 2 (cols 30..40)
    (from_session,) = outputs_of(NODES["MemVOSAddAnnotation"], NODES["MemVOSAddAnnotation"]().add(
        session, frames, torch.from_numpy(block(0, 8, 1)).float(), 2, 4))
    colours = davis_palette().float() / 255
    label_map = colours[torch.from_numpy(np.maximum(block(4, 12, 3), block(30, 40, 2))).long()][None]
    # mask: object 2 on columns 10..20 (replaces the label map's object 2 entirely)
    mask = torch.from_numpy(block(10, 20, 1)).float()
    # painted: object 1 on columns 16..24, and object 3 listed without pixels (absent)
    painted = write_keyframe(comfy, "prec.png", block(16, 24, 1))
    elsewhere = write_keyframe(comfy, "prec5.png", block(0, 4, 3))
    out, ui = build(from_session, frames, spec((2, painted, [1, 3]), (5, elsewhere, [3])), mask=mask,
                    mask_frames="2", mask_object_ids="2", label_map=label_map, label_map_frames="2")
    row = out.keyframe(2).labels[0].tolist()
    # columns 4..8: the label map's object 3 took them from object 4, then the painting removed object 3
    assert row == [4] * 4 + [0] * 6 + [2] * 6 + [1] * 8 + [0] * 16
    assert out.keyframe(2).object_ids == (1, 2, 3, 4)
    assert ui["keyframes"][0]["sources"] == {"1": "painted", "2": "mask", "3": "painted", "4": "session"}


def test_masks_of_another_scale_are_resized_with_a_warning(comfy, session, clip, caplog):
    frames, masks = clip
    big = labels_of(masks, 0).repeat(2, 0).repeat(2, 1)
    painted = write_keyframe(comfy, "big.png", big)
    with caplog.at_level(logging.WARNING, logger="memvos"):
        out, _ = build(session, frames, spec((0, painted, [1, 2])), mask=masks[1][1][::2, ::2], mask_frames="1")
    assert "resized" in caplog.text and "keyframe file 'memvos/big.png'" in caplog.text
    assert np.array_equal(out.keyframe(0).labels.numpy(), labels_of(masks, 0))
    assert out.keyframe(1).labels.shape == (H, W)


# ------------------------------------------------------------------ API mode and the cache

def api_prompt(keyframes):
    """What the frontend would export (every widget value given), with our small internal size."""
    prompt = {
        "1": {"class_type": "MemVOSLoadModel", "inputs": {"weights": "XMem.pth", "device": "cpu", "precision": "auto"}},
        "2": {"class_type": "MemVOSNewSession", "inputs": {"model": ["1", 0], "internal_size": SMALL}},
        "3": {"class_type": "StubFrames", "inputs": {}},
        "4": {"class_type": "MemVOSKeyframes", "inputs": {"session": ["2", 0], "frames": ["3", 0],
                                                          "keyframes": keyframes}},
        "5": {"class_type": "MemVOSPropagate", "inputs": {"session": ["4", 0], "frames": ["3", 0],
                                                          "direction": "forward"}},
    }
    for node in prompt.values():
        if node["class_type"] in NODES:
            info = NodeInfo(node["class_type"], NODES)
            for name, kind, options in info.widgets:
                node["inputs"].setdefault(name, options.get("default", kind[0] if isinstance(kind, list) else None))
    return prompt


@pytest.fixture
def executor_nodes(clip):
    class StubFrames:
        CATEGORY, FUNCTION, RETURN_TYPES = "test", "get", ("IMAGE",)

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {}}

        def get(self):
            return (clip[0],)

    return {**NODES, "StubFrames": StubFrames}


def test_api_mode_runs_from_the_files_and_reruns_only_what_changed(comfy, clip, executor_nodes):
    frames, masks = clip
    painted = write_keyframe(comfy, "api0.png", labels_of(masks, 0))
    prompt = api_prompt(spec((0, painted, [1, 2])))
    cache = {}
    run = Executor(executor_nodes, cache)
    outputs, ui = run.run(prompt)
    _, mask_set, union, _ = outputs["5"]
    assert torch.equal(union[0] > 0.5, torch.from_numpy(labels_of(masks, 0) > 0)), "the keyframe comes back exactly"
    assert mask_set.object_ids == (1, 2) and ui["5"]["memvos_preview"][0]["masks_token"]
    again = Executor(executor_nodes, cache)
    again.run(prompt)
    assert again.executed == [], "nothing changed: everything from the cache"
    # The same name with other contents (replaced in input/) is a change: Keyframes and Propagate re-run.
    edited = labels_of(masks, 0)
    edited[:, W - 6:][edited[:, W - 6:] == 2] = 0
    assert 0 < (edited == 2).sum() < (labels_of(masks, 0) == 2).sum()
    write_keyframe(comfy, "api0.png", edited)
    changed = Executor(executor_nodes, cache)
    outputs, _ = changed.run(prompt)
    assert changed.executed == ["4", "5"]
    assert np.array_equal(outputs["4"][0].keyframe(0).labels.numpy(), edited)


# ------------------------------------------------------------------ bad input: one clear message, nothing written

def bad_cases(comfy, masks):
    good = write_keyframe(comfy, "good.png", labels_of(masks, 0))
    narrow = write_keyframe(comfy, "narrow.png", labels_of(masks, 0)[:, :20])
    stray = write_keyframe(comfy, "stray.png", np.where(labels_of(masks, 0) == 2, 7, labels_of(masks, 0)))
    os.makedirs(os.path.join(comfy.dirs["input"], "memvos"), exist_ok=True)
    with open(os.path.join(comfy.dirs["input"], "memvos", "broken.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n not really")
    Image.new("RGB", (W, H), (128, 0, 0)).save(os.path.join(comfy.dirs["input"], "memvos", "rgb.png"))
    obj1 = masks[1][0]
    return [
        (dict(keyframes="{nope"), "keyframes: not valid JSON"),
        (dict(keyframes=json.dumps({"format": "other"})), "not a MemVOS keyframe list"),
        (dict(keyframes=json.dumps({"format": "memvos-keyframes", "version": 7})), "version 7 is not supported"),
        (dict(keyframes=spec((0, good, [1, 2]), (0, good, [1]))), "frame 0 has two keyframes"),
        (dict(keyframes=spec((0, "../../etc/passwd.png", [1]))), "must be a relative path inside"),
        (dict(keyframes=spec((0, good, [0]))), r"object ids are 1..255"),
        (dict(keyframes=spec((0, good, [256]))), r"keyframes\[0\].objects is 256: object ids are 1..255"),
        (dict(keyframes=spec((0, good, [1, 2]), objects=[{"id": 300}])), r"objects\[0\].id is 300"),
        (dict(keyframes=spec((0, good, []))), "annotates no object"),
        (dict(keyframes=spec((6, good, [1, 2]))), r"painted on other footage .*frame 6 is past the shot's 6 frames\): press \"Drop keyframes"),
        (dict(keyframes=spec((0, "memvos/gone.png", [1]))), "keyframe file 'memvos/gone.png' is missing"),
        (dict(keyframes=spec((0, "memvos/broken.png", [1]))), "'memvos/broken.png' could not be read as a PNG"),
        (dict(keyframes=spec((0, "memvos/rgb.png", [1]))), "is a RGB image, not an indexed PNG"),
        (dict(keyframes=spec((0, narrow, [1]))), "painted on other footage .*: a different aspect ratio"),
        (dict(keyframes=spec((0, stray, [1, 2]))), r"has pixels of object\(s\) \[7\]"),
        (dict(keyframes=spec((0, write_keyframe(comfy, "blank.png", np.zeros((H, W))), [3]))),
         r"object\(s\) 3 \(painted\) have no pixels on any keyframe"),
        (dict(mask=torch.zeros(H, W), mask_frames="0"), r"mask 0 \(object 1, frame 0\) is empty"),
        (dict(mask=obj1, mask_frames="9"), r"mask_frames: frame 9 is past the shot"),
        (dict(mask=obj1, mask_object_ids="0"), r"mask_object_ids: object id 0 is outside 1..255"),
        (dict(mask=obj1, mask_object_ids="256"), r"object id 256 is outside 1..255"),
        (dict(mask=torch.stack([obj1, obj1]), mask_frames="0, 1, 2"), "lists 3 frames but the batch holds 2"),
        (dict(mask=torch.stack([obj1, obj1]), mask_frames="1"), "mask 0 and mask 1 are both object 1 on frame 1"),
        (dict(mask=obj1[:, :20]), "mask 0 is 20\u00d724 but the frame is 40\u00d724"),
        (dict(mask=obj1, mask_frames="one"), "mask_frames 'one' is not a list of whole numbers"),
        (dict(label_map=torch.zeros(1, H, W, 3)), r"label_map 0 \(frame 0\) is empty"),
        (dict(label_map=torch.full((1, H, W, 3), 0.3)), "are not DAVIS palette colours"),
        (dict(label_map=torch.zeros(1, H, 20, 3)), "a different aspect ratio"),
        (dict(label_map=torch.zeros(2, H, W, 3), label_map_frames="4, 4"), "names a frame twice"),
    ]


def test_every_bad_input_is_one_clear_error_and_writes_nothing(comfy, session, clip):
    frames, masks = clip
    cases = bad_cases(comfy, masks)
    before, frames_before = input_files(comfy), frames.clone()
    for inputs, message in cases:
        with pytest.raises(ValueError, match=message) as error:
            build(session, frames, **inputs)
        text = str(error.value)
        assert "\n" not in text and len(text) < 400, text
        assert "Traceback" not in text
    assert input_files(comfy) == before and torch.equal(frames, frames_before) and session.keyframes == ()


def test_a_session_of_another_size_is_refused(comfy, session, clip):
    frames, masks = clip
    (other,) = outputs_of(NODES["MemVOSAddAnnotation"], NODES["MemVOSAddAnnotation"]().add(
        session, frames[:, :12, :20], masks[1][0, :12, :20], 0, 1))
    with pytest.raises(ValueError, match="frames are 40\u00d724 but the session's keyframes are 20\u00d712"):
        build(other, frames, "")


# ------------------------------------------------------------------ routes for the editor

def _image(body):
    return np.asarray(Image.open(io.BytesIO(body)))


def test_routes_serve_source_frames_and_keyframe_labels_while_comfyui_holds_them(comfy, session, clip):
    frames, masks = clip
    painted = write_keyframe(comfy, "route.png", labels_of(masks, 2))
    frames_held = frames.clone()
    out, ui = build(session, frames_held, spec((2, painted, [1, 2])))
    token = ui["token"]
    status, kind, body = routes.frame_response({"token": token, "frame": "3"})
    assert (status, kind) == (200, "image/jpeg")
    error = np.abs(_image(body).astype(int) - (frames[3].numpy() * 255).round())
    assert error.shape == (H, W, 3) and error.mean() < 6, "source size, same picture (JPEG of a noisy frame)"
    other = np.abs(_image(body).astype(int) - (frames[2].numpy() * 255).round())
    assert other.mean() > error.mean() + 2, "and not another frame"
    status, kind, body = routes.labels_response({"token": token, "frame": "2"})
    assert (status, kind) == (200, "image/png") and np.array_equal(_image(body), labels_of(masks, 2))
    assert routes.labels_response({"token": token, "frame": "1"})[0] == 404, "no keyframe there"
    assert routes.frame_response({"token": token, "frame": "6"})[0] == 404
    assert routes.frame_response({"token": token, "frame": "x"})[0] == 400
    assert routes.frame_response({"token": "0" * 24, "frame": "0"})[0] == 404
    # ComfyUI's cache lets go of the outputs: the token answers 410 and nothing was kept alive.
    del out, frames_held
    gc.collect()
    status, _, body = routes.frame_response({"token": token, "frame": "0"})
    assert status == 410 and "run the workflow again" in json.loads(body)["error"]


def test_propagate_and_composite_hand_out_the_source_size_masks(comfy, session, clip):
    frames, masks = clip
    painted = write_keyframe(comfy, "prop.png", labels_of(masks, 0))
    keyed, _ = build(session, frames, spec((0, painted, [1, 2])))
    returned = NODES["MemVOSPropagate"]().propagate(keyed, frames, "forward", 0, -1, 0, 8.0)
    _, mask_set, _, _ = returned["result"]
    token = returned["ui"]["memvos_preview"][0]["masks_token"]
    for frame in (0, 4):
        status, _, body = routes.labels_response({"token": token, "frame": str(frame)})
        assert status == 200 and np.array_equal(_image(body), mask_set.labels(frame, frame + 1)[0].numpy())
    assert np.array_equal(_image(routes.labels_response({"token": token, "frame": "0"})[2]), labels_of(masks, 0))
    assert routes.frame_response({"token": token, "frame": "0"})[0] == 400, "masks tokens serve no frames"
    composite = NODES["MemVOSComposite"]().composite(frames, mask_set)
    token = composite["ui"]["memvos_preview"][0]["masks_token"]
    assert routes.labels_response({"token": token, "frame": "5"})[0] == 200


def test_validation_reports_a_broken_list_or_a_missing_file_before_the_run(comfy, clip):
    _, masks = clip
    good = write_keyframe(comfy, "valid.png", labels_of(masks, 0))
    assert KEYFRAMES.VALIDATE_INPUTS(spec((0, good, [1, 2]))) is True
    assert KEYFRAMES.VALIDATE_INPUTS("") is True and KEYFRAMES.VALIDATE_INPUTS(None) is True
    assert "missing from ComfyUI's input folder" in KEYFRAMES.VALIDATE_INPUTS(spec((0, "memvos/nowhere.png", [1])))
    assert "not valid JSON" in KEYFRAMES.VALIDATE_INPUTS("{")
