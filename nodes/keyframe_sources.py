"""Where the Keyframes node's keyframes come from, and how they merge.

Four sources, each a "layer" ``{frame: (labels uint8 [H,W], annotated object ids)}`` at the
shot's size. Merged per frame and per object, from the lowest precedence to the highest:

    1. keyframes already in the incoming session (e.g. from Add Annotation Frame nodes)
    2. the ``label_map`` input (DAVIS-coloured IMAGE, several objects at once)
    3. the ``mask`` input (MASK batch, one object per mask, e.g. from a SAM-style segmenter)
    4. what was painted in the editor (the keyframe files)

A higher layer that annotates object o on frame f replaces o there entirely (its old pixels go)
and takes the pixels it paints from any other object; objects it does not annotate keep what the
lower layers gave them. So a correction painted in the editor always wins, and a segmenter's
mask still counts for every object the artist did not touch on that frame.
"""
import re

import torch

from PIL import Image

from .keyframe_files import KeyframeError, read_label_png, resolve
from .messages import size_text
from .session_nodes import fit_mask
from ..memvos_core.runtime.frames import same_aspect
from ..memvos_core.media_io.palette import labels_from_colours

SOURCE_NAMES = ("session", "label_map", "mask", "painted")


def parse_index_list(text, name, count, low, high, what):
    """``"0, 12"`` -> ``[0, 12]``, one per item of a batch of ``count``; one value is used for all."""
    parts = [p for p in re.split(r"[\s,;]+", str(text or "").strip()) if p]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a list of whole numbers: write them like '0, 12'") from None
    if len(values) == 1 and count > 1:
        values = values * count
    if len(values) != count:
        raise ValueError(f"{name} lists {len(values)} {what}{'s' if len(values) != 1 else ''} but the batch holds "
                         f"{count}: give one {what} per item (or one for all)")
    for v in values:
        if not low <= v <= high:
            raise ValueError(f"{name}: {what} {v} is outside {low}..{high}")
    return values


def _check_frame(frame, num_frames, name):
    if frame >= num_frames:
        raise ValueError(f"{name}: frame {frame} is past the shot ({num_frames} frames: 0..{num_frames - 1}): "
                         "use the frame numbers of the frames connected to this node")


def _fit_labels(labels, frame_hw, name):
    if tuple(labels.shape) == tuple(frame_hw):
        return labels
    return fit_mask(labels.float(), frame_hw, name).round().to(torch.uint8)


def session_layer(session):
    return {k.frame_index: (k.labels, set(k.object_ids)) for k in session.keyframes}


def mask_layer(mask, frames_text, ids_text, frame_hw, num_frames):
    """The ``mask`` input: mask k is object ``mask_object_ids[k]`` on frame ``mask_frames[k]``."""
    if not torch.is_tensor(mask) or mask.dim() not in (2, 3) or 0 in mask.shape:
        shape = tuple(mask.shape) if torch.is_tensor(mask) else type(mask).__name__
        raise ValueError(f"mask must be a MASK [height, width] or [batch, height, width] (got {shape}): "
                         "connect a mask, e.g. from a segmenter or Load Image (as Mask)")
    masks = mask.reshape(-1, *mask.shape[-2:]).detach().cpu()
    count = masks.shape[0]
    frames = parse_index_list(frames_text, "mask_frames", count, 0, 10_000_000, "frame")
    ids = parse_index_list(ids_text, "mask_object_ids", count, 1, 255, "object id")
    layer, owner = {}, {}
    for k, (frame, oid) in enumerate(zip(frames, ids)):
        _check_frame(frame, num_frames, "mask_frames")
        if (frame, oid) in owner:
            raise ValueError(f"mask {owner[frame, oid]} and mask {k} are both object {oid} on frame {frame}: "
                             "give each (frame, object) one mask")
        owner[frame, oid] = k
        binary = fit_mask(masks[k].float(), frame_hw, f"mask {k}") > 0.5
        if not bool(binary.any()):
            raise ValueError(f"mask {k} (object {oid}, frame {frame}) is empty (nothing above 0.5): connect the "
                             "object's mask, or leave that frame out of mask_frames")
        labels, annotated = layer.get(frame, (torch.zeros(frame_hw, dtype=torch.uint8), set()))
        labels = labels.clone()
        labels[binary] = oid  # a later mask of the batch wins where two objects overlap
        layer[frame] = (labels, annotated | {oid})
    return layer


