"""OpenEXR matte sequences for compositing apps (Nuke, Fusion, After Effects, Resolve).

One half-float file per frame, ``<folder>/<name>.<frame number>.exr``: the combined alpha as
``A``, each object's matte as its own layer ``<object name>.A``, and optionally the foreground
colour as ``R``, ``G``, ``B`` (straight or premultiplied by ``A``). The data window is the
bounding box of the pixels any matte covers (the display window is the whole frame), so empty
space costs nothing. Each file is written under a hidden ``.part`` name and renamed into place:
a reader never finds half a frame. Needs the official bindings: ``pip install OpenEXR``.
"""
import os

import numpy as np

COMPRESSIONS = ("piz", "zip", "dwaa", "none")
_COMPRESSION_NAMES = {"piz": "PIZ_COMPRESSION", "zip": "ZIP_COMPRESSION", "dwaa": "DWAA_COMPRESSION",
                      "none": "NO_COMPRESSION"}
HALF_MAX = 65504.0


class ExrUnavailable(ImportError):
    pass


def openexr():
    """The ``OpenEXR`` module, or one clear error saying how to get it."""
    try:
        import OpenEXR
    except ImportError:
        raise ExrUnavailable("EXR output needs the OpenEXR package, which is not installed: run "
                             "'pip install OpenEXR' in ComfyUI's Python environment (or pick another format)") from None
    return OpenEXR


def check_compression(compression):
    if compression not in COMPRESSIONS:
        raise ValueError(f"EXR compression {compression!r} is not one of {', '.join(COMPRESSIONS)}")
    return compression


def check_layer_name(name):
    """EXR layer names end at a dot; our own names must not contain one (nor be empty)."""
    text = str(name).strip()
    if not text or "." in text or any(ord(c) < 32 for c in text):
        raise ValueError(f"EXR layer name {name!r}: give a non-empty name without dots or control characters")
    return text


def data_window(cover):
    """``(y0, y1, x0, x1)`` inclusive bounding box of the True pixels of ``cover [H,W]``; one
    pixel at the origin when nothing is covered (EXR needs a non-empty window)."""
    rows, cols = np.flatnonzero(cover.any(1)), np.flatnonzero(cover.any(0))
    if rows.size == 0:
        return 0, 0, 0, 0
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def _half(plane):
    return np.ascontiguousarray(np.clip(plane, -HALF_MAX, HALF_MAX).astype(np.float16))


class ExrSequence:
    """``write(number, layers, alpha, rgb=None)`` writes one frame; ``abort()`` removes the
    unfinished file of a frame interrupted while writing (finished frames stay, like PNGs)."""

    def __init__(self, folder, name, compression="piz", digits=4):
        self.module = openexr()
        self.folder, self.name, self.digits = os.fspath(folder), name, int(digits)
        self.compression = getattr(self.module, _COMPRESSION_NAMES[check_compression(compression)])
        self.written = 0
        os.makedirs(self.folder, exist_ok=True)

    def path(self, number):
        return os.path.join(self.folder, f"{self.name}.{int(number):0{self.digits}d}.exr")

    def write(self, number, layers, alpha, rgb=None, attributes=None):
        """One frame: ``layers`` {layer name: float [H,W] matte 0..1}, ``alpha`` the combined
        float [H,W], ``rgb`` float [H,W,3] (already premultiplied if that is wanted) or None.
        numpy arrays or CPU tensors. Returns the file's path."""
        alpha = np.asarray(alpha, dtype=np.float32)
        height, width = alpha.shape
        planes = {"A": alpha}
        for name, plane in layers.items():
            planes[f"{check_layer_name(name)}.A"] = np.asarray(plane, dtype=np.float32)
        if rgb is not None:
            rgb = np.asarray(rgb, dtype=np.float32)
            planes.update(R=rgb[..., 0], G=rgb[..., 1], B=rgb[..., 2])
        for key, plane in planes.items():
            if plane.shape != (height, width):
                raise ValueError(f"EXR channel {key} is {plane.shape}, the alpha {alpha.shape}: give planes of one "
                                 "size")
        cover = np.zeros((height, width), bool)
        for key, plane in planes.items():
            if key not in ("R", "G", "B"):  # colour outside every matte is not part of the object
                cover |= plane > 0
        y0, y1, x0, x1 = data_window(cover)
        channels = {key: _half(plane[y0:y1 + 1, x0:x1 + 1]) for key, plane in planes.items()}
        header = {"compression": self.compression, "type": self.module.scanlineimage,
                  "dataWindow": (np.array([x0, y0], np.int32), np.array([x1, y1], np.int32)),
                  "displayWindow": (np.array([0, 0], np.int32), np.array([width - 1, height - 1], np.int32))}
        header.update(attributes or {})
        path = self.path(number)
        tmp = os.path.join(self.folder, f".{os.path.basename(path)}.part")
        try:
            with self.module.File(header, channels) as exr:
                exr.write(tmp)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        self.written += 1
        return path

    def abort(self):
        for name in os.listdir(self.folder):
            if name.startswith(f".{self.name}.") and name.endswith(".exr.part"):
                os.remove(os.path.join(self.folder, name))


def read_exr(path):
    """``{channel name: float32 [H,W]}`` at the display window's size (outside the data window
    0), read back with the OpenEXR bindings (for tests, tools and previews)."""
    module = openexr()
    with module.File(os.fspath(path), separate_channels=True) as exr:
        header = exr.header()
        (dx0, dy0), (dx1, dy1) = header["dataWindow"]
        (wx0, wy0), (wx1, wy1) = header["displayWindow"]
        out = {}
        for name, channel in exr.channels().items():
            full = np.zeros((wy1 - wy0 + 1, wx1 - wx0 + 1), np.float32)
            full[dy0 - wy0:dy1 - wy0 + 1, dx0 - wx0:dx1 - wx0 + 1] = channel.pixels
            out[name] = full
    return out


__all__ = ["COMPRESSIONS", "ExrSequence", "ExrUnavailable", "check_compression", "openexr", "read_exr"]
