"""Small preview files for the browser player in ``web/``.

A node hands over its frames and label map; we write, into ComfyUI's temp folder, a few JPEG atlas
pages (downsized frames as a grid of tiles), matching lossless grayscale PNG pages (labels) and a
JSON manifest that describes them. The node returns the manifest's ``/view`` entry as UI data, so
the workflow JSON never carries image data. Pure Python (torch, numpy, PIL): no ComfyUI import.

Manifest (``version`` 1), frame numbers are preview indices (0..num_frames-1); the clip frame is
``frame + frame_offset``:

    format "memvos-preview", version, num_frames, fps, frame_offset,
    tile {width, height}, source {width, height}, jpeg_quality,
    label_encoding "slot": a label pixel k > 0 belongs to objects[k-1] (0 = background),
    objects [{id, color [r, g, b]}] (DAVIS palette entry of the id),
    keyframes [{frame, clip_frame, objects}],
    suggestions [{frame, clip_frame, object_id, reason, score, detail}],
    stale [{frame, count}]: frames whose masks were computed before the latest keyframe change
        (kept by a span re-run of Propagate; the player marks them on the timeline),
    pages [{frames: jpg name, labels: png name, first_frame, count, cols, rows, bytes [jpg, png]}]

A later call handed an earlier entry (``previous``) and the clip ranges that changed since takes
over the earlier pages that touch none of them (hard links, or copies): a span re-run of
Propagate renders only the pages of the frames it computed again.
"""
import json
import math
import operator
import os
import re
import uuid

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

try:
    from ..memvos_core.ops.chunking import Compute, run_chunked
    from ..memvos_core.media_io.palette import davis_palette, palette_index
    from ..memvos_core.session.store import link_or_copy
except ImportError:  # nodes/ imported as a top-level package (repository root on sys.path, as in tests)
    from memvos_core.ops.chunking import Compute, run_chunked
    from memvos_core.media_io.palette import davis_palette, palette_index
    from memvos_core.session.store import link_or_copy

MANIFEST_FORMAT = "memvos-preview"
MANIFEST_VERSION = 1
SUBFOLDER = "memvos"
MAX_PAGE_PX = 4096  # browsers decode larger images, but canvases past 4096 px fail on some devices
MAX_OBJECTS = 255  # label pages are 8-bit: slot 0 is the background
MAX_TEXT = 400  # reasons and details are shown in a one-line info bar
# The tiles are small and the work light, so bigger chunks gain nothing: with the ops' 1 GiB CPU
# budget a 2000-frame Propagate held ~200 source-size frames at once while writing its preview
# (bench/bench_long_shot_nodes.py: RSS peak 2.0 GiB against 1.0 GiB while propagating).
PREVIEW_BUDGET = 256 * 2 ** 20
# Working bytes per source pixel of a frame while a chunk is downsized: the frame as read (float32
# RGB), its channels-first copy, the antialiased resize's intermediate, and the labels (int64).
_BYTES_PER_PIXEL = 12 + 12 + 12 + 8
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


