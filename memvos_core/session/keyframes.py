"""Keyframes: the artist's masks, with the frame they belong to."""
from dataclasses import dataclass

import torch

from ..runtime.frames import same_aspect


@dataclass(frozen=True, eq=False)
class Keyframe:
    """One annotated frame. ``image`` uint8 ``[H,W,3]``; ``labels`` uint8 ``[H,W]`` (object id
    per pixel, 0 = none); ``object_ids``: the objects this frame annotates (an object listed here
    but absent from ``labels`` is annotated as not visible)."""

    frame_index: int
    image: torch.Tensor
    labels: torch.Tensor
    object_ids: tuple

    @property
    def size(self):
        return tuple(self.labels.shape)

    def one_hot(self, object_ids):
        """float ``[len(object_ids),H,W]``: 1 where the label is that object."""
        return torch.stack([(self.labels == o) for o in object_ids]).float()


def same_keyframe(a, b):
    """Whether two keyframes annotate the same frame with the same image, objects and masks."""
    return a is b or (a is not None and b is not None and a.frame_index == b.frame_index
                      and tuple(a.object_ids) == tuple(b.object_ids) and torch.equal(a.labels, b.labels)
                      and torch.equal(a.image, b.image))


def as_uint8_image(image, what="image"):
    """ComfyUI IMAGE frame ``[H,W,3]`` float 0..1 (or uint8) -> uint8 ``[H,W,3]`` on CPU."""
    image = torch.as_tensor(image)
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 3 or image.shape[-1] not in (3, 4):
        raise ValueError(f"{what} must be [H,W,3] (got shape {tuple(image.shape)}): pass one RGB frame")
    image = image[..., :3]
    if image.dtype == torch.uint8:
        return image.cpu()
    return (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()


def mask_to_binary(mask, frame_hw, what="mask"):
    """A MASK ``[H,W]`` / ``[1,H,W]`` in 0..1 -> bool ``[H,W]`` at the frame's size.

    A mask of another size but the same aspect ratio is resized (nearest); another aspect
    ratio is an error, since the mask cannot belong to this frame."""
    mask = torch.as_tensor(mask).detach()
    if mask.dim() == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.dim() != 2:
        raise ValueError(f"{what} must be [H,W] or [1,H,W] (got shape {tuple(mask.shape)}): pick one frame's mask")
    h, w = frame_hw
    mh, mw = mask.shape
    if (mh, mw) != (h, w):
        if not same_aspect((mh, mw), (h, w)):
            raise ValueError(
                f"{what} {mh}x{mw} does not match the frame {h}x{w} (different aspect ratio): "
                "resize the mask or pick the matching frames")
        mask = torch.nn.functional.interpolate(mask[None, None].float(), size=(h, w), mode="nearest")[0, 0]
    return mask.float() > 0.5
