"""Two read-only routes for the keyframe editor, and what they serve.

    GET /memvos/frame?token=T&frame=N   -> JPEG of clip frame N at the source size
    GET /memvos/labels?token=T&frame=N  -> indexed PNG of frame N's object ids at the source size

A node publishes what it already holds and puts the token in its UI output: the Keyframes node
its frames and its output session (the merged keyframes), Propagate and Composite their masks
(so "fix this frame" starts from the propagated mask). Tokens are random; nothing else of the
server is reachable through them.

The registry keeps only WEAK references: a token answers while ComfyUI's cache still holds those
node outputs, and costs no memory of its own (the editor never keeps a long shot alive). Once the
cache has dropped them (a later run replaced them, --cache-none, a restart) the route answers
410/404 and the editor asks for a run. Frames are encoded one at a time, on request.
"""
import io
import json
import secrets
import threading
import weakref

import numpy as np
from PIL import Image

from .keyframe_files import png_bytes

JPEG_QUALITY = 92  # with full-resolution colour (4:4:4): edges stay where they are for painting
MAX_ENTRIES = 64  # dead references are dropped anyway; this bounds the bookkeeping only
GONE = ("ComfyUI no longer holds these frames or masks (a later run replaced them, or its cache was "
        "emptied): run the workflow again")


class _Registry:
    def __init__(self):
        self._entries = {}  # token -> (kind, {name: weak reference}, first clip frame, frame count)
        self._lock = threading.Lock()  # nodes publish from the execution thread, routes read on the loop

    def publish(self, kind, held, first_frame, num_frames):
        """``held``: ``{name: object}``, each referenced weakly. Returns the new token."""
        token = secrets.token_hex(12)
        refs = {name: weakref.ref(value) for name, value in held.items()}
        with self._lock:
            self._entries = {t: e for t, e in self._entries.items() if all(r() is not None for r in e[1].values())}
            while len(self._entries) >= MAX_ENTRIES:
                self._entries.pop(next(iter(self._entries)))
            self._entries[token] = (kind, refs, int(first_frame), int(num_frames))
        return token

    def get(self, token):
        """``(kind, {name: object or None}, first, count)``; kind is None for an unknown token."""
        with self._lock:
            entry = self._entries.get(token)
        if entry is None:
            return None, {}, 0, 0
        kind, refs, first, count = entry
        return kind, {name: ref() for name, ref in refs.items()}, first, count

    def clear(self):
        with self._lock:
            self._entries.clear()


REGISTRY = _Registry()


def publish_shot(frames, session):
    """A Keyframes node's frames (the IMAGE batch it was given) and its output session (whose
    keyframes are the merged ones); the token answers /memvos/frame and /memvos/labels."""
    return REGISTRY.publish("shot", {"frames": frames, "session": session}, 0, frames.shape[0])


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
    frame = held["frames"][index][..., :3].detach()
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
