"""Reading shots and annotations from disk and writing masks, for the command line."""
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .palette import palette_bytes

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")


class MediaError(ValueError):
    """Bad input media; the message says which file and what to do."""


class FolderFrames:
    """Frames of a folder of images, read lazily one at a time: ``frames[i]`` is uint8 ``[H,W,3]``."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.paths = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not self.paths:
            raise MediaError(f"no frames in {self.folder}: expected images ({', '.join(IMAGE_EXTENSIONS)})")
        self.stems = [p.stem for p in self.paths]

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        try:
            return torch.from_numpy(np.array(Image.open(self.paths[i]).convert("RGB")))
        except OSError as exc:
            raise MediaError(f"frame {self.paths[i]} could not be read ({exc})") from None


class VideoFrames:
    """Frames of a video file (decoded with PyAV, which ComfyUI installs); sequential reads are
    streamed, so a long shot is never held in memory."""

    def __init__(self, path):
        try:
            import av
        except ImportError:
            raise MediaError(f"reading {path} needs PyAV: pip install av (or pass a folder of frames)") from None
        self.path = str(path)
        self._av = av
        with av.open(self.path) as container:
            stream = container.streams.video[0]
            count = stream.frames or sum(1 for _ in container.decode(video=0))
        self.stems = [f"{i:05d}" for i in range(count)]
        self._iter, self._next = None, 0

    def __len__(self):
        return len(self.stems)

    def __getitem__(self, i):
        if self._iter is None or i < self._next:
            self._container = self._av.open(self.path)
            self._iter = self._container.decode(video=0)
            self._next = 0
        while self._next <= i:
            frame = next(self._iter)
            self._next += 1
        return torch.from_numpy(frame.to_ndarray(format="rgb24"))


def open_frames(path):
    path = Path(path)
    if path.is_dir():
        return FolderFrames(path)
    if path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS:
        return VideoFrames(path)
    raise MediaError(f"--frames {path}: not a folder of images or a video file ({', '.join(VIDEO_EXTENSIONS)})")


def read_annotation(path):
    """An annotation mask file -> uint8 label map (the rules: :mod:`memvos_core.annotations`)."""
    from .annotations import read_annotation as read
    return read(path)


def match_annotations(mask_folder, frame_stems):
    """Mask files -> ``{frame position: path}`` (see :func:`memvos_core.annotations.match_annotations`)."""
    from .annotations import match_annotations as match
    return match(mask_folder, frame_stems)


def write_atomic(image, path):
    path = Path(path)
    tmp = path.with_name(f".{path.name}.part")
    image.save(tmp, format="PNG")
    os.replace(tmp, path)


def save_label_png(labels, path):
    """uint8 ``[H,W]`` -> indexed PNG with the DAVIS palette."""
    img = Image.fromarray(labels.cpu().numpy().astype(np.uint8), mode="P")
    img.putpalette(palette_bytes())
    write_atomic(img, path)


def save_soft_png(prob, path):
    """float ``[H,W]`` in 0..1 -> 16-bit greyscale PNG."""
    arr = (prob.clamp(0, 1).cpu().numpy() * 65535).round().astype(np.uint16)
    write_atomic(Image.fromarray(arr), path)


def read_soft_png(path):
    return torch.from_numpy(np.array(Image.open(path)).astype(np.float32) / 65535)
