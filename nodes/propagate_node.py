"""Propagate: the session's keyframes carried over a run of frames, forward, backward or both."""

import weakref

import torch

from . import comfy_env
from .common import (LOG, MASKS, MAX_FRAME_INDEX, SESSION, check_frames, colour_labels,
                     progress_and_cancel, to_output)
from .frame_source import FRAMES_INPUT, close_clip, frame_stems, frames_fps
from .inputs import Input, input_types, takes_declared
from .linked_outputs import HIDDEN, wanted
from .mask_set import MaskSet, labels_of, union_of
from .messages import batch_warning
from .model_nodes import ready_network
from .preview import write_preview
from .propagation_runs import cancel_between_frames, frames_key, run_folders
from .routes import publish_masks
from .session_nodes import check_session
from ..memvos_core.session import DIRECTIONS
from ..memvos_core.session.span import RERUN
from ..memvos_core.shot import Shot


PREVIEW_BAR_PIXELS = 8_000_000  # source pixels whose preview takes about a second (~9 frames of 720p)


def keyframe_list(session):
    return tuple({"frame": k.frame_index, "objects": list(k.object_ids)} for k in session.keyframes)


def frame_range(first, count, start_frame, end_frame, what=None):
    """Clip frames ``start..end`` (inclusive) of a batch holding clip frames ``first..first+count-1``."""
    last = first + count - 1
    start = max(int(start_frame), first)
    end = last if int(end_frame) < 0 else min(int(end_frame), last)
    if start > end:
        what = what or (f"the frames given (clip frames {first}..{last}, as first_frame_index is {first}): pick "
                        "frames inside that range, or set first_frame_index to the clip index of the first frame "
                        "connected")
        raise ValueError(f"start_frame {start_frame} .. end_frame {end_frame} selects none of {what}")
    return start, end


def write_clip_preview(frames, labels, ids, *, fps, frame_offset, keyframes=(), suggestions=(), masks=None,
                       stale=(), **options):
    """The player's UI entry, or an empty list if the preview could not be written (a warning;
    the node's outputs are not lost over a preview). With ``masks`` the entry carries a token for
    the source-size masks ("fix this frame" in the player, see routes.py). ``options``: device,
    budget, progress... of :func:`write_preview`."""
    try:
        entry = write_preview(comfy_env.temp_directory(), frames, labels, fps=fps, object_ids=ids,
                              frame_offset=frame_offset, keyframes=keyframes, suggestions=suggestions,
                              stale=stale, **options)
        return [entry if masks is None else {**entry, "masks_token": publish_masks(masks)}]
    except OSError as exc:
        LOG.warning("MemVOS: the preview could not be written (%s)", exc)
        return []


def preview_bar(frame_hw):
    """``progress`` and ``cancel`` for :func:`write_clip_preview`: a bar of its own when the pages it
    renders take more than about a second (a long shot's took minutes at 100 % with no sign of life),
    else nothing. The bar starts at the writer's first report (after its first chunk), whose total
    is the frames rendered: a span run's pages of kept frames are taken over, not rendered."""
    bar = []

    def progress(done, total):
        if not bar:
            bar.append(progress_and_cancel(total) if total * frame_hw[0] * frame_hw[1] >= PREVIEW_BAR_PIXELS
                       else None)
        if bar[0] is not None:
            bar[0][0](done, total)

    def cancel():
        return bar[0][1]() if bar and bar[0] is not None else False

    return {"progress": progress, "cancel": cancel}