def tile_size(height, width, max_side):
    """(height, width) of a preview tile: longer side at most ``max_side``, aspect kept."""
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def page_grid(tile_hw, page_px):
    """(cols, rows) of a full atlas page: as many tiles as fit in ``page_px`` x ``page_px``."""
    tile_h, tile_w = tile_hw
    return max(1, page_px // tile_w), max(1, page_px // tile_h)


def write_preview(folder, frames, labels, *, fps, object_ids, frame_offset=0, keyframes=(),
                  suggestions=(), stale=(), max_side=320, prefix=None, page_px=2048, jpeg_quality=70,
                  device=None, budget_bytes=None, progress=None, cancel=None, previous=None, changed=None):
    """Write the preview of a clip and return its ComfyUI UI entry.

    ``frames``: ``[T,H,W,3]`` (or 4, alpha ignored) float 0..1 (ComfyUI IMAGE) or uint8.
    ``labels``: ``[T,H,W]`` integer label map (0 background, else an id from ``object_ids``;
    checked on the downsized tiles, where the preview uses them).
    ``keyframes`` (ints or ``{"frame", "objects"}``) and ``suggestions`` (``{"frame", "object_id",
    "reason", "score", "detail"}``) use clip frame numbers; those outside the previewed range are
    left out. ``stale``: half-open clip ranges ``(lo, hi)`` computed before the latest change.
    Files go to ``folder/memvos/`` under one fresh name per call; every file is written
    under a temporary name and renamed, the manifest last, so a reader never sees a partial one.
    Frames are downsized on ``device`` (default: where they are), in chunks within
    ``budget_bytes``; ``progress(done, total)`` after each chunk, ``cancel()`` before each.
    ``previous``: an entry an earlier call wrote in ``folder``, with ``changed``: the half-open clip
    ranges whose frames or labels differ from what it shows. Its pages that touch none of them are
    linked (or copied) rather than rendered, when it was written over the same range, source size,
    tile, page grid, quality and objects in the same order and its files are intact; the other pages
    are rendered, and ``progress`` counts only their frames.
    Returns ``{"filename", "subfolder", "type": "temp"}`` for ``{"ui": {"memvos_preview": [..]}}``.
    """
    frames, labels = _check_clip(frames, labels)
    ids = _check_object_ids(object_ids)
    fps = _check_fps(fps)
    frame_offset = _check_int("frame_offset", frame_offset, minimum=0)
    max_side = _check_int("max_side", max_side, minimum=16)
    page_px = _check_int("page_px", page_px, minimum=16)
    jpeg_quality = _check_int("jpeg_quality", jpeg_quality, minimum=1)
    if page_px > MAX_PAGE_PX or jpeg_quality > 95:
        raise ValueError(f"page_px={page_px} / jpeg_quality={jpeg_quality}: keep page_px <= {MAX_PAGE_PX} "
                         "and jpeg_quality <= 95 so the pages stay small and loadable in any browser")
    prefix = _check_prefix(prefix)

    num_frames, height, width = labels.shape
    tile_hw = tile_size(height, width, min(max_side, page_px))
    cols, rows = page_grid(tile_hw, page_px)
    out_dir = os.path.join(os.fspath(folder), SUBFOLDER)
    os.makedirs(out_dir, exist_ok=True)
    stem = f"{prefix}_{uuid.uuid4().hex[:16]}"

    keyframes = _normalize_keyframes(keyframes, frame_offset, num_frames)
    suggestions = _normalize_suggestions(suggestions, frame_offset, num_frames)
    stale = _normalize_ranges(stale, frame_offset, num_frames)

    slot_of = _SlotMap(ids)
    work_device, _ = Compute(device).on(frames.device)
    budget = min(Compute(budget_bytes=budget_bytes).budget(work_device), PREVIEW_BUDGET)
    compute = Compute(device, "cpu", budget, progress, cancel)
    layout = [_page_layout(first, min(cols * rows, num_frames - first), cols)
              for first in range(0, num_frames, cols * rows)]
    header = {"num_frames": num_frames, "frame_offset": frame_offset,
              "tile": {"width": tile_hw[1], "height": tile_hw[0]}, "source": {"width": width, "height": height},
              "jpeg_quality": jpeg_quality, "label_encoding": "slot",
              "objects": [{"id": i, "color": _colour_of(i)} for i in ids]}
    kept = _kept_pages(out_dir, previous, changed, header, layout)
    to_render = sum(page["count"] for index, page in enumerate(layout) if index not in kept)
    pages, rendered = [], 0
    try:
        for page_index, page in enumerate(layout):
            name = f"{stem}_p{page_index}"
            if page_index in kept:
                pages.append(_link_page(out_dir, name, kept[page_index]))
                continue
            pages.append(_write_page(out_dir, name, frames, labels, slot_of, page, tile_hw, jpeg_quality, compute,
                                     (rendered, to_render)))
            rendered += page["count"]
    except BaseException:
        # No manifest will point at them: leave no page of a failed call behind (the stem is ours).
        for name in os.listdir(out_dir):
            if name.startswith(f"{stem}_p"):
                os.remove(os.path.join(out_dir, name))
        raise

    manifest = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "fps": fps,
        **header,
        "keyframes": keyframes,
        "suggestions": suggestions,
        "stale": stale,
        "pages": pages,
    }
    manifest_name = f"{stem}.json"
    _write_atomic(os.path.join(out_dir, manifest_name),
                  lambda path: _dump_json(manifest, path))
    return {"filename": manifest_name, "subfolder": SUBFOLDER, "type": "temp"}


def read_manifest(folder, entry):
    """Load the manifest an entry of :func:`write_preview` points at (for tests and tools)."""
    with open(os.path.join(os.fspath(folder), entry["subfolder"], entry["filename"]),
              encoding="utf-8") as handle:
        return json.load(handle)


