"""Frames as the nodes take them: an IMAGE batch, ComfyUI's VIDEO, or MEMVOS_FRAMES.

A shot minutes long does not fit in RAM as an IMAGE batch (1,000 frames of 1080p are ~24 GB of
float32), so the frames sockets also take a VIDEO (core Load Video: decoded from its file one
frame at a time) and MEMVOS_FRAMES (MemVOS Load Frames: a folder of images or a video file).

:func:`frame_clip` turns any of them into what node code indexes: the IMAGE tensor itself, or a
:class:`FrameClip` that behaves like one for what the nodes do with frames (``len``, ``.shape``,
``clip[i]``, ``clip[a:b]`` -> float32 ``[t,H,W,3]`` on the CPU) and decodes only the frames
asked for. A :class:`FrameSource` (what MEMVOS_FRAMES carries) holds no pixels and no open
decoder, so a cached one is safe to hand to any number of nodes; every clip opens its own reader.
"""
import hashlib
import io
import os
import weakref
from dataclasses import dataclass

import torch

from .messages import size_text
from ..memvos_core.media_io import media
from ..memvos_core.ops.chunking import concat_as_made
from ..memvos_core.ops.inputs import check_frames as check_image_frames

FRAMES = "MEMVOS_FRAMES"
FRAMES_INPUT = f"IMAGE,VIDEO,{FRAMES}"  # one socket takes any of the three (ComfyUI type unions)
FRAMES_HINT = ("connect an IMAGE batch, a VIDEO from Load Video, or MemVOS Load Frames (a folder of images "
               "or a video file)")
DEFAULT_FPS = 24.0


@dataclass(frozen=True, eq=False)
class FrameSource:
    """A shot on disk: a video file or a folder of images, described, never held open."""

    path: str
    kind: str            # "video" or "folder"
    count: int
    frame_hw: tuple      # (height, width)
    fps: float
    stems: tuple         # a name per frame: the folder's file stems, or 00000.. for a video

    def describe(self):
        what = "video" if self.kind == "video" else "folder"
        return f"{what} {self.path!r} ({self.count} frames, {size_text(self.frame_hw)})"

    def open(self):
        """A fresh reader: ``len``, ``reader[i]`` -> uint8 ``[H,W,3]`` (memvos_core.media_io.media)."""
        return media.VideoFrames(self.path) if self.kind == "video" else media.FolderFrames(self.path)


def source_from_path(path, fps=None, name="path"):
    """Describe a video file or a folder of images, reading only what that takes (a frame count
    and the first frame's size), or a one-line ValueError naming ``name``."""
    path = os.fspath(path)
    if os.path.isdir(path):
        kind = "folder"
    elif os.path.isfile(path) and path.lower().endswith(media.VIDEO_EXTENSIONS):
        kind = "video"
    elif os.path.isfile(path):
        raise ValueError(f"{name} {path!r} is a file but not a video ({', '.join(media.VIDEO_EXTENSIONS)}): "
                         "give a video file or a folder of frames")
    else:
        raise ValueError(f"{name} {path!r} does not exist: give a folder of frames or a video file (relative "
                         "to ComfyUI's input folder)")
    reader = None
    try:
        reader = media.VideoFrames(path) if kind == "video" else media.FolderFrames(path)
        count = len(reader)
        if count == 0:
            raise media.MediaError(f"{path} holds no frames")
        first = reader[0]
        rate = getattr(reader, "fps", None) or (_video_rate(path) if kind == "video" else None)
    except media.MediaError as exc:
        raise ValueError(f"{name}: {exc}") from None
    except Exception as exc:  # PyAV and PIL raise their own types for files they cannot read
        raise ValueError(f"{name} {path!r} could not be decoded ({type(exc).__name__}: {exc}): convert it to "
                         "an mp4 or a folder of PNG frames") from None
    finally:
        _close(reader)
    rate = rate or (float(fps) if fps else DEFAULT_FPS)
    return FrameSource(os.path.abspath(path), kind, count, tuple(first.shape[:2]), rate, tuple(reader.stems))