def label_map_layer(image, frames_text, frame_hw, num_frames):
    """The ``label_map`` input: an IMAGE batch in DAVIS colours, item k on frame ``label_map_frames[k]``."""
    if not torch.is_tensor(image) or image.dim() != 4 or image.shape[-1] not in (3, 4) or 0 in image.shape:
        shape = tuple(image.shape) if torch.is_tensor(image) else type(image).__name__
        raise ValueError(f"label_map must be an IMAGE [batch, height, width, 3] (got {shape}): connect a label "
                         "map in DAVIS colours, e.g. Propagate's label_map")
    count = image.shape[0]
    frames = parse_index_list(frames_text, "label_map_frames", count, 0, 10_000_000, "frame")
    if len(set(frames)) != len(frames):
        raise ValueError(f"label_map_frames {frames_text!r} names a frame twice: one label map per frame")
    layer = {}
    for k, frame in enumerate(frames):
        _check_frame(frame, num_frames, "label_map_frames")
        rgb = (image[k, ..., :3].detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
        try:
            labels = labels_from_colours(rgb)
        except ValueError as exc:
            raise ValueError(f"label_map {k} (frame {frame}): {exc}") from None
        labels = _fit_labels(labels, frame_hw, f"label_map {k}")
        ids = set(torch.unique(labels).tolist()) - {0}
        if not ids:
            raise ValueError(f"label_map {k} (frame {frame}) is empty (all black): connect a label map with at "
                             "least one object, or leave that frame out of label_map_frames")
        layer[frame] = (labels, ids)
    return layer


def misfits(spec, input_dir, frame_hw, num_frames):
    """``[(frame, file, why), ...]``: the painted keyframes that cannot be used on these frames (a
    template's keyframe after its video was swapped for other footage): past the shot's end, or
    painted at another aspect ratio. Reads only the files' headers; a missing or unreadable file
    is left to :func:`painted_layer`, which names the fix for it."""
    out = []
    for entry in spec.keyframes:
        if entry.frame >= num_frames:
            out.append((entry.frame, entry.file, f"frame {entry.frame} is past the shot's {num_frames} frames"))
            continue
        try:
            with Image.open(resolve(input_dir, entry.file)) as img:
                width, height = img.size
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
        if (height, width) != tuple(frame_hw) and not same_aspect((height, width), frame_hw):
            out.append((entry.frame, entry.file, f"it is {size_text((height, width))}, the frames "
                                                 f"{size_text(frame_hw)}: a different aspect ratio"))
    return out


def misfit_message(found):
    listed = "; ".join(f"{file!r} (frame {frame}): {why}" for frame, file, why in found)
    many = len(found) > 1
    return (f"{len(found)} keyframe{'s' if many else ''} painted on other footage ({listed}): press \"Drop "
            f"keyframes that do not fit\" on the node (or in its editor), then paint the objects on this shot")


def painted_layer(spec, input_dir, frame_hw, num_frames):
    """The keyframes painted in the editor: the files the spec names, read from the input folder."""
    layer = {}
    for entry in spec.keyframes:
        _check_frame(entry.frame, num_frames, f"keyframes (file {entry.file!r})")
        labels = torch.from_numpy(read_label_png(resolve(input_dir, entry.file), entry.file))
        labels = _fit_labels(labels, frame_hw, f"keyframe file {entry.file!r}")
        stray = sorted(set(torch.unique(labels).tolist()) - {0} - set(entry.objects))
        if stray:
            raise KeyframeError(f"keyframe file {entry.file!r} (frame {entry.frame}) has pixels of object(s) "
                                f"{stray}, which its entry does not list (objects {list(entry.objects)}): "
                                "list them, or paint that keyframe again")
        layer[entry.frame] = (labels, set(entry.objects))
    return layer


def merge_layers(layers, frame_hw):
    """``[(source name, layer), ...]`` lowest precedence first -> ``{frame: (labels, ids, sources)}``
    where ``sources`` maps each annotated object id to the layer it came from."""
    merged = {}
    for source, layer in layers:
        for frame, (labels, ids) in layer.items():
            base, annotated, sources = merged.get(frame, (torch.zeros(frame_hw, dtype=torch.uint8), set(), {}))
            base = base.clone()
            for oid in ids:
                base[base == oid] = 0
            painted = labels > 0
            base[painted] = labels[painted]
            sources = {**sources, **{oid: source for oid in ids}}
            merged[frame] = (base, annotated | set(ids), sources)
    return merged


def check_every_object_is_somewhere(merged):
    """An object annotated only as absent everywhere has nothing to propagate from."""
    shown = set()
    for labels, _, _ in merged.values():
        shown |= set(torch.unique(labels).tolist())
    for frame, (_, ids, sources) in sorted(merged.items()):
        missing = sorted(set(ids) - shown)
        if missing:
            where = ", ".join(f"{o} ({sources[o]})" for o in missing)
            raise ValueError(f"object(s) {where} have no pixels on any keyframe (first listed on frame {frame}): "
                             "paint each object on at least one frame")