# ----------------------------------------------------------------------------- pages

class _SlotMap:
    """Maps label ids to 8-bit slots (index in ``object_ids`` + 1), rejecting unknown ids.

    One comparison per object: objects are few, and this stays a plain batch-wise tensor op."""

    def __init__(self, ids):
        self.ids = ids

    def __call__(self, tile_labels):
        slots = torch.zeros(tile_labels.shape, dtype=torch.uint8, device=tile_labels.device)
        for slot, object_id in enumerate(self.ids, start=1):
            slots.masked_fill_(tile_labels == object_id, slot)
        unknown = (slots == 0) & (tile_labels != 0)
        if bool(unknown.any()):
            bad = sorted(int(v) for v in tile_labels[unknown].unique()[:5])
            raise ValueError(f"labels contain value(s) {bad} that are not in object_ids {self.ids}: "
                             "pass every object id present in the label map (0 is background)")
        return slots


def _page_layout(first, count, full_cols):
    cols = min(full_cols, count)
    return {"first_frame": first, "count": count, "cols": cols, "rows": math.ceil(count / cols)}


def _kept_pages(out_dir, previous, changed, header, layout):
    """``{page index: the previous manifest's page}`` for the pages ``previous`` (an entry) can give:
    written for the same header (range, sizes, quality, objects and their slots) and page layout,
    touching no ``changed`` clip range, with both files there at the size they were written."""
    if previous is None or changed is None or previous.get("subfolder") != SUBFOLDER:
        return {}
    name = previous.get("filename")
    if not isinstance(name, str) or os.path.basename(name) != name or not name.endswith(".json"):
        return {}
    try:
        manifest = read_manifest(os.path.dirname(out_dir), previous)  # out_dir is folder/SUBFOLDER
    except (OSError, ValueError):
        return {}  # gone (ComfyUI empties its temp folder when it starts) or unreadable: render all
    if (not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT
            or manifest.get("version") != MANIFEST_VERSION
            or any(manifest.get(key) != value for key, value in header.items())):
        return {}
    old_pages = manifest.get("pages")
    if not isinstance(old_pages, list) or len(old_pages) != len(layout):
        return {}
    offset, changed = header["frame_offset"], [(int(lo), int(hi)) for lo, hi in changed]
    kept = {}
    for index, (old, page) in enumerate(zip(old_pages, layout)):
        lo, hi = offset + page["first_frame"], offset + page["first_frame"] + page["count"]
        if (not isinstance(old, dict) or any(old.get(key) != value for key, value in page.items())
                or any(a < hi and lo < b for a, b in changed)):
            continue
        if _intact(out_dir, old):
            kept[index] = old
    return kept


def _intact(out_dir, page):
    files = (page.get("frames"), page.get("labels"))
    sizes = page.get("bytes")
    if not isinstance(sizes, list) or len(sizes) != 2:
        return False
    for name, size in zip(files, sizes):
        if not isinstance(name, str) or os.path.basename(name) != name:
            return False
        try:
            if os.path.getsize(os.path.join(out_dir, name)) != size:
                return False
        except OSError:
            return False
    return True


def _link_page(out_dir, name, old):
    """The earlier page ``old`` under this call's ``name``: its files are replaced, never written
    into, so the two manifests can share them."""
    frames_name, labels_name = f"{name}.jpg", f"{name}.png"
    link_or_copy(os.path.join(out_dir, old["frames"]), os.path.join(out_dir, frames_name))
    link_or_copy(os.path.join(out_dir, old["labels"]), os.path.join(out_dir, labels_name))
    return {**old, "frames": frames_name, "labels": labels_name}


