"""Load Frames (a folder of images or a video file, read lazily) and Get Frames (a range of a long
shot as a plain IMAGE batch, e.g. the frame to paint a keyframe on)."""
import hashlib
import math
import os

import torch

from .common import MAX_FRAME_INDEX, check_frames, progress_and_cancel, to_output
from .folders import readable_path
from .frame_source import FRAMES, FRAMES_INPUT, close_clip, files_fingerprint, frames_fps, source_from_path
from .inputs import Input, input_types, takes_declared
from .propagate_node import frame_range
from ..memvos_core.runtime.frames import internal_size, resize_image
from ..memvos_core.media_io.media import MAX_PIXELS_ENV, max_pixels

MAX_SIDE = 16384
SHORT_SIDE = Input("short_side", "INT", 0, "0 = the source size; else scaled so the shorter side is this many "
                   "pixels (aspect kept).", 0, MAX_SIDE, 1)


def resolve_frames_path(path):
    """A path inside ComfyUI's input folder or a folder listed for MemVOS (nodes/folders.py)."""
    return readable_path(path, "path")


def check_fps(fps, name="fps"):
    """A frame rate: a finite number > 0 (NaN or infinity from a linked FLOAT are refused here,
    not later in Propagate)."""
    try:
        value = float(fps)
    except (TypeError, ValueError):
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} {fps!r} is not a frame rate: give a number above 0, like 24 (0.1..1000)")
    return value


def path_fingerprint(path):
    """Names, sizes and times of what the path holds: a cheap stand-in for its content."""
    try:
        resolved = resolve_frames_path(path)
    except ValueError as exc:
        return hashlib.sha256(f"unreadable:{exc}".encode()).hexdigest()  # the run itself reports the error
    return files_fingerprint(resolved)


def scaled_size(frame_hw, short_side, name="short_side"):
    """Source size, or the size whose shorter side is ``short_side`` (aspect kept); 0 = source.
    A size over the pixel limit (memvos_core.media_io.media.max_pixels) is refused: a linked INT is not
    range-checked by ComfyUI, and 16384 on a 1080p shot would be 5 GB per frame."""
    short_side = int(short_side)
    if short_side <= 0 or short_side == min(frame_hw):
        return tuple(frame_hw)
    size = internal_size(*frame_hw, short_side)
    limit = max_pixels()
    if size[0] * size[1] > limit:
        raise ValueError(f"{name} {short_side} makes frames of {size[1]}x{size[0]} ({size[0] * size[1]:,} pixels), "
                         f"over the limit of {limit:,} pixels: choose a smaller {name} (0 = the source size), or "
                         f"raise the limit with the environment variable {MAX_PIXELS_ENV}")
    return size

GET_CHUNK = 16  # frames Get Frames decodes and resizes at a time


class MemVOSLoadFrames:
    DESCRIPTION = ("A shot from disk, for a shot too long to load as an IMAGE batch: a folder of images (PNG, JPG, "
                   "TIFF, ...; sorted by name, the names kept for saved masks) or a video file. Nothing is decoded "
                   "here: Propagate and the other MemVOS nodes read one frame at a time.")
    CATEGORY = "MemVOS/frames"
    FUNCTION = "load"
    RETURN_TYPES = (FRAMES, "INT", "FLOAT")
    RETURN_NAMES = ("frames", "frame_count", "fps")
    OUTPUT_TOOLTIPS = ("The shot, read lazily: connect it to the frames input of any MemVOS node.",
                       "How many frames the shot has.",
                       "Its frame rate (a video's own; for a folder, the fps input).")

    INPUTS = (
        Input("path", "STRING", "", "A folder of frames or a video file inside ComfyUI's input folder (relative, "
              "like 'shots/shot_010'), or in a folder listed for MemVOS (see the README)."),
        Input("fps", "FLOAT", 24.0, "Frame rate of a folder of frames (a video file brings its own).",
              0.1, 1000.0, 0.01),
    )

    @classmethod
    def INPUT_TYPES(cls):
        return input_types(cls.INPUTS)

    @classmethod
    @takes_declared(INPUTS)
    def IS_CHANGED(cls, path, fps, **_):
        return f"{fps}:{path_fingerprint(path)}"

    @takes_declared(INPUTS)
    def load(self, path, fps):
        fps = check_fps(fps)
        source = source_from_path(resolve_frames_path(path), fps=fps)
        return (source, source.count, float(source.fps))


class MemVOSGetFrames:
    DESCRIPTION = ("A range of frames as a plain IMAGE batch, at the source size or smaller, decoded from a long "
                   "shot without loading the rest: e.g. a frame for a segmenter from another pack (its masks go to "
                   "the Keyframes node's mask input), or a few seconds for another node.")
    CATEGORY = "MemVOS/frames"
    FUNCTION = "get"
    RETURN_TYPES = ("IMAGE", "INT", "FLOAT")
    RETURN_NAMES = ("images", "total_frames", "fps")
    OUTPUT_TOOLTIPS = ("The chosen frames.", "How many frames the whole shot has.",
                       "The shot's frame rate (24 for an IMAGE batch, which does not carry one).")

    INPUTS = (
        Input("frames", FRAMES_INPUT, tooltip="The shot: a VIDEO from Load Video, MemVOS Load Frames or an IMAGE "
              "batch."),
        Input("start_frame", "INT", 0, "First frame to get (0 = the shot's first).", 0, MAX_FRAME_INDEX, 1),
        Input("frame_count", "INT", 1, "How many frames from there (fewer at the shot's end).", 1, MAX_FRAME_INDEX, 1),
        SHORT_SIDE,
    )

    @classmethod
    def INPUT_TYPES(cls):
        return input_types(cls.INPUTS)

    @takes_declared(INPUTS)
    def get(self, frames, start_frame, frame_count, short_side):
        clip = check_frames(frames)
        total = clip.shape[0]
        start, end = frame_range(0, total, start_frame, int(start_frame) + int(frame_count) - 1,
                                 what=f"the shot's {total} frames (0..{total - 1}): pick a start_frame inside it")
        size = scaled_size(tuple(clip.shape[1:3]), short_side)
        parts = []
        progress, cancel = progress_and_cancel(end + 1 - start)  # decoding a few seconds of 4K takes seconds
        for t0 in range(start, end + 1, GET_CHUNK):
            cancel()
            chunk = clip[t0:min(t0 + GET_CHUNK, end + 1)][..., :3].float()
            if tuple(chunk.shape[1:3]) != size:
                chunk = resize_image(chunk.movedim(-1, 1), size, antialias=True).clamp(0, 1).movedim(1, -1)
            parts.append(chunk)
            progress(min(t0 + GET_CHUNK, end + 1) - start, end + 1 - start)
        close_clip(clip)
        return (to_output(torch.cat(parts)), total, float(frames_fps(frames) or 24.0))


NODE_CLASS_MAPPINGS = {"MemVOSLoadFrames": MemVOSLoadFrames, "MemVOSGetFrames": MemVOSGetFrames}
NODE_DISPLAY_NAME_MAPPINGS = {"MemVOSLoadFrames": "MemVOS Load Frames", "MemVOSGetFrames": "MemVOS Get Frames"}
