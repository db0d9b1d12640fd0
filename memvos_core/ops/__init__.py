"""Batch-wise torch ops on propagated masks: refine, stabilise, composite, suggest frames.

Layouts (ComfyUI conventions):
* frames: IMAGE ``[T,H,W,3]`` float 0..1;
* masks: MASK ``[T,H,W]`` float 0..1, 1 = object (ComfyUI polarity: 1 = select / fill);
* per-object soft masks ``[T,N,H,W]`` float 0..1 with a list of N object ids;
* label maps ``[T,H,W]`` integer, 0 background, else object id.
Ops process long clips in chunks of frames bounded by a memory budget (``chunking``), on the
device their inputs are on or on ``compute=Compute(device=..., output_device=...)``; on CPU
tensors the morphology goes to OpenCV or SciPy (``kernels``), elsewhere to torch.
"""
from .chunking import Compute, OpCancelled
from .composite import InpaintPrep, inpaint_prep, mask_to_image, matte, overlay, replace_background
from .inputs import ObjectMasks
from .refine import feather, fill_holes, grow_shrink, refine_edges, remove_islands, threshold
from .refine_chain import RefineSteps, refine_masks
from .suggest import (Suggestion, candidate_suggestions, compute_candidate_keys, frame_signals,
                      rank_suggestions, select_annotation_candidates)
from .temporal import TemporalStabilizer, stabilize

__all__ = [
    "Compute", "InpaintPrep", "ObjectMasks", "OpCancelled", "RefineSteps", "Suggestion", "TemporalStabilizer",
    "candidate_suggestions",
    "compute_candidate_keys", "feather", "fill_holes", "frame_signals", "grow_shrink", "inpaint_prep",
    "mask_to_image", "matte", "overlay", "rank_suggestions", "refine_edges", "refine_masks", "remove_islands",
    "replace_background", "select_annotation_candidates", "stabilize", "threshold",
]
