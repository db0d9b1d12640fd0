"""Two read-only routes for the keyframe editor, and what they serve.

    GET /memvos/frame?token=T&frame=N   -> JPEG of clip frame N at the source size
    GET /memvos/labels?token=T&frame=N  -> indexed PNG of frame N's object ids at the source size

A node publishes what it already holds and puts the token in its UI output: the Keyframes node
its frames and its output session (the merged keyframes), Propagate and Composite their masks
(so "fix this frame" starts from the propagated mask). Tokens are random; nothing else of the
server is reachable through them.

What a token serves lives exactly as long as the node output it belongs to: the registry holds
that output (the Keyframes node's session, Propagate's masks) WEAKLY, so a token costs no memory
of its own and never keeps a long shot alive after ComfyUI's cache dropped it (a later run
replaced it, --cache-none, a restart); from then on the route answers 410 and the editor asks
for a run. What the output needs beside itself (the shot's frames, which the Keyframes node
only reads: a clip it opened over a VIDEO or Load Frames, or the RGB part of an RGBA batch) is
held STRONGLY until that output goes. Frames are decoded and encoded one at a time, on request.
"""
import io
import json
import secrets
import threading
import weakref

import numpy as np
from PIL import Image

from .frame_source import FrameClip, close_clip
from .keyframe_files import png_bytes

JPEG_QUALITY = 92  # with full-resolution colour (4:4:4): edges stay where they are for painting
MAX_ENTRIES = 64  # dead references are dropped anyway; this bounds the bookkeeping only
GONE = ("ComfyUI no longer holds these frames or masks (a later run replaced them, or its cache was "
        "emptied): run the workflow again")


class _Registry:
    def __init__(self):
        self._entries = {}  # token -> (kind, {name: weak reference}, {name: object held}, first frame, count)
        # reentrant: a weak reference's callback may run inside publish() when collecting frees an output
        self._lock = threading.RLock()

    def publish(self, kind, held, first_frame, num_frames, kept=None):
        """``held``: ``{name: node output}``, each referenced weakly; ``kept``: ``{name: object}``
        held strongly while every ``held`` object lives. Returns the new token."""
        token = secrets.token_hex(12)
        refs = {name: weakref.ref(value, lambda _ref, t=token: self._release(t)) for name, value in held.items()}
        with self._lock:
            self._entries = {t: e for t, e in self._entries.items() if all(r() is not None for r in e[1].values())}
            while len(self._entries) >= MAX_ENTRIES:
                self._entries.pop(next(iter(self._entries)))
            self._entries[token] = (kind, refs, dict(kept or {}), int(first_frame), int(num_frames))
        return token

    def _release(self, token):
        """A held output is gone: drop what was kept for it (the token answers 410 from now on)."""
        with self._lock:
            entry = self._entries.get(token)
            if entry is not None:
                self._entries[token] = (entry[0], entry[1], {}, entry[3], entry[4])

    def get(self, token):
        """``(kind, {name: object or None}, first, count)``; kind is None for an unknown token."""
        with self._lock:
            entry = self._entries.get(token)
        if entry is None:
            return None, {}, 0, 0
        kind, refs, kept, first, count = entry
        alive = {name: ref() for name, ref in refs.items()}
        if any(value is None for value in alive.values()):
            return kind, {name: None for name in refs}, first, count
        return kind, {**alive, **kept}, first, count

    def clear(self):
        with self._lock:
            self._entries.clear()


REGISTRY = _Registry()


def publish_shot(frames, session):
    """A Keyframes node's frames and its output session (whose keyframes are the merged ones); the
    token answers /memvos/frame and /memvos/labels while ComfyUI holds that session. ``frames``:
    an IMAGE batch (RGB) or a FrameClip (a VIDEO or Load Frames), kept until the session goes."""
    if isinstance(frames, FrameClip):
        frames = FrameClip(frames.source, frames.offset, frames.count)  # its own reader, opened per request
    return REGISTRY.publish("shot", {"session": session}, 0, frames.shape[0], kept={"frames": frames})


def publish_masks(masks):
    """Masks of a Propagate/Composite run (a MaskSet); the token answers /memvos/labels."""
    return REGISTRY.publish("masks", {"masks": masks}, masks.clip_start, masks.num_frames)


# ------------------------------------------------------------------ request handling (pure)

def _error(status, message):
    return status, "application/json", json.dumps({"error": message}).encode()


def _lookup(query, wanted):
    """``((kind, held, index), None)`` or ``(None, error response)``."""
    token, frame = str(query.get("token", "")), str(query.get("frame", ""))
    kind, held, first, count = REGISTRY.get(token)
    if kind is None:
        return None, _error(404, "unknown token (ComfyUI restarted since the run?): run the workflow again")
    if kind not in wanted:
        return None, _error(400, f"this token is for {kind}, not for this route")
    if any(value is None for value in held.values()):
        return None, _error(410, GONE)
    try:
        index = int(frame)
    except ValueError:
        return None, _error(400, f"frame {frame!r} is not a whole number")
    if not first <= index < first + count:
        return None, _error(404, f"frame {index} is outside frames {first}..{first + count - 1}")
    return (kind, held, index), None


def frame_response(query):
    """``(status, content type, body)`` for GET /memvos/frame."""
    found, error = _lookup(query, ("shot",))
    if error:
        return error
    _, held, index = found
    try:
        frame = held["frames"][index][..., :3].detach()
    except ValueError as exc:  # the file changed or went since the run
        return _error(410, str(exc))
    finally:
        close_clip(held["frames"])  # no decoder (nor its window of frames) left open between requests
    if frame.is_floating_point():
        frame = (frame.float().clamp(0, 1) * 255).round()
    buffer = io.BytesIO()
    Image.fromarray(frame.cpu().numpy().astype(np.uint8)).save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return 200, "image/jpeg", buffer.getvalue()


def labels_at(kind, held, index):
    """uint8 ``[H,W]`` object ids of clip frame ``index`` (None: a shot frame without keyframe)."""
    if kind == "shot":
        keyframe = held["session"].keyframe(index)
        return None if keyframe is None else keyframe.labels.cpu().numpy()
    masks = held["masks"]
    result = getattr(masks, "result", None)
    if result is not None:
        return result.labels(index).cpu().numpy()
    t = index - masks.clip_start
    return masks.labels(t, t + 1)[0].cpu().numpy()


def labels_response(query):
    """``(status, content type, body)`` for GET /memvos/labels."""
    found, error = _lookup(query, ("shot", "masks"))
    if error:
        return error
    labels = labels_at(*found)
    if labels is None:
        return _error(404, f"frame {found[2]} has no keyframe")
    return 200, "image/png", png_bytes(labels)


ROUTES = {"/memvos/frame": frame_response, "/memvos/labels": labels_response}
