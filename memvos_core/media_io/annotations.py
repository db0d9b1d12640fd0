"""Annotation masks from files: which file belongs to which frame, and which pixel to which object.

How a mask file becomes object ids (the same rules for every mask of a shot):

* **Indexed (palette) PNG**: the index is the object id (0 = background); 255, DAVIS's "void",
  is refused.
* **Black-and-white** (greyscale, or RGB whose colours are all greys): one object, id 1: the
  pixels of value 128 or more (of 255; 32768 in 16-bit files that go above 255). A file that
  holds only 0 and 1 (a saved boolean array) has 1 as the object.
* **Colour** (RGB/RGBA): black is background, and so is every pixel whose alpha is below 128;
  each other colour is one object. A colour of the DAVIS palette gets its palette index (so an
  RGB rendering of a DAVIS annotation keeps its ids); any other colour gets the smallest id not
  yet used by the shot's masks, in order of first appearance: masks in frame order, pixels in
  reading order (top to bottom, left to right). Colours must be flat: anti-aliased edges (blends
  of two colours, with no solid area of their own) are refused, as are more than
  ``MAX_OBJECT_ID - 1`` objects.
* **JPEG** (``.jpg``/``.jpeg``): black-and-white only, with the same threshold (128); JPEG
  blurs colours, so a colour JPEG is refused: save it as PNG.

PNG, BMP and TIFF files are read; other image files in the mask folder are refused by name, and
files that are not images (notes, ``.DS_Store``) are ignored.
"""
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .media import IMAGE_EXTENSIONS, MediaError, open_image
from .palette import _DAVIS
from ..session.objects import MAX_OBJECT_ID

LOSSLESS_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff")
LOSSY_EXTENSIONS = (".jpg", ".jpeg")
MASK_EXTENSIONS = LOSSLESS_EXTENSIONS + LOSSY_EXTENSIONS
VOID_INDEX = 255
OPAQUE_ALPHA = 128  # alpha below this is background
GREY_THRESHOLD = 128  # of 255: a black-and-white mask's object is >= this
JPEG_GREY_SPREAD = 32  # a JPEG whose channels differ by no more than this is black-and-white
BLEND_TOLERANCE = 6.0  # RGB distance from the line between two colours that still counts as a blend
_DAVIS_INDEX = {(r << 16) | (g << 8) | b: i for i, (r, g, b) in enumerate(_DAVIS) if 0 < i < VOID_INDEX}
_DAVIS_VOID = (lambda c: (c[0] << 16) | (c[1] << 8) | c[2])(_DAVIS[VOID_INDEX])


class AnnotationError(MediaError):
    """A mask file that cannot be used as it is; the message names the file and the fix."""


def hex_colour(packed):
    return f"#{int(packed):06x}"


@dataclass(frozen=True, eq=False)
class MaskFile:
    """One decoded mask file. ``kind``: "indexed" (``pixels`` = object ids), "grey" (``pixels`` =
    1 on the object) or "colour" (``pixels`` = 1 + position in ``colours``, 0 = background);
    ``colours``: packed ``0xRRGGBB`` values in order of first appearance."""

    path: Path
    kind: str
    pixels: np.ndarray  # uint8 [H, W]
    colours: tuple = ()

    @property
    def size(self):
        return tuple(self.pixels.shape)


# ----------------------------------------------------------------------------- one file

