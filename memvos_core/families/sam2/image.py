"""SAM 2.1's image path as a library call: embed a frame once, then turn any number of prompt
sets (clicks, a box, a previous low-res mask) into masks and predicted IoUs on it.

This is what the keyframe editor's click tool needs: :func:`embed_frame` is the slow part
(the Hiera encoder) and its result is a plain value to keep and reuse; :func:`predict` costs
only the prompt encoder and the mask decoder.
"""
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ...runtime.frames import normalize
from .heads import choose_masks


class FrameEmbedding(NamedTuple):
    """One frame's features for prompting (stride-16 map with the no-memory code added, the two
    high-res maps) and the frame's size ``(H, W)`` in pixels."""

    feat: torch.Tensor
    high_res: tuple
    frame_hw: tuple


def image_input(rgb, image_size):
    """An ``H x W x 3`` uint8 RGB array (or ``[3,H,W]`` float tensor in [0,1]) -> the image
    predictor's input ``[1,3,S,S]``: bilinear resize with antialiasing, then normalisation."""
    if isinstance(rgb, np.ndarray):
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"frame must be an H x W x 3 uint8 RGB array, got {rgb.dtype} {rgb.shape}")
        rgb = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255.0
    x = F.interpolate(rgb[None].float(), size=(image_size, image_size), mode="bilinear",
                      align_corners=False, antialias=True)
    return normalize(x)


@torch.inference_mode()
def embed_frame(network, rgb):
    """The reusable embedding of one frame (see :class:`FrameEmbedding`)."""
    hw = tuple(rgb.shape[:2]) if isinstance(rgb, np.ndarray) else tuple(rgb.shape[-2:])
    device = network.no_mem_embed.device
    feat, _, high_res = network.embed_image(image_input(rgb, network.image_size).to(device))
    feat = feat + network.no_mem_embed.view(1, -1, 1, 1)
    return FrameEmbedding(feat, tuple(high_res), hw)


def prompt_points(points, labels, box, frame_hw, image_size, device=None):
    """Clicks ``(x, y)`` in frame pixels (labels 1 positive, 0 negative) and an optional box
    ``(x0, y0, x1, y1)`` -> model coordinates ``[1,P,2]`` and labels ``[1,P]`` (box corners
    first, labels 2 and 3), or ``(None, None)`` without any."""
    h, w = frame_hw
    coords, labs = [], []
    if box is not None:
        box = [float(v) for v in box]
        if len(box) != 4:
            raise ValueError(f"box must be (x0, y0, x1, y1), got {box}")
        coords += [box[:2], box[2:]]
        labs += [2, 3]
    if points is not None:
        points = [[float(v) for v in p] for p in points]
        labels = [int(v) for v in labels] if labels is not None else []
        if len(labels) != len(points) or any(len(p) != 2 for p in points):
            raise ValueError("points need one (x, y) pair and one label (1 positive, 0 negative) each")
        if any(v not in (0, 1) for v in labels):
            raise ValueError(f"point labels must be 1 (positive) or 0 (negative), got {labels}")
        coords += points
        labs += labels
    if not coords:
        return None, None
    xy = torch.tensor(coords, dtype=torch.float32)[None]
    xy = xy / torch.tensor([w, h], dtype=torch.float32) * image_size
    return xy.to(device), torch.tensor(labs, dtype=torch.int32, device=device)[None]


@torch.inference_mode()
def predict(network, embedding, points=None, labels=None, box=None, mask_logits=None, multimask=True):
    """Masks for one prompt set on an embedded frame: ``(logits [M,H,W] at frame size,
    predicted IoUs [M], low-res logits [M,S/4,S/4] clamped to +-32 to feed back as
    ``mask_logits``)``; ``M`` is 3 with ``multimask`` (for one click), else 1 (token 0, or the
    best multimask output where token 0 is unstable). No object-score masking: this is the
    image predictor, not the tracker."""
    device = embedding.feat.device
    coords, labs = prompt_points(points, labels, box, embedding.frame_hw, network.image_size, device)
    if coords is None and mask_logits is None:
        raise ValueError("predict needs a prompt: clicks, a box or a previous mask")
    if mask_logits is not None:
        mask_logits = torch.as_tensor(mask_logits, dtype=torch.float32, device=device)
        mask_logits = mask_logits.reshape(1, 1, *mask_logits.shape[-2:])
    masks, ious, _, _ = network.decode(embedding.feat, list(embedding.high_res), coords, labs, mask_logits)
    masks, ious = choose_masks(masks, ious, multimask)
    full = F.interpolate(masks.float(), size=embedding.frame_hw, mode="bilinear", align_corners=False)
    return full[0], ious[0], masks.clamp(-32.0, 32.0)[0]


def embedding_bytes(embedding):
    """What a kept :class:`FrameEmbedding` costs, for the click cache's bound."""
    return sum(t.numel() * t.element_size() for t in (embedding.feat, *embedding.high_res))
