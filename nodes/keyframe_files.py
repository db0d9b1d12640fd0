"""What the Keyframes node stores: a small JSON keyframe list in the workflow, and one indexed PNG
per keyframe in ComfyUI's input folder. Pure Python (numpy, PIL); no ComfyUI import.

The node's ``keyframes`` widget holds (never pixels, so the workflow stays small):

    {"format": "memvos-keyframes", "version": 1,
     "objects":   [{"id": 1, "name": "car", "color": [128, 0, 0]}, ...],
     "keyframes": [{"frame": 12, "file": "memvos/keyframe_f000012_<hash>.png", "objects": [1, 2]}, ...]}

* ``frame``: clip frame (0 = the first frame connected to the node).
* ``file``: path relative to ComfyUI's input folder. The editor uploads into ``input/memvos/``
  through ComfyUI's ``/upload/image``; the name carries a hash of the labels, so an edit makes a
  new file and never rewrites one another workflow may use.
* the PNG: 8-bit palette ("P") image at the shot's size; a pixel's palette index is its object
  id (0 = background), the palette is DAVIS's (the file opens as a DAVIS annotation).
* ``objects`` of a keyframe: the objects it annotates. One listed but without pixels is
  annotated as not visible on that frame; unlisted objects are left to propagation there.
* ``objects`` at the top: id, optional name and display colour (RGB 0..255) for the editor;
  keyframes may use ids not listed there (they get the DAVIS colour of the id).
"""
import hashlib
import io
import json
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..memvos_core.media_io.json_input import JSONInputError, parse_json
from ..memvos_core.media_io.media import MediaError, label_image, open_image
from ..memvos_core.session.objects import MAX_OBJECT_ID

FORMAT = "memvos-keyframes"
VERSION = 1
SUBFOLDER = "memvos"
MAX_NAME = 100
WIDGET = "keyframes"


@dataclass(frozen=True)
class ObjectInfo:
    id: int
    name: str = ""
    color: tuple = None  # (r, g, b) 0..255, or None for the DAVIS colour


@dataclass(frozen=True)
class KeyframeEntry:
    frame: int
    file: str
    objects: tuple


@dataclass(frozen=True)
class KeyframeSpec:
    objects: tuple = ()
    keyframes: tuple = ()

    def to_json(self):
        objects = [{"id": o.id, **({"name": o.name} if o.name else {}),
                    **({"color": list(o.color)} if o.color is not None else {})} for o in self.objects]
        keyframes = [{"frame": k.frame, "file": k.file, "objects": list(k.objects)} for k in self.keyframes]
        return json.dumps({"format": FORMAT, "version": VERSION, "objects": objects, "keyframes": keyframes})


class KeyframeError(ValueError):
    """A broken keyframe list or file; the message names the input or file and the fix."""


def _fail(message):
    raise KeyframeError(f"{WIDGET}: {message}")


def _int(value, what, low, high):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _fail(f"{what} is {json.dumps(value)}: it must be a whole number in {low}..{high}")
    return value


def object_id(value, what):
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_OBJECT_ID:
        _fail(f"{what} is {json.dumps(value)}: object ids are 1..{MAX_OBJECT_ID} (0 is the background)")
    return value


def check_relative_file(path, what):
    """A path inside the input folder: relative, forward slashes, no '..', a .png."""
    if not isinstance(path, str) or not path.strip():
        _fail(f"{what} is {json.dumps(path)}: give the PNG's path inside ComfyUI's input folder, "
              "like 'memvos/keyframe_f000000.png'")
    clean = path.replace("\\", "/").strip()
    parts = clean.split("/")
    if clean.startswith("/") or ":" in parts[0] or ".." in parts or "" in parts or any(ord(c) < 32 for c in clean):
        _fail(f"{what} {path!r} must be a relative path inside ComfyUI's input folder (no '..', not absolute)")
    if not clean.lower().endswith(".png"):
        _fail(f"{what} {path!r} is not a .png: keyframes are indexed PNG files")
    return clean