def load_mask(path):
    """Decode a mask file into a :class:`MaskFile`, or raise :class:`AnnotationError`."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MASK_EXTENSIONS:
        raise AnnotationError(f"mask {path.name}: {suffix or 'no extension'} is not a mask format; save it as "
                              "PNG (indexed, black-and-white or flat colours)")
    try:
        with open_image(path, "mask") as img:
            img.load()
            return _decode(path, img, lossy=suffix in LOSSY_EXTENSIONS)
    except MediaError as exc:
        raise AnnotationError(str(exc)) from None
    except OSError as exc:
        raise AnnotationError(f"mask {path} could not be read ({exc}): save it again as PNG") from None


def _decode(path, img, lossy):
    if img.mode == "P" and not lossy:
        return MaskFile(path, "indexed", np.array(img, dtype=np.uint8))
    if img.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"):
        return MaskFile(path, "grey", _grey_object(img))
    rgba = np.array(img.convert("RGBA"))
    rgb = rgba[..., :3].astype(np.int32)
    if lossy:
        spread = int((rgb.max(-1) - rgb.min(-1)).max())
        if spread > JPEG_GREY_SPREAD:
            raise AnnotationError(
                f"mask {path.name} is a colour JPEG: JPEG blurs colours, so objects cannot be told apart; "
                "save it as PNG (indexed, or flat colours)")
        return MaskFile(path, "grey", _grey_object(img.convert("L")))
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    packed[rgba[..., 3] < OPAQUE_ALPHA] = 0
    colours, first, inverse = np.unique(packed.reshape(-1), return_index=True, return_inverse=True)
    if colours[0] == 0:  # background
        colours, first, inverse = colours[1:], first[1:], inverse - 1
    else:
        inverse = inverse.copy()
    if len(colours) and all(_is_grey(c) for c in colours):
        grey = np.where(packed > 0, packed & 0xFF, 0).astype(np.uint8)
        return MaskFile(path, "grey", _grey_object(Image.fromarray(grey, mode="L")))
    if len(colours) > MAX_OBJECT_ID - 1:
        raise AnnotationError(
            f"mask {path.name} has {len(colours)} colours: a colour mask holds one flat colour per object "
            f"(at most {MAX_OBJECT_ID - 1}); smooth edges or a photo add colours: paint with a hard brush, "
            "or save an indexed PNG")
    order = np.argsort(first, kind="stable")  # reading order of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    pixels = np.where(inverse < 0, 0, rank[np.maximum(inverse, 0)] + 1).reshape(packed.shape).astype(np.uint8)
    ordered = tuple(int(c) for c in colours[order])
    _refuse_anti_aliasing(path, pixels, ordered)
    return MaskFile(path, "colour", pixels, ordered)


def _is_grey(packed):
    r, g, b = (packed >> 16) & 0xFF, (packed >> 8) & 0xFF, packed & 0xFF
    return r == g == b


def _grey_object(img):
    """bool -> uint8 object map of a single-channel image: >= half the range, or 1 in a 0/1 file."""
    if img.mode == "LA":
        alpha = np.array(img.getchannel("A"))
        values = np.where(alpha >= OPAQUE_ALPHA, np.array(img.getchannel("L")), 0)
    else:
        values = np.array(img)
    if img.mode == "1":
        return values.astype(np.uint8)
    if values.dtype.kind == "f":
        threshold = 0.5
    elif img.mode.startswith("I") and values.max(initial=0) > 255:
        threshold = 32768
    else:
        threshold = GREY_THRESHOLD
    if values.max(initial=0) == 1 and values.min(initial=0) >= 0:
        return (values == 1).astype(np.uint8)
    return (values >= threshold).astype(np.uint8)


def _refuse_anti_aliasing(path, pixels, colours):
    """Refuse colours that only fringe other colours: no pixel inside a solid area of their own,
    and the colour a blend of two others (or of one and the black background)."""
    if not colours:
        return
    p = np.pad(pixels, 1, mode="edge")
    inner = (p[1:-1, 1:-1] == p[:-2, 1:-1]) & (p[1:-1, 1:-1] == p[2:, 1:-1]) & \
            (p[1:-1, 1:-1] == p[1:-1, :-2]) & (p[1:-1, 1:-1] == p[1:-1, 2:])
    solid = set(np.unique(pixels[inner]).tolist())
    rgb = np.array([[(c >> 16) & 0xFF, (c >> 8) & 0xFF, c & 0xFF] for c in (0,) + colours], dtype=np.float64)
    for k, colour in enumerate(colours, start=1):
        if k in solid or not _is_blend(rgb, k):
            continue
        count = int((pixels == k).sum())
        raise AnnotationError(
            f"mask {path.name}: colour {hex_colour(colour)} ({count} px) only lines the edges between other "
            "colours (anti-aliasing); paint the mask with a hard brush (no smoothing) so that each object "
            "is one flat colour, or save an indexed PNG")


def _is_blend(rgb, k):
    """Does colour ``k`` lie between two other colours (row 0 is the black background)?"""
    others = np.delete(rgb, k, axis=0)
    a, b = others[:, None, :], others[None, :, :]
    ab = b - a
    length2 = (ab ** 2).sum(-1)
    t = np.where(length2 > 0, ((rgb[k] - a) * ab).sum(-1) / np.maximum(length2, 1e-9), -1.0)
    distance = np.linalg.norm(a + t[..., None] * ab - rgb[k], axis=-1)
    return bool(((t > 0) & (t < 1) & (distance <= BLEND_TOLERANCE)).any())


# ----------------------------------------------------------------------------- a shot's masks

def assign_colour_ids(masks):
    """``{packed colour: object id}`` for the colour masks among ``masks`` (in frame order)."""
    used = set()
    for mask in masks:
        if mask.kind == "indexed":
            used.update(int(v) for v in np.unique(mask.pixels) if v not in (0, VOID_INDEX))
        elif mask.kind == "grey" and mask.pixels.any():
            used.add(1)
    ids = {}
    for mask in masks:
        for colour in mask.colours:
            if colour == _DAVIS_VOID:
                raise AnnotationError(
                    f"mask {mask.path.name} uses {hex_colour(colour)}, the colour of DAVIS's 'void' label, not an "
                    "object: paint those pixels black (background) or in an object's colour")
            if colour in _DAVIS_INDEX:
                ids[colour] = _DAVIS_INDEX[colour]
                used.add(ids[colour])
    next_id = 1
    for mask in masks:
        for colour in mask.colours:
            if colour in ids:
                continue
            while next_id in used:
                next_id += 1
            if next_id >= VOID_INDEX:
                raise AnnotationError(
                    f"mask {mask.path.name}: the shot's masks hold more than {VOID_INDEX - 1} objects; "
                    "use fewer colours or indexed PNGs")
            ids[colour] = next_id
            used.add(next_id)
    return ids


def labels_of(mask, colour_ids=None):
    """uint8 ``[H,W]`` object ids of a :class:`MaskFile`, checked: not empty, no void index."""
    if mask.kind == "colour":
        lut = np.zeros(len(mask.colours) + 1, dtype=np.uint8)
        ids = colour_ids if colour_ids is not None else assign_colour_ids([mask])
        lut[1:] = [ids[c] for c in mask.colours]
        labels = lut[mask.pixels]
    else:
        labels = mask.pixels
    name = mask.path.name
    if mask.kind == "indexed" and (labels == VOID_INDEX).any():
        if set(np.unique(labels).tolist()) <= {0, VOID_INDEX}:
            raise AnnotationError(f"mask {name} is indexed with only indices 0 and 255: if 255 is the object, "
                                  "save the mask as a greyscale PNG or paint the object with index 1")
        raise AnnotationError(f"mask {name} uses index 255, DAVIS's 'void' label, not an object: "
                              "paint those pixels with 0 (background) or an object index 1..254")
    if not labels.any():
        how = {"indexed": "every pixel has index 0 (background)",
               "grey": f"no pixel is {GREY_THRESHOLD} or brighter (a black-and-white mask's object is white)",
               "colour": "every pixel is black or transparent"}[mask.kind]
        raise AnnotationError(f"mask {name} is empty: {how}; draw the object, or remove the file")
    return torch.from_numpy(np.ascontiguousarray(labels, dtype=np.uint8))


def read_annotation(path):
    """One mask file -> uint8 ``[H,W]`` object ids (colours numbered within this file alone;
    use :func:`read_shot_masks` for the masks of a shot)."""
    return labels_of(load_mask(path))


def read_shot_masks(paths):
    """The masks of one shot, ``{key: path}`` in frame order -> ``({key: uint8 labels},
    {object id: packed colour})``, colours numbered consistently over all of them."""
    loaded = {key: load_mask(path) for key, path in paths.items()}
    colour_ids = assign_colour_ids(list(loaded.values()))
    labels = {key: labels_of(mask, colour_ids) for key, mask in loaded.items()}
    return labels, {i: c for c, i in colour_ids.items()}


# ----------------------------------------------------------------------------- files to frames

def first_integer(stem):
    match = re.search(r"\d+", stem)
    return int(match.group()) if match else None


def mask_files(folder):
    """The mask images of a folder, sorted by name; images of another format are refused by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AnnotationError(f"--masks {folder}: not a folder; give the folder that holds the keyframe masks")
    files, refused = [], []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        suffix = path.suffix.lower()
        if suffix in MASK_EXTENSIONS:
            files.append(path)
        elif suffix in IMAGE_EXTENSIONS:
            refused.append(path.name)
    if refused:
        raise AnnotationError(f"mask {refused[0]}: {Path(refused[0]).suffix} is not a mask format; save it as "
                              f"PNG ({', '.join(MASK_EXTENSIONS)} are read)")
    if not files:
        raise AnnotationError(f"no masks in {folder}: put at least one keyframe mask there (a PNG named "
                              "like the frame it annotates)")
    return files


def match_annotations(mask_folder, frame_stems):
    """Mask files -> ``{frame position: path}``. A mask belongs to the frame with the same name
    (without extension), or failing that to the frame with the same number (the first integer
    in the name: ``frame_12.png`` annotates ``00012.jpg``)."""
    files = mask_files(mask_folder)
    by_stem = {s: i for i, s in enumerate(frame_stems)}
    by_number = {}
    for i, s in enumerate(frame_stems):
        by_number.setdefault(first_integer(s), i)
    by_number.pop(None, None)
    found = {}
    for f in files:
        i = by_stem.get(f.stem)
        if i is None:
            i = by_number.get(first_integer(f.stem))
        if i is None:
            raise AnnotationError(
                f"mask {f.name} matches no frame (the {len(frame_stems)} frames are named {frame_stems[0]} .. "
                f"{frame_stems[-1]}): name each mask like the frame it annotates, or remove it")
        if i in found:
            raise AnnotationError(f"masks {found[i].name} and {f.name} both annotate frame {frame_stems[i]}: "
                                  "keep one (put every object of a frame in one mask)")
        found[i] = f
    return found