def _write_page(out_dir, name, frames, labels, slot_of, page, tile_hw, quality, compute, bar):
    """``page``: a :func:`_page_layout`; ``bar``: ``(frames rendered before this page, frames to
    render in all)`` for the progress."""
    tile_h, tile_w = tile_hw
    first, count, cols, rows = page["first_frame"], page["count"], page["cols"], page["rows"]
    rgb_page = np.zeros((rows * tile_h, cols * tile_w, 3), dtype=np.uint8)
    label_page = np.zeros((rows * tile_h, cols * tile_w), dtype=np.uint8)

    def tiles(t0, t1, device):
        start, stop = first + t0, first + t1
        return (_resize_rgb(frames[start:stop].to(device), tile_hw),
                slot_of(_resize_labels(labels[start:stop].to(device), tile_hw)))
    page_progress = None
    if compute.progress is not None:
        page_progress = (lambda done, _total: compute.progress(bar[0] + done, bar[1]))
    page_compute = Compute(compute.device, compute.output_device, compute.budget_bytes, page_progress, compute.cancel)
    height, width = labels.shape[1:]
    parts = run_chunked(count, tiles, bytes_per_frame=height * width * _BYTES_PER_PIXEL, compute=page_compute,
                        source_device=frames.device)
    done = 0
    for rgb, slots in parts:
        rgb, slots = rgb.numpy(), slots.numpy()
        for k in range(rgb.shape[0]):
            row, col = divmod(done + k, cols)
            cell = (slice(row * tile_h, (row + 1) * tile_h), slice(col * tile_w, (col + 1) * tile_w))
            rgb_page[cell] = rgb[k]
            label_page[cell] = slots[k]
        done += rgb.shape[0]
    frames_name, labels_name = f"{name}.jpg", f"{name}.png"
    _write_atomic(os.path.join(out_dir, frames_name), lambda path: Image.fromarray(rgb_page, "RGB").save(
        path, format="JPEG", quality=quality, optimize=True))
    # A plain grayscale PNG with no gamma/colour chunks: browsers hand its bytes to a canvas untouched.
    _write_atomic(os.path.join(out_dir, labels_name), lambda path: Image.fromarray(label_page, "L").save(
        path, format="PNG", compress_level=9))
    sizes = [os.path.getsize(os.path.join(out_dir, n)) for n in (frames_name, labels_name)]
    return {"frames": frames_name, "labels": labels_name, **page, "bytes": sizes}


def _resize_rgb(chunk, tile_hw):
    """``[n,H,W,C]`` float 0..1 or uint8 -> ``[n,h,w,3]`` uint8, area-smoothed when shrinking."""
    # Contiguous channels-first: the antialiased resize is much slower on channels-last strides.
    rgb = chunk[..., :3].movedim(-1, 1).contiguous()
    rgb = rgb.float() / 255.0 if chunk.dtype == torch.uint8 else rgb.float()
    if tuple(rgb.shape[-2:]) != tuple(tile_hw):
        rgb = F.interpolate(rgb, size=tile_hw, mode="bilinear", align_corners=False, antialias=True)
    return (rgb.clamp(0, 1) * 255).round().to(torch.uint8).movedim(1, -1)


def _resize_labels(chunk, tile_hw):
    """Nearest-neighbour pick of ``[n,H,W]`` labels at tile size (pixel centres, no blending)."""
    height, width = chunk.shape[-2:]
    tile_h, tile_w = tile_hw
    if (height, width) == (tile_h, tile_w):
        return chunk
    ys = ((torch.arange(tile_h, device=chunk.device) + 0.5) * height / tile_h).long().clamp(max=height - 1)
    xs = ((torch.arange(tile_w, device=chunk.device) + 0.5) * width / tile_w).long().clamp(max=width - 1)
    return chunk[:, ys][:, :, xs]


def _write_atomic(path, write):
    tmp = f"{path}.{uuid.uuid4().hex[:8]}.part"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _dump_json(manifest, path):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, ensure_ascii=True, allow_nan=False, separators=(",", ":"))


def _colour_of(object_id):
    return [int(c) for c in davis_palette()[palette_index(object_id)]]


# ----------------------------------------------------------------------------- input checks

def _as_tensor(name, value):
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if getattr(value, "is_clip_view", False):
        return value  # a long shot read a slice at a time: shape, dtype, dim() and [a:b] -> tensor
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} is a {type(value).__name__}: pass a torch tensor or numpy array")
    return value


def _check_clip(frames, labels):
    frames = _as_tensor("frames", frames)
    labels = _as_tensor("labels", labels)
    if frames.dim() != 4 or frames.shape[-1] not in (3, 4):
        raise ValueError(f"frames have shape {tuple(frames.shape)}: expected [T,H,W,3] (a ComfyUI IMAGE batch)")
    if not (frames.dtype == torch.uint8 or frames.dtype.is_floating_point):
        raise ValueError(f"frames have dtype {frames.dtype}: pass float 0..1 (ComfyUI IMAGE) or uint8")
    if labels.dim() != 3:
        raise ValueError(f"labels have shape {tuple(labels.shape)}: expected a [T,H,W] label map")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ValueError(f"labels have dtype {labels.dtype}: pass an integer label map "
                         "(0 background, else the object id), e.g. labels.long()")
    if tuple(frames.shape[:3]) != tuple(labels.shape):
        raise ValueError(f"frames {tuple(frames.shape[:3])} and labels {tuple(labels.shape)} differ in "
                         "frame count or size: pass the label map of these frames, at their size")
    if labels.shape[0] == 0 or labels.shape[1] == 0 or labels.shape[2] == 0:
        raise ValueError(f"frames/labels are empty ({tuple(labels.shape)}): a preview needs at least one frame")
    return frames, labels