def parse_spec(text):
    """The widget's JSON -> :class:`KeyframeSpec` (an empty text is an empty list)."""
    if text is None or not str(text).strip():
        return KeyframeSpec()
    try:
        data = parse_json(text, WIDGET)
    except JSONInputError as exc:
        _fail(f"not valid JSON ({exc.detail}): paint the keyframes in the node's editor, or write "
              f'{{"format": "{FORMAT}", "version": {VERSION}, "keyframes": [...]}}')
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        _fail(f'not a MemVOS keyframe list (it needs "format": "{FORMAT}")')
    if data.get("version") != VERSION:
        _fail(f"version {json.dumps(data.get('version'))} is not supported (this pack reads version "
              f"{VERSION}): update ComfyUI-MemVOS")
    objects, seen = [], set()
    for n, entry in enumerate(_list(data.get("objects", []), "objects")):
        if not isinstance(entry, dict):
            _fail(f"objects[{n}] is not an object like {{\"id\": 1}}")
        oid = object_id(entry.get("id"), f"objects[{n}].id")
        if oid in seen:
            _fail(f"object {oid} is listed twice in objects")
        seen.add(oid)
        name = entry.get("name", "")
        if not isinstance(name, str) or len(name) > MAX_NAME:
            _fail(f"objects[{n}].name must be a text of at most {MAX_NAME} characters")
        color = entry.get("color")
        if color is not None:
            if not isinstance(color, list) or len(color) != 3:
                _fail(f"objects[{n}].color must be [r, g, b] with 0..255 each")
            color = tuple(_int(c, f"objects[{n}].color", 0, 255) for c in color)
        objects.append(ObjectInfo(oid, name, color))
    keyframes, frames = [], set()
    for n, entry in enumerate(_list(data.get("keyframes", []), "keyframes")):
        if not isinstance(entry, dict):
            _fail(f"keyframes[{n}] is not an object like {{\"frame\": 0, \"file\": ..., \"objects\": [1]}}")
        frame = _int(entry.get("frame"), f"keyframes[{n}].frame", 0, 10_000_000)
        if frame in frames:
            _fail(f"frame {frame} has two keyframes: keep one per frame")
        frames.add(frame)
        file = check_relative_file(entry.get("file"), f"keyframes[{n}].file")
        ids = _list(entry.get("objects"), f"keyframes[{n}].objects")
        if not ids:
            _fail(f"keyframe of frame {frame} annotates no object: list its objects, or remove it")
        ids = tuple(sorted({object_id(o, f"keyframes[{n}].objects") for o in ids}))
        keyframes.append(KeyframeEntry(frame, file, ids))
    return KeyframeSpec(tuple(objects), tuple(sorted(keyframes, key=lambda k: k.frame)))


def _list(value, what):
    if not isinstance(value, list):
        _fail(f"{what} must be a list")
    return value


def resolve(input_dir, relative):
    return os.path.join(input_dir, *relative.split("/"))


def read_label_png(path, shown_name):
    """An indexed keyframe PNG -> uint8 ``[H,W]`` object ids; errors name ``shown_name``."""
    try:
        with open_image(path, "keyframe file") as img:
            img.load()
            mode = img.mode
            labels = np.array(img) if mode in ("P", "L") else None
    except FileNotFoundError:
        raise KeyframeError(f"keyframe file {shown_name!r} is missing from ComfyUI's input folder: copy it "
                            "back (with the workflow's other keyframe files), or paint that keyframe again") from None
    except MediaError as exc:
        raise KeyframeError(str(exc).replace(str(path), repr(shown_name))) from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise KeyframeError(f"keyframe file {shown_name!r} could not be read as a PNG ({exc}): "
                            "paint that keyframe again, or replace the file") from None
    if labels is None:
        raise KeyframeError(f"keyframe file {shown_name!r} is a {mode} image, not an indexed PNG "
                            "(pixel value = object id): save it as an 8-bit palette or greyscale PNG")
    return labels.astype(np.uint8)


def check_files(spec, input_dir):
    """Every file the list names is there (read later, when the node runs)."""
    for entry in spec.keyframes:
        if not os.path.isfile(resolve(input_dir, entry.file)):
            raise KeyframeError(f"keyframe file {entry.file!r} is missing from ComfyUI's input folder: copy it "
                                "back (with the workflow's other keyframe files), or paint that keyframe again")


def png_bytes(labels):
    """uint8 ``[H,W]`` object ids -> the bytes of an indexed PNG (DAVIS palette)."""
    buffer = io.BytesIO()
    label_image(labels).save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def fingerprint(text, input_dir):
    """What ComfyUI compares to decide whether the node must run again: the list and the bytes
    of every file it names (a file replaced under the same name counts as a change)."""
    digest = hashlib.sha256(str(text or "").encode())
    try:
        spec = parse_spec(text)
    except KeyframeError:
        return digest.hexdigest()  # the run reports the error
    for entry in spec.keyframes:
        path = resolve(input_dir, entry.file)
        digest.update(entry.file.encode())
        try:
            with open(path, "rb") as f:
                digest.update(hashlib.sha256(f.read()).digest())
        except OSError:
            digest.update(b"missing")
    return digest.hexdigest()
