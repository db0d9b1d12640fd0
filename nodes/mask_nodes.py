"""Select Objects (a subset of the propagated objects as a plain MASK) and Refine Masks."""
import torch

from .common import MASKS, check_frames, check_type, mask_to_image, parse_object_ids, progress_and_cancel, to_output
from .compute import NodeProgress
from .frame_source import FRAMES_INPUT, close_clip
from .inputs import Input, input_types, takes_declared
from .linked_outputs import HIDDEN, wanted
from .mask_set import MaskSet, StoredMasks, labels_of, union_of
from .messages import batch_warning
from .propagate_node import write_clip_preview
from .propagation_runs import cache_root
from .rendered_clip import RenderedClip
from ..memvos_core.ops.chunking import concat_as_made, read_chunk
from ..memvos_core.ops.matte_edges import matte_preview, matte_preview_size
from ..memvos_core.session import ResultStore
from ..memvos_core.ops.refine_chain import RefineSteps, refine_masks


def check_masks(masks, name="masks"):
    return check_type(masks, MaskSet, "MEMVOS_MASKS", name,
                      "connect the masks output of MemVOS Propagate, Select Objects or Refine Masks")


MASKS_INPUT = Input("masks", MASKS, tooltip="Per-object masks from Propagate, Select Objects or Refine Masks.")
OBJECT_IDS = Input("object_ids", "STRING", "", "Object ids to use, like '1, 3'; empty = every object.",
                   options={"multiline": False})


def union_mask(masks, progress=None, cancel=None):
    """The union of every object, ``[T,H,W]`` at source size, built a chunk at a time (a long shot's
    takes seconds: ``progress(done, total)`` after each chunk, ``cancel()`` before each)."""
    def parts():
        for t0, t1 in masks.chunks():
            if cancel is not None:
                cancel()
            yield masks.union(t0, t1)
            if progress is not None:
                progress(t1, masks.num_frames)
    return concat_as_made(parts(), masks.num_frames)


class MemVOSSelectObjects:
    DESCRIPTION = ("Picks some of the propagated objects: their masks for the other MemVOS nodes, and their "
                   "union as a plain MASK (1 = object) and as an IMAGE (white = object) for any other node.")
    CATEGORY = "MemVOS/masks"
    FUNCTION = "select"
    RETURN_TYPES = (MASKS, "MASK", "IMAGE")
    RETURN_NAMES = ("masks", "mask", "mask_image")
    LAZY_OUTPUTS = ("mask", "mask_image")  # built only when connected (nodes/linked_outputs.py)
    OUTPUT_TOOLTIPS = ("The chosen objects' masks.", "Union of the chosen objects (1 = object).",
                       "The same union as a grey IMAGE (white = object).")

    INPUTS = (Input("masks", MASKS, tooltip="Per-object masks from Propagate or Refine Masks."), OBJECT_IDS)

    @classmethod
    def INPUT_TYPES(cls):
        return input_types(cls.INPUTS, HIDDEN)

    @takes_declared(INPUTS)
    def select(self, masks, object_ids, memvos_linked_outputs=None):
        check_masks(masks)
        chosen = masks.subset(parse_object_ids(object_ids))
        # A long shot's full-size union does not fit in memory: built only when connected.
        mask, image = (wanted(memvos_linked_outputs, n) for n in ("mask", "mask_image"))
        union = union_mask(chosen, *progress_and_cancel(chosen.num_frames)) if mask or image else None
        return (chosen, to_output(union) if mask else None, to_output(mask_to_image(union)) if image else None)


