"""A 3x5 bitmap font of the ten digits, for object-id labels on overlays (no font files)."""
import torch

_DIGITS = {
    "0": ("111", "101", "101", "101", "111"),
    "1": ("010", "110", "010", "010", "111"),
    "2": ("111", "001", "111", "100", "111"),
    "3": ("111", "001", "111", "001", "111"),
    "4": ("101", "101", "111", "001", "001"),
    "5": ("111", "100", "111", "001", "111"),
    "6": ("111", "100", "111", "101", "111"),
    "7": ("111", "001", "010", "010", "010"),
    "8": ("111", "101", "111", "101", "111"),
    "9": ("111", "101", "111", "001", "111"),
}


def render_number(value, scale=2, device=None):
    """Bool bitmap ``[5*scale, (4*len-1)*scale]`` of a non-negative integer (1-pixel gaps)."""
    text = str(int(value))
    if not text.isdigit():
        raise ValueError(f"cannot draw {value!r}: only non-negative integers have glyphs")
    columns = []
    for i, ch in enumerate(text):
        if i:
            columns.append(["0"] * 5)
        glyph = _DIGITS[ch]
        columns.extend([[row[c] for row in glyph] for c in range(3)])
    bitmap = torch.tensor([[cell == "1" for cell in col] for col in columns], device=device).t()
    scale = max(1, int(scale))
    return bitmap.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
