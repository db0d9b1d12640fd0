"""Propagate: the session's keyframes carried over a run of frames, forward, backward or both."""

import torch

from . import comfy_env
from .common import (CHUNK_FRAMES, LOG, MASKS, MAX_FRAME_INDEX, SESSION, check_frames, colour_labels,
                     progress_and_cancel, to_output)
from .mask_set import MaskSet, labels_of, union_of
from .model_nodes import ready_network
from .preview import write_preview
from .routes import publish_masks
from .session_nodes import check_session
from ..memvos_core.session import DIRECTIONS


def keyframe_list(session):
    return tuple({"frame": k.frame_index, "objects": list(k.object_ids)} for k in session.keyframes)


def frame_range(first, count, start_frame, end_frame):
    """Clip frames ``start..end`` (inclusive) of a batch holding clip frames ``first..first+count-1``."""
    last = first + count - 1
    start = max(int(start_frame), first)
    end = last if int(end_frame) < 0 else min(int(end_frame), last)
    if start > end:
        raise ValueError(f"start_frame {start_frame} .. end_frame {end_frame} selects none of the frames given "
                         f"(clip frames {first}..{last}, as first_frame_index is {first}): pick frames inside "
                         "that range, or set first_frame_index to the clip index of the first frame connected")
    return start, end


def write_clip_preview(frames, labels, ids, *, fps, frame_offset, keyframes=(), suggestions=(), masks=None):
    """The player's UI entry, or an empty list if the preview could not be written (a warning;
    the node's outputs are not lost over a preview). With ``masks`` the entry carries a token for
    the source-size masks ("fix this frame" in the player, see routes.py)."""
    try:
        entry = write_preview(comfy_env.temp_directory(), frames, labels, fps=fps, object_ids=ids,
                              frame_offset=frame_offset, keyframes=keyframes, suggestions=suggestions)
        return [entry if masks is None else {**entry, "masks_token": publish_masks(masks)}]
    except OSError as exc:
        LOG.warning("MemVOS: the preview could not be written (%s)", exc)
        return []


class MemVOSPropagate:
    DESCRIPTION = ("Carries the session's keyframes over the frames: per-object masks, their union as a MASK "
                   "and a coloured label map, plus the session to continue with (the next chunk of a long shot "
                   "continues where this one stopped). Shows a preview player on the node.")
    CATEGORY = "MemVOS/session"
    FUNCTION = "propagate"
    OUTPUT_NODE = True
    RETURN_TYPES = (SESSION, MASKS, "MASK", "IMAGE")
    RETURN_NAMES = ("session", "masks", "mask", "label_map")
    OUTPUT_TOOLTIPS = (
        "The session after this run: connect it to the next chunk's Propagate (first_frame_index = the frame "
        "after this chunk) or to Save Session.",
        "Per-object masks of the propagated frames, for Select Objects, Refine, Composite and Suggest Frames.",
        "Union of every object's mask (1 = object) for the propagated frames, at source size.",
        "Label map of the propagated frames, each object in its DAVIS palette colour.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "session": (SESSION, {"tooltip": "A session with at least one annotation frame."}),
            "frames": ("IMAGE", {"tooltip": "The shot's frames (or one chunk of them, see first_frame_index)."}),
            "direction": (list(("both",) + tuple(d for d in DIRECTIONS if d != "both")), {
                "default": "both",
                "tooltip": "both: from every keyframe forward and backward, blended between keyframes. "
                           "forward: half the work when the keyframes are at the start; backward: the reverse."}),
            "start_frame": ("INT", {"default": 0, "min": 0, "max": MAX_FRAME_INDEX, "step": 1,
                                    "tooltip": "First clip frame to propagate over (earlier than the frames "
                                               "given means from the first frame given)."}),
            "end_frame": ("INT", {"default": -1, "min": -1, "max": MAX_FRAME_INDEX, "step": 1,
                                  "tooltip": "Last clip frame to propagate over, included; -1 = the last frame "
                                             "given."}),
            "first_frame_index": ("INT", {"default": 0, "min": 0, "max": MAX_FRAME_INDEX, "step": 1,
                                          "tooltip": "Clip index of the first frame connected: 0 for a whole "
                                                     "shot; for a chunk, where the chunk starts in the shot."}),
            "preview_fps": ("FLOAT", {"default": 24.0, "min": 0.1, "max": 1000.0, "step": 0.01,
                                      "tooltip": "Playback rate of the preview player (connect the video's fps)."}),
        }}

    def propagate(self, session, frames, direction="both", start_frame=0, end_frame=-1, first_frame_index=0,
                  preview_fps=24.0):
        check_session(session)
        frames = check_frames(frames)
        if direction not in DIRECTIONS:
            raise ValueError(f"direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
        if not session.keyframes:
            raise ValueError("session has no annotation frame: add one with MemVOS Add Annotation Frame "
                             "before propagating")
        first, count = int(first_frame_index), frames.shape[0]
        start, end = frame_range(first, count, start_frame, end_frame)
        ready_network(session.model)
        steps = (end - start + 1) * (2 if direction == "both" else 1)
        progress, cancel = progress_and_cancel(steps)
        new_session, result = session.propagate(frames, first, direction, start, end + 1,
                                                progress=progress, cancel=cancel)
        masks = MaskSet(tuple(result.object_ids), start, end - start + 1, tuple(frames.shape[1:3]), first, count,
                        keyframes=keyframe_list(session), model_id=session.model.model_id, result=result)
        unions, labels = [], []
        for t0, t1 in masks.chunks(CHUNK_FRAMES):
            part = masks.chunk(t0, t1)
            unions.append(union_of(part))
            labels.append(labels_of(part, masks.object_ids))
        union, labels = torch.cat(unions), torch.cat(labels)
        shown = frames[start - first:end - first + 1]
        ui = write_clip_preview(shown, labels, list(masks.object_ids), fps=preview_fps, frame_offset=start,
                                keyframes=masks.keyframes, masks=masks)
        new_session = new_session.to(comfy_env.intermediate_device())
        result_tuple = (new_session, masks, to_output(union), to_output(colour_labels(labels)))
        return {"ui": {"memvos_preview": ui}, "result": result_tuple}


NODE_CLASS_MAPPINGS = {"MemVOSPropagate": MemVOSPropagate}
NODE_DISPLAY_NAME_MAPPINGS = {"MemVOSPropagate": "MemVOS Propagate"}