def files_fingerprint(path):
    """Names, sizes and times of what a file or folder holds: a cheap stand-in for its content."""
    digest = hashlib.sha256()
    try:
        entries = [path] if os.path.isfile(path) else sorted(os.path.join(path, n) for n in os.listdir(path))
        for entry in entries:
            info = os.stat(entry)
            digest.update(f"{os.path.basename(entry)}:{info.st_size}:{info.st_mtime_ns};".encode())
    except OSError as exc:
        digest.update(f"unreadable:{exc}".encode())  # the run itself reports the error
    return digest.hexdigest()


def _video_rate(path):
    """The stream's average rate (for a media.VideoFrames that does not report its ``fps``)."""
    import av
    with av.open(path) as container:
        rate = container.streams.video[0].average_rate
    return float(rate) if rate else None


def _close(reader):
    close = getattr(reader, "close", None)
    if close is not None:
        close()


# ------------------------------------------------------------------ ComfyUI's VIDEO

# One description per VIDEO object: counting a file's frames can mean decoding it (webm), which
# should happen once per Load Video output, not once per node that reads it.
_VIDEO_SOURCES = weakref.WeakKeyDictionary()


def _streams_from_a_file(video):
    """Whether the VIDEO's class has its own get_stream_source (VideoFromFile: the file). The
    one every VIDEO inherits from comfy_api's VideoInput encodes the whole video into memory."""
    for klass in type(video).__mro__:
        if "get_stream_source" in vars(klass):
            return klass.__name__ != "VideoInput"
    return False


def source_from_video(video, name="frames"):
    """A FrameSource for a VIDEO read from a file, or the IMAGE tensor of a VIDEO made from
    frames in memory (Create Video); a one-line ValueError for what cannot be streamed."""
    if not _streams_from_a_file(video):
        components = video.get_components()  # Create Video: the frames are already in memory
        images = components.images
        return images, float(components.frame_rate) if components.frame_rate else None
    try:
        known = _VIDEO_SOURCES.get(video)
    except TypeError:
        known = None
    if known is not None:
        return known, known.fps
    trim = getattr(video, "get_active_trim_window", None)
    if trim is not None and any(trim()):
        raise ValueError(f"{name}: this VIDEO is trimmed (start time / duration), which MemVOS does not read "
                         "yet: load the whole video and choose the frames with start_frame / end_frame")
    stream = video.get_stream_source()
    if isinstance(stream, io.IOBase) or not isinstance(stream, (str, os.PathLike)):
        raise ValueError(f"{name}: this VIDEO lives in memory ({type(stream).__name__}), not in a file, so it "
                         "cannot be read a frame at a time: save it with Save Video and load that file with "
                         "Load Video, or connect Get Video Components' images")
    source = source_from_path(stream, name=name)
    try:
        _VIDEO_SOURCES[video] = source
    except TypeError:
        pass
    return source, source.fps


def is_video(value):
    return hasattr(value, "get_stream_source") or hasattr(value, "get_components")


# ------------------------------------------------------------------ clips

class _Reader:
    """A reader opened on first use and shared by the windows of one clip."""

    def __init__(self, source):
        self.source, self.reader = source, None

    def frame(self, index):
        if self.reader is None:
            self.reader = self.source.open()
        try:
            frame = self.reader[index]
        except media.MediaError as exc:
            raise ValueError(f"frames: {exc}") from None
        except (IndexError, StopIteration):
            raise ValueError(f"frames: {self.source.describe()} ended before frame {index}: the file is shorter "
                             "than its header says; re-encode it, or convert it to a folder of frames") from None
        if tuple(frame.shape[:2]) != tuple(self.source.frame_hw):
            h, w = self.source.frame_hw
            raise ValueError(f"frames: frame {self.source.stems[index]} of {self.source.path!r} is "
                             f"{size_text(frame.shape[:2])} but the shot's first frame is {size_text((h, w))}: every "
                             "frame of a shot must have the same size")
        return frame

    def close(self):
        reader, self.reader = self.reader, None
        _close(reader)

    def __del__(self):
        # Nodes that do not call close() (CPython frees the clip when the node returns) still
        # close the decoder's container.
        try:
            self.close()
        except Exception:
            pass


