"""Reading shots and annotations from disk and writing masks, for the command line."""
import os
import re
from bisect import bisect_left, bisect_right
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import atomic_file
from .palette import palette_bytes

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")


class MediaError(ValueError):
    """Bad input media; the message says which file and what to do."""


# ------------------------------------------------------------------ pixel limit
MAX_PIXELS_ENV = "MEMVOS_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 16384 * 8192  # a 16K x 8K frame; a 30000x30000 PNG header is a decompression bomb


def max_pixels():
    """Largest frame or mask (width x height) read: ``$MEMVOS_MAX_PIXELS`` or the default."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    try:
        return int(text) if text else DEFAULT_MAX_PIXELS
    except ValueError:
        raise MediaError(f"${MAX_PIXELS_ENV}={text!r} is not a whole number of pixels: unset it (default "
                         f"{DEFAULT_MAX_PIXELS:,}) or give a number") from None


@contextmanager
def open_image(path, what="image"):
    """``Image.open(path)`` whose size (read from the header, nothing decoded yet) is within
    :func:`max_pixels`; else one MediaError line. Other failures stay OSError, as PIL raises them."""
    limit = max_pixels()
    if Image.MAX_IMAGE_PIXELS is not None and limit > 2 * Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = limit  # the user raised our limit past Pillow's refusal (twice its own)
    fix = (f"over the limit of {limit:,} pixels (a decompression bomb, or a very large picture): shrink it, or "
           f"raise the limit with the environment variable {MAX_PIXELS_ENV}")
    try:
        img = Image.open(path)
    except Image.DecompressionBombError as exc:  # Pillow's own check, at twice its limit, came first
        counted = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(counted.group(1)):,} pixels" if counted else "too many pixels"
        raise MediaError(f"{what} {path} has {size}, {fix}") from None
    with img:
        if img.width * img.height > limit:
            raise MediaError(f"{what} {path} is {img.width}x{img.height} ({img.width * img.height:,} pixels), {fix}")
        yield img


class FolderFrames:
    """Frames of a folder of images, read lazily one at a time: ``frames[i]`` is uint8 ``[H,W,3]``."""

    fps = None

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
            with open_image(self.paths[i], "frame") as img:
                return torch.from_numpy(np.array(img.convert("RGB")))
        except OSError as exc:
            raise MediaError(f"frame {self.paths[i]} could not be read ({exc})") from None

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


DEFAULT_WINDOW_BYTES = 256 << 20


class VideoFrames:
    """Frames of a video file, decoded with PyAV (which ComfyUI installs): ``frames[i]`` is uint8
    ``[H,W,3]``; never the whole shot in memory.

    Opening scans the packets (no decoding) for every frame's timestamp and the keyframes.
    Reading in order decodes each frame once and holds only the frame asked for. Reading
    backwards (the backward pass) decodes a window of frames ending at the one asked for and
    hands them out from memory: the window starts at the earliest keyframe within
    ``window_bytes`` of decoded frames, so every frame is still decoded once; when the keyframes
    are further apart than that, it seeks to the keyframe before the window (extra decodes: about
    half a GOP per window). Held frames are compact RGB arrays, so ``held_bytes`` is what the
    window really costs (a decoded ``av.VideoFrame`` keeps decoder buffers several times that).
    ``decoded`` and ``seeks`` count the work (benchmarks, tests). Close it (``close()`` or
    ``with``) to release the file."""

    def __init__(self, path, window_bytes=DEFAULT_WINDOW_BYTES):
        try:
            import av
        except ImportError:
            raise MediaError(f"reading {path} needs PyAV: pip install av (or pass a folder of frames)") from None
        self.path = str(path)
        self._av = av
        self._container = None
        self._open()
        try:
            pts, keys = self._scan()
        except av.FFmpegError as exc:
            self.close()
            raise MediaError(f"video {self.path} could not be read ({exc}): re-encode it (e.g. to H.264 MP4) "
                             "or pass a folder of frames") from None
        if not pts:
            self.close()
            raise MediaError(f"video {self.path} has no video frames: pass the shot's video or a folder of frames")
        self._pts = sorted(pts)
        self._index = {p: i for i, p in enumerate(self._pts)}
        self._keyframes = sorted({self._index[p] for p in keys}) or [0]
        width = max(5, len(str(len(self._pts) - 1)))
        self.stems = [f"{i:0{width}d}" for i in range(len(self._pts))]
        stream = self._stream
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else None
        h, w = stream.codec_context.height, stream.codec_context.width
        self.window = int(max(2, min(len(self._pts), window_bytes // max(1, h * w * 3))))
        self._held = {}          # frame index -> uint8 [H,W,3] array of its own (the window)
        self._decoder, self._next = None, None   # next frame index the decoder will give
        self._last = None                        # the frame asked for last
        self.decoded = 0
        self.seeks = 0

    # -------------------------------------------------------------- plumbing
    def _open(self):
        av = self._av
        if self._container is not None:
            self._container.close()
        try:
            self._container = av.open(self.path)
            self._stream = self._container.streams.video[0]
        except (av.FFmpegError, IndexError, OSError) as exc:
            self._container = None
            why = "no video stream" if isinstance(exc, IndexError) else exc
            raise MediaError(f"video {self.path} could not be opened ({why}): re-encode it (e.g. to H.264 MP4) "
                             "or pass a folder of frames") from None
        self._stream.thread_type = "AUTO"

    def _scan(self):
        """Presentation timestamps of every frame and those of keyframes, from the packets."""
        pts, keys = [], []
        for packet in self._container.demux(self._stream):
            if packet.size == 0 or getattr(packet, "is_discard", False):
                continue
            stamp = packet.pts if packet.pts is not None else packet.dts
            if stamp is None:
                raise MediaError(f"video {self.path} has frames without timestamps: re-encode it (e.g. to H.264 "
                                 "MP4) or pass a folder of frames")
            pts.append(stamp)
            if packet.is_keyframe:
                keys.append(stamp)
        return pts, keys  # the decoder is positioned by the first read (_seek)

    def _seek(self, frame_index):
        """Position the decoder at keyframe ``frame_index`` (0 reopens the file)."""
        self.seeks += 1
        if frame_index == 0:
            self._open()
        else:
            self._container.seek(self._pts[frame_index], stream=self._stream, backward=True)
        self._decoder = self._container.decode(self._stream)
        self._next = None

    def _decode_until(self, target, keep_from):
        """Decode up to frame ``target``, holding frames ``keep_from..target``. False if the decoder
        started after ``keep_from`` (a seek that landed late)."""
        first = True
        while True:
            try:
                frame = next(self._decoder)
            except StopIteration:
                frame = None
            except self._av.FFmpegError as exc:
                raise MediaError(f"frame {target} of {self.path} could not be decoded ({exc}): re-encode "
                                 "the video or pass a folder of frames") from None
            if frame is None:
                raise MediaError(f"video {self.path} ended before frame {target}: it is damaged; re-encode "
                                 "it or pass a folder of frames")
            self.decoded += 1
            index = self._index.get(frame.pts) if frame.pts is not None else self._next
            if index is None:
                continue  # a frame the packet scan did not list (e.g. a leading frame after a seek)
            if first and index > keep_from:
                return False
            first = False
            self._next = index + 1
            if index >= keep_from:
                self._hold(index, frame)
            if index >= target:
                if index > target:
                    raise MediaError(f"frame {target} of {self.path} could not be decoded: re-encode the "
                                     "video or pass a folder of frames")
                return True

    def _hold(self, index, frame):
        array = frame.to_ndarray(format="rgb24")  # a view of the converted frame's plane
        if not array.flags.c_contiguous:
            array = np.ascontiguousarray(array)    # padded rows: a compact copy (a 1080p frame has none)
        self._held[index] = array
        while len(self._held) > self.window:
            del self._held[max(self._held, key=lambda k: abs(k - index))]

    def _keyframe_at_or_before(self, i):
        return self._keyframes[bisect_right(self._keyframes, i) - 1]

    def _load(self, i):
        at_or_before = self._keyframe_at_or_before(i)
        if self._next is not None and self._next <= i and at_or_before <= self._next:
            # Reading on: decode from where the decoder is, holding only the frame asked for.
            self._held.clear()
            if self._decode_until(i, i):
                return
        if self._last is not None and i < self._last:
            # Reading backwards: a window ending at i, from its earliest keyframe if it has one.
            lo = max(0, i - self.window + 1)
            later = bisect_left(self._keyframes, lo)
            if later < len(self._keyframes) and self._keyframes[later] <= i:
                start = self._keyframes[later]
            else:
                start = self._keyframe_at_or_before(lo)
            lo = max(lo, start)
        else:
            # A jump ahead (or the first read): from the keyframe before it.
            start = at_or_before
            lo = max(start, i - self.window + 1)
        self._held.clear()
        keyframe = start
        while True:
            self._seek(keyframe)
            if self._decode_until(i, lo):
                return
            # The demuxer landed after the keyframe: try the one before it (0 reopens the file).
            if keyframe == 0:
                raise MediaError(f"frame {i} of {self.path} could not be found by decoding: re-encode the "
                                 "video or pass a folder of frames")
            keyframe = self._keyframes[self._keyframes.index(keyframe) - 1]

    # ------------------------------------------------------------------ API
    @property
    def held_bytes(self):
        """Bytes of the decoded frames held now (at most ``window`` frames)."""
        return sum(a.nbytes for a in self._held.values())

    def __len__(self):
        return len(self._pts)

    def __getitem__(self, i):
        i = int(i)
        if not 0 <= i < len(self._pts):
            raise IndexError(f"frame {i} is outside the video (frames 0..{len(self._pts) - 1})")
        if self._container is None:
            raise MediaError(f"video {self.path} was closed")
        if i not in self._held:
            self._load(i)
        self._last = i
        return torch.from_numpy(self._held[i].copy())  # the caller's to change; the window stays

    def close(self):
        self._held = {}
        self._decoder = None
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def open_frames(path):
    path = Path(path)
    if path.is_dir():
        return FolderFrames(path)
    if path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS:
        return VideoFrames(path)
    raise MediaError(f"--frames {path}: not a folder of images or a video file ({', '.join(VIDEO_EXTENSIONS)})")


def write_atomic(image, path):
    """Save a PNG atomically (:mod:`memvos_core.media_io.atomic_file`): never half a file under ``path``."""
    atomic_file.write_atomic(path, lambda tmp: image.save(tmp, format="PNG"), error=MediaError,
                             then=", then run again (with --resume to keep the finished frames)")


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
