"""Reading shots and annotations from disk and writing masks, for the command line."""
import os
import re
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
    """An annotation PNG -> uint8 label map. Indexed (palette) PNGs give their indices; a
    greyscale/RGB mask is one object (any non-black pixel, e.g. 255, is object 1)."""
    try:
        img = Image.open(path)
        img.load()
    except OSError as exc:
        raise MediaError(f"mask {path} could not be read ({exc})") from None
    if img.mode == "P":
        return torch.from_numpy(np.array(img).astype(np.uint8))
    gray = np.array(img.convert("L"))
    if img.mode in ("RGBA", "LA"):
        gray = np.where(np.array(img.getchannel("A")) > 0, gray, 0)
    return torch.from_numpy((gray > 127).astype(np.uint8))


def first_integer(stem):
    match = re.search(r"\d+", stem)
    return int(match.group()) if match else None


def match_annotations(mask_folder, frame_stems):
    """Mask files -> {frame position: path}. A mask belongs to the frame with the same stem, or,
    failing that, to the frame whose number (first integer in the name) is the same."""
    folder = Path(mask_folder)
    if not folder.is_dir():
        raise MediaError(f"--masks {folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    if not files:
        raise MediaError(f"no PNG annotations in {folder}: draw at least one keyframe mask")
    by_stem = {s: i for i, s in enumerate(frame_stems)}
    by_number = {first_integer(s): i for i, s in enumerate(frame_stems) if first_integer(s) is not None}
    found = {}
    for f in files:
        i = by_stem.get(f.stem)
        if i is None:
            i = by_number.get(first_integer(f.stem))
        if i is None:
            raise MediaError(f"mask {f.name} matches no frame (frames are named like {frame_stems[0]}): "
                             "name each mask like the frame it annotates")
        found[i] = f
    return found


def write_atomic(image, path):
    path = Path(path)
    tmp = path.with_name(f".{path.name}.part")
    image.save(tmp, format="PNG")
    os.replace(tmp, path)


def label_image(labels):
    """uint8 ``[H,W]`` (tensor or array) -> an indexed PIL image with the DAVIS palette."""
    array = labels.cpu().numpy() if torch.is_tensor(labels) else np.asarray(labels)
    img = Image.fromarray(array.astype(np.uint8), mode="P")
    img.putpalette(palette_bytes())
    return img


def save_label_png(labels, path):
    """uint8 ``[H,W]`` -> indexed PNG with the DAVIS palette."""
    write_atomic(label_image(labels), path)


def save_soft_png(prob, path):
    """float ``[H,W]`` in 0..1 -> 16-bit greyscale PNG."""
    arr = (prob.clamp(0, 1).cpu().numpy() * 65535).round().astype(np.uint16)
    write_atomic(Image.fromarray(arr), path)


def read_soft_png(path):
    return torch.from_numpy(np.array(Image.open(path)).astype(np.float32) / 65535)