class MemVOSRefine:
    DESCRIPTION = ("Cleans up the masks, in this order: temporal smoothing (needs frames), hard threshold, "
                   "fill holes, remove small islands, grow or shrink, edge refinement along the picture's edges "
                   "(needs frames), feather; then the Refine Matte controls: contrast, shift edge (choke), reduce "
                   "chatter and motion blur (both need frames). Sizes are pixels at the source size. Every step "
                   "is off at its default; each object is refined alone. The player shows the matte over a "
                   "checkerboard.")
    CATEGORY = "MemVOS/masks"
    FUNCTION = "refine"
    RETURN_TYPES = (MASKS, "MASK")
    RETURN_NAMES = ("masks", "mask")
    LAZY_OUTPUTS = ("mask",)  # built only when connected (nodes/linked_outputs.py)
    OUTPUT_TOOLTIPS = ("The refined per-object masks (kept on disk in ComfyUI's temp folder and read a chunk at "
                       "a time: a long shot's never fill the RAM).",
                       "Union of the refined masks (1 = object), at source size; built only when connected (a "
                       "long shot's would not fit in memory: use Save Masks or Get Masks there).")

    INPUTS = (
        Input("masks", MASKS, tooltip="Per-object masks from Propagate or Select Objects."),
        Input("temporal_radius", "INT", 0, "Frames on each side averaged where the picture is still (removes "
              "flicker, leaves motion alone); 0 = off.", 0, 8, 1),
        Input("binarize", "BOOLEAN", False, "Make the masks hard (0 or 1) at the threshold level."),
        Input("threshold", "FLOAT", 0.5, "Level for binarize: a pixel is object where mask >= level.", 0.0, 1.0, 0.01),
        Input("fill_holes", "BOOLEAN", False, "Fill background regions enclosed by an object."),
        Input("remove_islands_px", "INT", 0, "Remove object specks smaller than this many pixels; 0 = off.",
              0, 1_000_000, 1),
        Input("grow_px", "INT", 0, "Grow (positive) or shrink (negative) the masks by this many pixels.", -256, 256, 1),
        Input("edge_radius", "INT", 0, "Snap mask edges to the picture's edges within this radius (guided filter; "
              "needs frames); 0 = off.", 0, 64, 1),
        Input("feather_px", "FLOAT", 0.0, "Soften the edges over this many pixels; 0 = off.", 0.0, 256.0, 0.5),
        Input("max_hole_px", "INT", 0, "Fill only holes up to this many pixels; 0 = any size.", 0, 1_000_000, 1,
              advanced=True),
        Input("edge_eps", "FLOAT", 0.001, "Edge refinement regularisation: smaller follows fainter edges.",
              0.00001, 1.0, 0.0001, advanced=True),
        Input("temporal_color_sigma", "FLOAT", 0.05, "Colour change (0..1) that counts as motion for temporal "
              "smoothing; raise it for noisy footage.", 0.001, 1.0, 0.001, advanced=True),
        Input("frames", FRAMES_INPUT, tooltip="The frames the masks belong to; needed for temporal smoothing, edge "
              "refinement, reduce chatter and motion blur.", optional=True),
        Input("contrast", "FLOAT", 0.0, "Steeper soft edges: 0 = off, 1 = hard at 0.5 (after feather).",
              0.0, 1.0, 0.01, optional=True),
        Input("shift_edge_px", "FLOAT", 0.0, "Move the edges out (positive) or choke them in (negative) by this many "
              "pixels, fractions included.", -64.0, 64.0, 0.25, optional=True),
        Input("reduce_chatter", "FLOAT", 0.0, "Steady edges that jitter between frames: strength of the smoothing "
              "over time, near edges only, where the picture is still (needs frames); 0 = off.", 0.0, 1.0, 0.05,
              optional=True),
        Input("chatter_frames", "INT", 2, "Frames on each side that reduce chatter averages.", 1, 8, 1,
              advanced=True, optional=True),
        Input("motion_blur", "FLOAT", 0.0, "Blur the matte along the picture's motion (optical flow) over this "
              "fraction of a frame interval: 0.5 = a 180-degree shutter; 0 = off (needs frames).", 0.0, 2.0, 0.05,
              optional=True),
        Input("preview_fps", "FLOAT", 24.0, "Playback rate of the preview player.", 0.1, 1000.0, 0.01,
              advanced=True, optional=True),
    )

    @classmethod
    def INPUT_TYPES(cls):
        return input_types(cls.INPUTS, HIDDEN)

    @takes_declared(INPUTS)
    def refine(self, masks, temporal_radius, binarize, threshold, fill_holes, remove_islands_px, grow_px, edge_radius,
               feather_px, max_hole_px, edge_eps, temporal_color_sigma, frames, contrast, shift_edge_px,
               reduce_chatter, chatter_frames, motion_blur, preview_fps, memvos_linked_outputs=None):
        check_masks(masks)
        steps = RefineSteps(temporal_radius=int(temporal_radius), temporal_color_sigma=float(temporal_color_sigma),
                            binarize=bool(binarize), threshold=float(threshold), fill_holes=bool(fill_holes),
                            max_hole_px=int(max_hole_px), remove_islands_px=int(remove_islands_px),
                            grow_px=int(grow_px), edge_radius=int(edge_radius), edge_eps=float(edge_eps),
                            feather_px=float(feather_px), contrast=float(contrast),
                            shift_edge_px=float(shift_edge_px), chatter_strength=float(reduce_chatter),
                            chatter_radius=int(chatter_frames), motion_blur=float(motion_blur))
        guide = None
        if frames is not None:
            guide = masks.aligned_frames(check_frames(frames))
        elif steps.needs_frames:
            raise ValueError("frames is not connected, but temporal_radius, edge_radius, reduce_chatter and "
                             "motion_blur need them: connect the frames the masks were propagated over, or set "
                             "them to 0")
        # Chunks go to ComfyUI's device; each refined chunk goes to disk as soon as it is done.
        stored = StoredMasks(ResultStore.temporary(cache_root()), masks.object_ids)
        want_union = wanted(memvos_linked_outputs, "mask")
        # the refinement, the preview, then the union when its output is connected
        progress = NodeProgress((3 if want_union else 2) * masks.num_frames)
        compute = progress.compute(masks.num_frames)
        refine_masks(masks, steps, guide, compute=compute, out_dtype=torch.float16, sink=stored.put)
        stored.store.flush()
        result = masks.with_stored(stored)
        ui = self._preview(result, guide, preview_fps, progress, compute)
        close_clip(guide)
        union = None
        if want_union:
            batch_warning("MemVOS Refine Masks", "mask", result.num_frames, result.frame_hw, 1)
            union = to_output(union_mask(result, *progress.stage(result.num_frames)))
        return {"ui": {"memvos_preview": ui}, "result": (result, union)}

    @staticmethod
    def _preview(result, guide, fps, progress, compute):
        """The refined matte over a checkerboard (the frames through it, when connected), at
        preview size, rendered a slice at a time as the player's pages are written."""
        ids = list(result.object_ids)
        size = matte_preview_size(result.frame_hw)

        def work(t0, t1, device):
            part = result.chunk(t0, t1).to(device)
            # Labels of the pixels the nearest resize picks (the same pixels, at a sixteenth of the
            # bytes at 720p), then the union; the masks are freed before the frames are read.
            labels = labels_of(torch.nn.functional.interpolate(part, size=size, mode="nearest"), ids)
            alpha = union_of(part)
            del part
            image = matte_preview(None if guide is None else read_chunk(guide, t0, t1).to(device), alpha)
            return image, None, labels
        # float32 per source pixel at the peak: the union beside the objects' masks, or beside the
        # frames (RGB, decoded) and their resize (under a plane).
        per_frame = result.frame_hw[0] * result.frame_hw[1] * 4 * (max(len(ids), 3 + 1) + 1)
        view = RenderedClip(work, result.num_frames, size, 3, per_frame, compute.budget_bytes, compute.device,
                            dtype=torch.uint8)
        preview_progress, preview_cancel = progress.stage(result.num_frames)
        return write_clip_preview(view, view.labels, ids, fps=float(fps), frame_offset=result.clip_start,
                                  device=compute.device, budget_bytes=compute.budget_bytes,
                                  progress=preview_progress, cancel=preview_cancel)


NODE_CLASS_MAPPINGS = {"MemVOSSelectObjects": MemVOSSelectObjects, "MemVOSRefine": MemVOSRefine}
NODE_DISPLAY_NAME_MAPPINGS = {"MemVOSSelectObjects": "MemVOS Select Objects",
                              "MemVOSRefine": "MemVOS Refine Masks"}
