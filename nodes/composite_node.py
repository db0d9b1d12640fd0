"""Composite: overlay preview, mattes, background replacement and inpainting prep, at source size."""
from . import comfy_env
from .common import SUGGESTIONS, check_frames, mask_to_image, parse_object_ids, to_output
from .compute import NodeProgress, working_budget
from .frame_source import FRAMES_INPUT, close_clip
from .inputs import Input, input_types, takes_declared
from .linked_outputs import HIDDEN, wanted
from .messages import batch_warning
from .mask_nodes import MASKS_INPUT, OBJECT_IDS, check_masks
from .mask_set import labels_of, union_of
from .propagate_node import write_clip_preview
from .rendered_clip import RenderedClip
from ..memvos_core.ops import composite as composite_ops
from ..memvos_core.ops import kernels
from ..memvos_core.ops.chunking import concat_as_made, read_chunk, run_chunked

MODES = ("overlay", "matte rgba", "matte on black", "replace background", "inpaint")


def _background_part(background, masks, t0, t1):
    """The background frames for mask frames t0..t1: one image for all, or the matching frames."""
    if background is None:
        return None
    count = background.shape[0]
    if count == 1:
        return background
    if count == masks.num_frames:
        return read_chunk(background, t0, t1)
    if count == masks.frames_count:
        offset = masks.clip_start - masks.frames_first_index
        return read_chunk(background, offset + t0, offset + t1)
    raise ValueError(f"background has {count} frames but the masks cover {masks.num_frames} frames: connect one "
                     "image, or a video as long as the frames")