def _check_int(name, value, minimum):
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} is {value!r}: pass an integer") from None
    if number < minimum:
        raise ValueError(f"{name} is {number}: it must be at least {minimum}")
    return number


def _check_fps(fps):
    try:
        fps = float(fps)
    except (TypeError, ValueError):
        raise TypeError(f"fps is {fps!r}: pass the clip's frame rate as a number") from None
    if not math.isfinite(fps) or not 0 < fps <= 1000:
        raise ValueError(f"fps is {fps}: pass the clip's frame rate, a number in (0, 1000]")
    return fps


def _check_object_ids(object_ids):
    ids = [_check_int("object_ids entry", i, minimum=1) for i in object_ids]
    if len(set(ids)) != len(ids):
        raise ValueError(f"object_ids {ids} repeat an id: list each object once")
    if len(ids) > MAX_OBJECTS:
        raise ValueError(f"{len(ids)} objects: the preview shows at most {MAX_OBJECTS}")
    return ids


def _check_prefix(prefix):
    if prefix is None:
        return "memvos"
    if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
        raise ValueError(f"prefix {prefix!r}: use 1-40 letters, digits, '_' or '-' (it becomes a file name)")
    return prefix


def _text(value):
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 1] + "\u2026"


def _normalize_keyframes(keyframes, frame_offset, num_frames):
    merged = {}
    for item in keyframes:
        if isinstance(item, dict):
            if "frame" not in item:
                raise ValueError(f"keyframe {item!r} has no 'frame': give {{'frame': clip index, 'objects': [ids]}}")
            clip_frame = _check_int("keyframe frame", item["frame"], minimum=0)
            objects = [_check_int("keyframe object id", o, minimum=1)
                       for o in item.get("objects", item.get("object_ids", ()))]
        else:
            clip_frame, objects = _check_int("keyframe", item, minimum=0), []
        if 0 <= clip_frame - frame_offset < num_frames:
            merged.setdefault(clip_frame, set()).update(objects)
    return [{"frame": f - frame_offset, "clip_frame": f, "objects": sorted(objs)}
            for f, objs in sorted(merged.items())]


def _normalize_ranges(ranges, frame_offset, num_frames):
    """Half-open clip ranges -> ``[{frame, count}]`` in preview indices, clipped to the preview."""
    out = []
    for lo, hi in ranges:
        lo = max(_check_int("stale range start", lo, minimum=0) - frame_offset, 0)
        hi = min(_check_int("stale range end", hi, minimum=0) - frame_offset, num_frames)
        if lo < hi:
            out.append({"frame": lo, "count": hi - lo})
    return out


def _normalize_suggestions(suggestions, frame_offset, num_frames):
    out = []
    for item in suggestions:
        if not isinstance(item, dict) or "frame" not in item:
            raise ValueError(f"suggestion {item!r}: give a dict with 'frame' (clip index) and optionally "
                             "'object_id', 'reason', 'score', 'detail'")
        clip_frame = _check_int("suggestion frame", item["frame"], minimum=0)
        if not 0 <= clip_frame - frame_offset < num_frames:
            continue
        object_id = item.get("object_id")
        score = item.get("score")
        try:
            score = float(score) if score is not None else None
        except (TypeError, ValueError):
            raise ValueError(f"suggestion score {score!r} is not a number: pass a float or None") from None
        out.append({
            "frame": clip_frame - frame_offset,
            "clip_frame": clip_frame,
            "object_id": None if object_id is None else _check_int("suggestion object_id", object_id, 1),
            "reason": _text(item.get("reason")),
            "score": score if score is not None and math.isfinite(score) else None,
            "detail": _text(item.get("detail")),
        })
    out.sort(key=lambda s: (s["frame"], -(s["score"] or 0.0)))
    return out
