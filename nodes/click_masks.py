"""Click to mask in the pack: which SAM 2.1 network answers, on ComfyUI's compute device, and the
editor's route.

    GET /memvos/click?token=T&frame=N&prompt={"points": [[x, y, 1]], "box": [x0, y0, x1, y1]}
        -> JSON {"masks": [PNG base64, ...], "scores": [...], "best": i, "weights": name,
                 "width": W, "height": H}
    GET /memvos/click?token=T&frame=N&prepare=1
        -> JSON {"ready": true, "weights": name, "width": W, "height": H}

The token is a Keyframes node's shot token (the one /memvos/frame serves). A lone click gives three
candidates (whole, part, subpart) for the editor to offer; more clicks or a box give one. The
network is the session's model when it is SAM 2.1, else any SAM 2.1 file in models/memvos, so
clicks work whichever family propagates. Frame embeddings are cached per shot token and frame.
The embedding is the slow part of a click (seconds on a CPU, the decoder is a fraction of a
second), so the editor asks for it with ``prepare`` when the click tool meets a frame, before the
artist's first click there; a click that comes while it is computed waits for it, never computes
it twice.
"""
import base64
import io
import json

import numpy as np
from PIL import Image

from . import comfy_env
from .routes import _error, _lookup
from ..memvos_core.families import get as family
from ..memvos_core.ops.click import (PromptError, no_weights_message, parse_prompt_list, pick_weights, segmenter_for_file,
                                     segmenter_for_network)


class NoClickWeights(ValueError):
    pass


def click_segmenter(session=None):
    """``(ClickSegmenter, weights name)``: the session's model when its family has an image path
    (SAM 2.1), else such a file from the model folders loaded on ComfyUI's device. Raises NoClickWeights (one line: how to get them)."""
    model = getattr(session, "model", None)
    if model is not None and family(model.family).prompts is not None:
        from .model_nodes import ready_network
        return segmenter_for_network(ready_network(model)), model.name
    from ..memvos_core.weights import find_weights
    name = pick_weights(comfy_env.list_model_files())
    if name is None:
        raise NoClickWeights(no_weights_message())
    path = find_weights(name, comfy_env.model_dirs())
    if path is None:
        raise NoClickWeights(no_weights_message())
    return segmenter_for_file(path, comfy_env.get_torch_device()), name


def frame_pixels(frames, index):
    """Frame ``index`` of an IMAGE batch (or a FrameClip) as ``[3,H,W]`` float in [0,1]."""
    frame = frames[index][..., :3].detach().float().clamp(0, 1)
    return frame.permute(2, 0, 1)


def prompt_layer(widget, feed, frames, session, frame_hw):
    """The Keyframes node's ``prompts`` widget and ``prompts_input`` as a keyframe layer
    ``{frame: (labels, object ids)}``: each (frame, object)'s mask as the click route gives it for
    the same prompt (its best candidate). Empty when neither holds a prompt (no weights needed)."""
    prompts = parse_prompt_list(widget, "prompts")
    fed = parse_prompt_list(feed if feed is not None else "", "prompts_input")
    both = sorted(set(prompts) & set(fed))
    if both:
        frame, obj = both[0]
        raise PromptError(f"object {obj} on frame {frame} has prompts in both the prompts widget and prompts_input: "
                          "give each (frame, object) in one of them")
    prompts.update(fed)
    if not prompts:
        return {}
    num_frames = frames.shape[0]
    late = sorted(f for f, _ in prompts if f >= num_frames)
    if late:
        raise PromptError(f"prompts: frame {late[0]} is past the shot ({num_frames} frames: 0..{num_frames - 1}): "
                          "use the frame numbers of the frames connected to this node")
    segmenter, _ = click_segmenter(session)
    layer = {}
    for frame in sorted({f for f, _ in prompts}):
        objects = {o: p for (f, o), p in prompts.items() if f == frame}
        key = ("keyframes-node", id(frames), frame)  # only while this run holds the frames
        try:
            labels = segmenter.labels(key, lambda frame=frame: frame_pixels(frames, frame), objects, frame_hw)
        except PromptError as exc:
            raise PromptError(f"prompts, frame {frame}: {exc}") from None
        finally:
            segmenter.forget(key)
        layer[frame] = (labels, set(objects))
    return layer


def _png(mask):
    buffer = io.BytesIO()
    Image.fromarray(mask.numpy().astype(np.uint8) * 255).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def click_response(query):
    """``(status, content type, body)`` for GET /memvos/click."""
    found, error = _lookup(query, ("shot",))
    if error:
        return error
    _, held, index = found
    prepare = bool(query.get("prepare"))
    if not prepare:
        try:
            prompt = json.loads(str(query.get("prompt", "")))
        except (json.JSONDecodeError, RecursionError):
            return _error(400, 'prompt is not JSON: send {"points": [[x, y, 1]], "box": [x0, y0, x1, y1]}')
    try:
        segmenter, name = click_segmenter(held["session"])
    except NoClickWeights as exc:
        return _error(409, str(exc))
    frames = held["frames"]
    if prepare:
        height, width = segmenter.embedding((query.get("token"), index), lambda: frame_pixels(frames, index)).frame_hw
        body = {"ready": True, "weights": name, "width": int(width), "height": int(height)}
        return 200, "application/json", json.dumps(body).encode()
    try:
        masks, scores, best = segmenter.candidates((query.get("token"), index), lambda: frame_pixels(frames, index),
                                                   prompt)
    except PromptError as exc:
        return _error(400, str(exc))
    body = {"masks": [_png(m) for m in masks], "scores": [round(float(s), 4) for s in scores], "best": best,
            "weights": name, "width": int(masks.shape[-1]), "height": int(masks.shape[-2])}
    return 200, "application/json", json.dumps(body).encode()


ROUTES = {"/memvos/click": click_response}