class FrameClip:
    """Read-only frames of a FrameSource that slice like an IMAGE batch: ``clip[i]`` float32
    ``[H,W,3]``, ``clip[a:b]`` float32 ``[b-a,H,W,3]`` (CPU), decoded when asked for."""

    is_clip_view = True  # nodes/preview.py takes it like a tensor
    dtype = torch.float32
    device = torch.device("cpu")  # frames are decoded on the host

    def __init__(self, source, offset=0, count=None, reader=None):
        self.source = source
        self.offset = int(offset)
        self.count = source.count - self.offset if count is None else int(count)
        self._reader = reader if reader is not None else _Reader(source)

    @property
    def shape(self):
        return torch.Size((self.count, *self.source.frame_hw, 3))

    @property
    def fps(self):
        return self.source.fps

    @property
    def stems(self):
        return self.source.stems[self.offset:self.offset + self.count]

    def dim(self):
        return 4

    def __len__(self):
        return self.count

    @property
    def num_frames(self):
        return self.count

    def chunk(self, t0, t1):
        """Frames t0..t1 as one tensor: the lazy-source accessor of memvos_core.ops.chunking."""
        return self[t0:t1]

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(self.count)
            if step != 1:
                raise ValueError("internal: frame clips are read in order, one frame after another")
            if stop <= start:
                return torch.zeros(0, *self.source.frame_hw, 3)
            # Decoded a frame at a time into the float batch (a list of float frames, then their
            # stack, held the chunk twice).
            frames = concat_as_made((self._reader.frame(self.offset + i)[None] for i in range(start, stop)),
                                    stop - start, torch.float32)
            return frames.div_(255)
        index = int(index)
        if index < 0:
            index += self.count
        if not 0 <= index < self.count:
            raise IndexError(f"frame {index} is outside this clip of {self.count} frames")
        return self._float(index)

    def _float(self, index):
        return self._reader.frame(self.offset + index).float().div_(255)

    def window(self, offset, count):
        """Frames ``offset .. offset+count-1`` of this clip, sharing its reader."""
        if offset < 0 or offset + count > self.count:
            raise ValueError(f"internal: window {offset}+{count} outside a clip of {self.count} frames")
        return FrameClip(self.source, self.offset + offset, count, self._reader)

    def close(self):
        self._reader.close()

    def describe(self):
        return self.source.describe()


def frame_clip(value, name="frames"):
    """What a frames socket gave, ready to index: the IMAGE tensor itself (checked), or a
    FrameClip over a VIDEO's file or a MEMVOS_FRAMES source."""
    if torch.is_tensor(value):
        return check_image_frames(value, name, hint="connect the shot's frames, e.g. from Get Video Components")
    if isinstance(value, FrameClip):
        return value
    if isinstance(value, FrameSource):
        return FrameClip(value)
    if is_video(value):
        source, _fps = source_from_video(value, name)
        return check_image_frames(source, name, hint="connect the shot's frames, e.g. from Get Video Components") \
            if torch.is_tensor(source) else FrameClip(source)
    raise ValueError(f"{name} must be an IMAGE batch [frames, height, width, 3], a VIDEO or MEMVOS_FRAMES (got "
                     f"{type(value).__name__}): {FRAMES_HINT}")


def frames_fps(value):
    """The frame rate a frames input carries (VIDEO, MEMVOS_FRAMES), or None (an IMAGE batch)."""
    if isinstance(value, (FrameClip, FrameSource)):
        return value.fps
    if is_video(value):
        try:
            return source_from_video(value)[1]
        except ValueError:
            return None
    return None


def frame_stems(frames, first_index=0):
    """A name per frame: the clip's own (folder file stems, video frame numbers) or the clip
    index, 5 digits, for an IMAGE batch."""
    stems = getattr(frames, "stems", None)
    if stems is not None:
        return tuple(stems)
    return tuple(f"{first_index + i:05d}" for i in range(frames.shape[0]))


def close_clip(frames):
    if isinstance(frames, FrameClip):
        frames.close()


__all__ = ["FRAMES", "FRAMES_INPUT", "FrameClip", "FrameSource", "close_clip", "files_fingerprint", "frame_clip",
           "frame_stems", "frames_fps", "source_from_path", "source_from_video"]