class MemVOSPropagate:
    DESCRIPTION = ("Carries the session's keyframes over the frames: per-object masks, their union as a MASK "
                   "and a coloured label map, plus the session to continue with (the next chunk of a long shot "
                   "continues where this one stopped). Shows a preview player on the node. The frames can be an "
                   "IMAGE batch, a VIDEO from Load Video or MemVOS Load Frames: a long shot is then read a frame "
                   "at a time, and the masks stay compact until MemVOS Save Masks or Get Masks asks for them.")
    CATEGORY = "MemVOS/session"
    FUNCTION = "propagate"
    OUTPUT_NODE = True
    RETURN_TYPES = (SESSION, MASKS, "MASK", "IMAGE")
    RETURN_NAMES = ("session", "masks", "mask", "label_map")
    LAZY_OUTPUTS = ("mask", "label_map")  # built only when connected (nodes/linked_outputs.py)
    OUTPUT_TOOLTIPS = (
        "The session after this run: connect it to the next chunk's Propagate (first_frame_index = the frame "
        "after this chunk) or to Save Session.",
        "Per-object masks of the propagated frames (compact), for Save Masks, Get Masks, Select Objects, "
        "Refine, Composite and Suggest Frames.",
        "Union of every object's mask (1 = object) for the propagated frames, at source size; built only when "
        "connected (a long shot's would not fit in memory: use Save Masks or Get Masks there).",
        "Label map of the propagated frames, each object in its DAVIS palette colour; built only when "
        "connected.",
    )

    INPUTS = (
        Input("session", SESSION, tooltip="A session with at least one annotation frame."),
        Input("frames", FRAMES_INPUT, tooltip="The shot's frames: an IMAGE batch (or one chunk of it, see "
              "first_frame_index), a VIDEO from Load Video, or MemVOS Load Frames; a VIDEO or Load Frames is read "
              "a frame at a time."),
        Input("direction", list(("both",) + tuple(d for d in DIRECTIONS if d != "both")), "both",
              "both: from every keyframe forward and backward, blended between keyframes. forward: half the work "
              "when the keyframes are at the start; backward: the reverse."),
        Input("start_frame", "INT", 0, "First clip frame to propagate over (earlier than the frames given means "
              "from the first frame given).", 0, MAX_FRAME_INDEX, 1),
        Input("end_frame", "INT", -1, "Last clip frame to propagate over, included; -1 = the last frame given.",
              -1, MAX_FRAME_INDEX, 1),
        Input("first_frame_index", "INT", 0, "Clip index of the first frame connected: 0 for a whole shot; for a "
              "chunk, where the chunk starts in the shot.", 0, MAX_FRAME_INDEX, 1),
        Input("preview_fps", "FLOAT", 24.0, "Playback rate of the preview player (connect the video's fps). A "
              "VIDEO or Load Frames brings its own rate, used instead.", 0.1, 1000.0, 0.01),
        Input("rerun", list(RERUN), "span", "After you fix keyframes, what runs again. span: only the frames "
              "between the changed objects' neighbouring unchanged keyframes, from this node's last run (an "
              "approximation: memory before the span and the frames outside it are the last run's; the player "
              "marks the frames kept). exact: the whole range, as a fresh run."),
    )

    @classmethod
    def INPUT_TYPES(cls):
        return input_types(cls.INPUTS, HIDDEN)

    @takes_declared(INPUTS)
    def propagate(self, session, frames, direction, start_frame, end_frame, first_frame_index, preview_fps, rerun,
                  memvos_linked_outputs=None):
        linked = memvos_linked_outputs
        check_session(session)
        clip = check_frames(frames)
        if direction not in DIRECTIONS:
            raise ValueError(f"direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
        if rerun not in RERUN:
            raise ValueError(f"rerun {rerun!r} is not one of {', '.join(RERUN)}")
        if not session.keyframes:
            raise ValueError("session has no keyframe: open the MemVOS Keyframes node's editor and paint the "
                             "objects on a frame (or connect a mask to it) before propagating")
        first, count = int(first_frame_index), clip.shape[0]
        start, end = frame_range(first, count, start_frame, end_frame)
        new_session, result, stale, reuse = self._propagated(session, frames, clip, first, direction, start, end,
                                                             rerun)
        fps = frames_fps(frames) or float(preview_fps)
        stems = frame_stems(clip, first)[start - first:end - first + 1]
        masks = MaskSet(tuple(result.object_ids), start, end - start + 1, tuple(clip.shape[1:3]), first, count,
                        keyframes=keyframe_list(session), model_id=session.model.model_id, result=result,
                        stems=stems, fps=fps)
        want_union, want_labels = wanted(linked, "mask"), wanted(linked, "label_map")
        unions, parts = [], []
        if want_union or want_labels:  # full size, whole range: only when connected
            for name in ("mask",) * want_union + ("label_map",) * want_labels:
                batch_warning("MemVOS Propagate", name, masks.num_frames, masks.frame_hw, 1 if name == "mask" else 3)
            progress, cancel = progress_and_cancel(masks.num_frames)  # a bar of its own: full-size work
            for t0, t1 in masks.chunks():
                cancel()
                part = masks.chunk(t0, t1)
                unions += [union_of(part)] if want_union else []
                parts.append(labels_of(part, masks.object_ids))
                progress(t1, masks.num_frames)
        labels = torch.cat(parts) if parts else None
        shown = masks.aligned_frames(clip)
        ui = write_clip_preview(shown, labels if labels is not None else masks.label_view(),
                                list(masks.object_ids), fps=fps, frame_offset=start, keyframes=masks.keyframes,
                                masks=masks, stale=stale, **reuse, **preview_bar(masks.frame_hw))
        if getattr(self, "_record", None) is not None:  # a span run next takes over its pages of kept frames
            self._record = (*self._record[:2], ui[0] if ui else None)
        close_clip(clip)
        union = to_output(torch.cat(unions)) if unions else None
        label_map = to_output(colour_labels(labels)) if want_labels else None
        result_tuple = (new_session, masks, union, label_map)
        return {"ui": {"memvos_preview": ui}, "result": result_tuple}

    def _propagated(self, session, frames, clip, first, direction, start, end, rerun):
        """``(new_session, result, stale ranges, reuse)``; ``reuse``: the last preview and the clip
        ranges computed since (``previous``, ``changed`` of :func:`write_preview`), or nothing when
        the whole range ran. The last run's again when only the wiring of the
        outputs changed (ComfyUI then runs the node again, with the same session and frames objects, to
        build an output it did not build before: no reason to propagate a long shot twice). With
        ``rerun="span"`` and a last run of this node over the same frames, only the frames the keyframe
        change affects run again. The run is the core's :meth:`Shot.propagate_again` in this node's
        run folders (propagation_runs.py): a cancelled run, whole or span, resumes when queued again.
        ``self._record``: ``(frames key, run record, preview entry of that run or None)``."""
        key = (direction, first, start, end, rerun)
        last = getattr(self, "_last", None)
        kept = getattr(self, "_record", None)
        if last is not None and last[0] == key and last[1]() is session and last[2]() is frames:
            return last[3], last[4], last[5], {"previous": kept[2], "changed": ()} if kept is not None else {}
        ready_network(session.model)
        steps = (end - start + 1) * (2 if direction == "both" else 1)
        progress, cancel = cancel_between_frames(*progress_and_cancel(steps))
        digest = frames_key(clip)
        shot = Shot(session, clip, first, digest, kept[1] if kept is not None and kept[0] == digest else None)
        shot.propagate_again(direction, start, end + 1, progress, cancel, rerun, run_folders())
        record = shot.record
        if shot.whole_because is None:
            LOG.info("MemVOS Propagate: propagated again only frames %s (rerun = span)",
                     ", ".join(f"{lo}..{hi - 1}" for lo, hi in record.spans) or "none")
        elif rerun == "span" and kept is not None:
            LOG.info("MemVOS Propagate: the whole range runs (rerun = span, but %s)",
                     "other frames" if kept[0] != digest else shot.whole_because)
        if record.resumed_at:
            LOG.info("MemVOS Propagate: resumed a cancelled run, %d of %d frames of work were done already",
                     record.resumed_at, steps)
        record = record.to(comfy_env.intermediate_device())
        reuse = {"previous": kept[2], "changed": record.spans} if shot.whole_because is None and kept else {}
        self._record = (digest, record, None)
        new_session, result, stale = shot.session.to(comfy_env.intermediate_device()), shot.result, record.stale
        try:
            self._last = (key, weakref.ref(session), weakref.ref(frames), new_session, result, stale)
        except TypeError:  # an input that cannot be referenced weakly: no reuse
            self._last = None
        return new_session, result, stale, reuse


NODE_CLASS_MAPPINGS = {"MemVOSPropagate": MemVOSPropagate}
NODE_DISPLAY_NAME_MAPPINGS = {"MemVOSPropagate": "MemVOS Propagate"}