class MemVOSComposite:
    DESCRIPTION = ("Hands the masks on, at the frames' full size. overlay: objects tinted in their colours "
                   "(a preview). matte rgba: the objects cut out with alpha. matte on black: frames times mask. "
                   "replace background: a colour or an image behind the objects. inpaint: the frames unchanged "
                   "and a grown, feathered mask (1 = fill) for ProPainter, DiffuEraser or any inpainting node. "
                   "mask and mask_image carry the mask used, for packs that take either.")
    CATEGORY = "MemVOS/composite"
    FUNCTION = "composite"
    OUTPUT_NODE = True
    RETURN_TYPES = ("IMAGE", "MASK", "IMAGE")
    RETURN_NAMES = ("image", "mask", "mask_image")
    LAZY_OUTPUTS = ("image", "mask", "mask_image")  # built only when connected (nodes/linked_outputs.py)
    OUTPUT_TOOLTIPS = (
        "The result of the mode (inpaint: the frames to inpaint, unchanged), at source size; built only when "
        "connected (the preview alone is made a chunk at a time: a long shot's batch would not fit in memory).",
        "The mask used (1 = object / fill), at source size; built only when connected.",
        "The same mask as a grey IMAGE (white = object / fill); built only when connected.",
    )

    INPUTS = (
        Input("frames", FRAMES_INPUT, tooltip="The frames the masks were propagated over."),
        MASKS_INPUT,
        Input("mode", list(MODES), "overlay", "What to make; see the node's description."),
        OBJECT_IDS,
        Input("opacity", "FLOAT", 0.5, "overlay: tint strength.", 0.0, 1.0, 0.05),
        Input("outline_px", "INT", 2, "overlay: outline width inside each object's edge; 0 = none.", 0, 64, 1),
        Input("draw_ids", "BOOLEAN", False, "overlay: write each object's id on it."),
        Input("background_color", "STRING", "#00ff00", "replace background: colour '#rrggbb' used when no "
              "background image is connected."),
        Input("grow_px", "INT", 8, "inpaint: grow the mask by this many pixels (covers edges and motion blur).",
              0, 256, 1),
        Input("feather_px", "FLOAT", 4.0, "inpaint: soften the grown mask's edge over this many pixels (never below "
              "1 on the object).", 0.0, 256.0, 0.5),
        Input("preview_fps", "FLOAT", 24.0, "Playback rate of the preview player.", 0.1, 1000.0, 0.01),
        Input("background", "IMAGE", tooltip="replace background: an image, or a video as long as the frames, put "
              "behind the objects.", optional=True),
        Input("suggestions", SUGGESTIONS, tooltip="Frames to annotate next, from Suggest Frames, marked on the "
              "preview's timeline.", optional=True),
        Input("clean_edges", "BOOLEAN", False, "replace background and matte rgba: estimate the objects' own colour "
              "at soft edges, so the old background does not tint them (slower).", optional=True),
    )

    @classmethod
    def INPUT_TYPES(cls):
        return input_types(cls.INPUTS, HIDDEN)

    @takes_declared(INPUTS)
    def composite(self, frames, masks, mode, object_ids, opacity, outline_px, draw_ids, background_color, grow_px,
                  feather_px, preview_fps, background, suggestions, clean_edges, memvos_linked_outputs=None):
        check_masks(masks)
        clip = check_frames(frames)
        frames = masks.aligned_frames(clip)
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        if background is not None:
            check_frames(background, "background")
        ids = masks.select(parse_object_ids(object_ids))
        if background is not None:
            _background_part(background, masks, 0, 1)  # a background of the wrong length fails before any work
        num_frames = masks.num_frames
        outline = int(outline_px) if mode == "overlay" else int(grow_px) if mode == "inpaint" else 0

        def work(t0, t1, device):
            rgb = read_chunk(frames, t0, t1).to(device)
            part = masks.chunk(t0, t1, ids).to(device)
            n = t1 - t0  # the chunk is already budget-sized: the ops take it whole
            if mode == "inpaint":
                prep = composite_ops.inpaint_prep(rgb, part, ids, grow_px=int(grow_px), feather_px=float(feather_px),
                                                  chunk_size=n)
                image, mask = rgb[..., :3].float(), prep.mask
            else:
                mask = union_of(part)
                if mode == "overlay":
                    image = composite_ops.overlay(rgb, part, ids, opacity=float(opacity), outline_px=int(outline_px),
                                                  draw_ids=bool(draw_ids), chunk_size=n)
                elif mode == "matte rgba":
                    image = composite_ops.matte(rgb, part, ids, mode="rgba", chunk_size=n,
                                                clean_edges=bool(clean_edges))
                elif mode == "matte on black":
                    image = composite_ops.matte(rgb, part, ids, mode="on_black", chunk_size=n)
                else:
                    back = _background_part(background, masks, t0, t1)
                    image = composite_ops.replace_background(
                        rgb, part, back if back is not None else background_color, ids, chunk_size=n,
                        clean_edges=bool(clean_edges))
            return image, mask, labels_of(part, ids)
        # float32 per source pixel: frames in, image out (RGBA), the objects' masks, the mask,
        # the ops' temporaries (~8 planes); plus the outline / grow kernel's own bytes.
        pixels = masks.frame_hw[0] * masks.frame_hw[1]
        per_pixel = 4 * (3 + 4 + len(ids) + 1 + 8) + 1 + kernels.bytes_per_pixel("dilate", comfy_env.get_torch_device(),
                                                                                outline)
        linked = [name for name in self.RETURN_NAMES if wanted(memvos_linked_outputs, name)]
        keyframes = [{"frame": k["frame"], "objects": [o for o in k["objects"] if o in ids]} for k in masks.keyframes]
        preview = {"fps": preview_fps, "frame_offset": masks.clip_start, "keyframes": keyframes,
                   "suggestions": tuple(suggestions or ()), "masks": masks}
        if not linked:  # the preview alone: each chunk composited as the preview reads it, nothing kept
            progress = NodeProgress(num_frames)
            device = comfy_env.get_torch_device()
            budget = working_budget(device)
            view = RenderedClip(work, num_frames, masks.frame_hw, 4 if mode == "matte rgba" else 3,
                                pixels * per_pixel, budget, device)
            preview_progress, preview_cancel = progress.stage(num_frames)
            ui = write_clip_preview(view, view.labels, ids, device=device, budget_bytes=budget,
                                    progress=preview_progress, cancel=preview_cancel, **preview)
            close_clip(clip)
            return {"ui": {"memvos_preview": ui}, "result": (None, None, None)}
        for name in linked:
            batch_warning("MemVOS Composite", name, num_frames, masks.frame_hw,
                          1 if name == "mask" else 4 if name == "image" and mode == "matte rgba" else 3)
        progress = NodeProgress(2 * num_frames)  # the frames, then the preview
        compute = progress.compute(num_frames)
        parts = run_chunked(num_frames, work, bytes_per_frame=pixels * per_pixel, compute=compute,
                            source_device=frames.device)
        # each chunk freed as it is copied: the batch is held once, not beside its chunks
        image, mask, labels = concat_as_made((parts.pop(0) for _ in range(len(parts))), num_frames)
        preview_progress, preview_cancel = progress.stage(num_frames)
        ui = write_clip_preview(image[..., :3], labels, ids, device=compute.device, budget_bytes=compute.budget_bytes,
                                progress=preview_progress, cancel=preview_cancel, **preview)
        close_clip(clip)
        outputs = (to_output(image) if "image" in linked else None, to_output(mask) if "mask" in linked else None,
                   to_output(mask_to_image(mask)) if "mask_image" in linked else None)
        return {"ui": {"memvos_preview": ui}, "result": outputs}


NODE_CLASS_MAPPINGS = {"MemVOSComposite": MemVOSComposite}
NODE_DISPLAY_NAME_MAPPINGS = {"MemVOSComposite": "MemVOS Composite"}
