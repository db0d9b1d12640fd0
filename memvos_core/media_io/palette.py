"""The DAVIS colour palette, in one place: overlays use it, and the CLI writes indexed PNGs with it.

DAVIS annotations are indexed PNGs whose palette is the PASCAL VOC colour map: the bits of the
index are spread over the high bits of R, G and B (index 1 is dark red, 2 dark green, 3 olive...).
"""
import torch

PALETTE_SIZE = 256


def _color_of_index(index):
    r = g = b = 0
    for bit in range(8):
        r |= ((index >> (3 * bit)) & 1) << (7 - bit)
        g |= ((index >> (3 * bit + 1)) & 1) << (7 - bit)
        b |= ((index >> (3 * bit + 2)) & 1) << (7 - bit)
    return r, g, b


_DAVIS = tuple(_color_of_index(i) for i in range(PALETTE_SIZE))


def davis_palette():
    """The 256 DAVIS colours as a uint8 tensor ``[256, 3]`` (RGB 0..255; entry 0 is black)."""
    return torch.tensor(_DAVIS, dtype=torch.uint8)


def palette_bytes():
    """Flat ``[r0, g0, b0, r1, ...]`` list of 768 ints for ``PIL.Image.putpalette``."""
    return [channel for color in _DAVIS for channel in color]


def palette_index(object_id):
    """Palette entry of an object id: the id itself for 1..255; larger ids wrap onto 1..255 so
    that no object is ever drawn black like the background."""
    object_id = int(object_id)
    if object_id <= 0:
        raise ValueError(f"object id {object_id} is not positive: 0 is the background, ids start at 1")
    return (object_id - 1) % (PALETTE_SIZE - 1) + 1


def object_colors(object_ids, device=None, colors=None):
    """Float RGB colours ``[N, 3]`` in 0..1 for the given object ids, on ``device``.

    ``colors``: optional ``{object_id: (r, g, b)}`` overrides, components in 0..1."""
    rows = []
    for object_id in object_ids:
        if colors is not None and object_id in colors:
            rgb = tuple(float(c) for c in colors[object_id])
            if len(rgb) != 3 or not all(0.0 <= c <= 1.0 for c in rgb):
                raise ValueError(f"colour for object {object_id} is {colors[object_id]!r}: "
                                 "give three components in 0..1")
            rows.append(rgb)
        else:
            rows.append(tuple(c / 255.0 for c in _DAVIS[palette_index(object_id)]))
    return torch.tensor(rows, dtype=torch.float32, device=device).reshape(-1, 3)


def labels_from_colours(rgb):
    """A DAVIS-coloured label map -> uint8 object ids ``[...]``, or a ValueError.

    ``rgb``: uint8 ``[..., 3]``. The DAVIS colour of index i spreads i's bits over the top bits of
    R, G and B (3, 3 and 2 bits), so every palette channel value is a multiple of 32 (B: 64) and
    the index is read back from those bits. Up to 8 levels off per channel are accepted (8-bit
    conversions, mild compression); any other colour is not a label and is refused."""
    rgb = torch.as_tensor(rgb)
    if rgb.dtype != torch.uint8 or rgb.shape[-1] != 3:
        raise ValueError(f"label map must be uint8 RGB [..., 3] (got {rgb.dtype} {tuple(rgb.shape)})")
    wide = rgb.to(torch.int32)
    steps = torch.tensor([32, 32, 64], dtype=torch.int32)
    levels = torch.div(wide + steps // 2, steps, rounding_mode="floor")
    off = (wide - levels * steps).abs().amax(-1)
    bad = (off > 8) | (levels[..., 0] > 7) | (levels[..., 1] > 7) | (levels[..., 2] > 3)
    if bool(bad.any()):
        where = bad.nonzero()[0].tolist()
        colour = tuple(rgb[tuple(where)].tolist())
        raise ValueError(f"{int(bad.sum())} pixels are not DAVIS palette colours (e.g. {colour} at {where}): "
                         "connect a label map drawn in the DAVIS palette (like Propagate's label_map), "
                         "with no smoothing or resampling of its colours")
    index = torch.zeros(rgb.shape[:-1], dtype=torch.int32)
    # Palette bit k of a channel (from the top) holds index bit 3k (R), 3k+1 (G), 3k+2 (B).
    for channel, bits in ((0, 3), (1, 3), (2, 2)):
        level = levels[..., channel]
        for k in range(bits):
            index |= ((level >> (bits - 1 - k)) & 1) << (3 * k + channel)
    return index.to(torch.uint8)
