"""Frame preparation shared by every entry point: normalisation, padding, soft aggregation,
resizing to the internal resolution (spec §3.1, §3.7, §3.8)."""
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(rgb):
    """``[3,H,W]`` or ``[B,3,H,W]`` RGB in 0..1 -> ImageNet-normalised, same dtype."""
    mean = rgb.new_tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = rgb.new_tensor(IMAGENET_STD).view(3, 1, 1)
    return (rgb - mean) / std


def pad_amounts(h, w, multiple=16):
    """(left, right, top, bottom) zero padding to a multiple; the smaller half goes first."""
    ph, pw = (-h) % multiple, (-w) % multiple
    return (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)


def pad(x, multiple=16):
    pads = pad_amounts(*x.shape[-2:], multiple)
    return (F.pad(x, pads) if any(pads) else x), pads


def pad_normalized(image, rgb_zero=False, multiple=16):
    """Pad a normalised image ``[...,3,H,W]`` as its family does: with 0 (XMem pads after
    normalising) or, ``rgb_zero``, with the normalised value of black (Cutie pads the 0..1 image
    with zeros and normalises afterwards). Returns ``(padded, pads)``."""
    if not rgb_zero:
        return pad(image, multiple)
    pads = pad_amounts(*image.shape[-2:], multiple)
    if not any(pads):
        return image, pads
    left, right, top, bottom = pads
    h, w = image.shape[-2:]
    black = normalize(image.new_zeros(3, 1, 1))
    out = black.expand(*image.shape[:-2], h + top + bottom, w + left + right).clone()
    out[..., top:top + h, left:left + w] = image
    return out, pads


def unpad(x, pads):
    left, right, top, bottom = pads
    h, w = x.shape[-2:]
    return x[..., top:h - bottom, left:w - right]


def aggregate_logits(object_prob, dim=0):
    """Log-odds of the soft aggregation (see :func:`aggregate`), before the softmax. Cutie
    upsamples these and decides its attention masks on them.

    Always computed in float32: the clamp at 1-1e-7 is what the reference rounds to there."""
    p = object_prob.float()
    bg = torch.prod(1 - p, dim=dim, keepdim=True)
    new_prob = torch.cat([bg, p], dim).clamp(1e-7, 1 - 1e-7)
    return torch.log(new_prob / (1 - new_prob))


def aggregate(object_prob, dim=0):
    """Soft aggregation of per-object probabilities into ``[background, objects...]`` (spec §3.7)."""
    return torch.softmax(aggregate_logits(object_prob, dim), dim=dim)


# Masks may come at another size of the same picture (the network's internal size, a preview).
# "Same aspect ratio" means height/width ratios within 2 % of each other: that covers the 1-px
# rounding of sides down to ~50 px and still refuses 16:10 against 16:9 (11 % apart).
ASPECT_TOLERANCE = 0.02


def merge_partial_annotation(predicted, mask, valid_labels):
    """A mask that names only some objects overrides only those objects and the area it covers:
    predictions vanish where the mask has any object; objects it does not name keep the
    prediction (spec §4.2 step 7). predicted ``[K,H,W]`` (K may be < N for new objects)."""
    covered = mask.sum(0) > 0.5
    predicted = predicted.masked_fill(covered, 0)
    if valid_labels is None:
        return mask
    mask = mask.clone()
    for i in range(predicted.shape[0]):
        if (i + 1) not in valid_labels:
            mask[i] = predicted[i]
    return mask


def same_aspect(src_hw, dst_hw, tolerance=ASPECT_TOLERANCE):
    """Are ``(h, w)`` and ``(H, W)`` the same picture at two sizes (the one rule for masks)?"""
    (h, w), (H, W) = src_hw, dst_hw
    return abs((h / w) / (H / W) - 1) <= tolerance


def internal_size(h, w, short_side):
    """Size the network sees: shorter side ``short_side`` (``-1`` or ``None``: native)."""
    if short_side is None or short_side <= 0:
        return h, w
    if h <= w:
        return short_side, int(short_side * w / h)
    return int(short_side * h / w), short_side


def resize_image(x, size, antialias=False):
    """Bilinear resize of ``[...,C,H,W]`` (no-op when the size already matches)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    batched = x.dim() == 4
    x4 = x if batched else x.unsqueeze(0)
    out = F.interpolate(x4, size=size, mode="bilinear", align_corners=False, antialias=antialias)
    return out if batched else out[0]


def resize_mask(mask, size):
    """Nearest resize of ``[N,H,W]`` annotation masks (no-op when the size matches)."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    return F.interpolate(mask.unsqueeze(0).float(), size=size, mode="nearest")[0]
