"""Encode frames into a video file one at a time (PyAV), in bounded memory, never half-written.

The file is written under a temporary name beside the final one and renamed into place by
:meth:`VideoWriter.close`; an error or a cancel inside a ``with`` block (or :meth:`abort`) removes
it, so a reader never finds a truncated video under the real name.
"""
import os
from fractions import Fraction

import numpy as np

# name -> (container format, encoder, encoder options, pixel format for grey, for colour)
CODECS = {
    "h264": ("mp4", "libx264", {"crf": "16", "preset": "medium"}, "yuv420p", "yuv420p"),
    "ffv1": ("matroska", "ffv1", {}, "gray16le", "bgr0"),  # lossless, 16-bit grey mattes kept exact
    # ProRes 4444 with a 16-bit alpha plane; FFmpeg's encoder takes 10-bit YUVA (decoders hand back 12-bit)
    "prores": ("mov", "prores_ks", {"profile": "4444", "alpha_bits": "16", "vendor": "apl0"},
               "yuva444p10le", "yuva444p10le"),
}
EXTENSIONS = {"h264": ".mp4", "ffv1": ".mkv", "prores": ".mov"}
# FFmpeg's colour tags (AVColorPrimaries / AVColorTransferCharacteristic / AVColorSpace / AVColorRange)
BT709 = {"primaries": 1, "trc": 1, "space": 1, "range": 1}
UNSPECIFIED = 2
_MATRICES = (1, 4, 5, 6, 7, 9)  # colour spaces swscale converts RGB into (the others fall back to BT.709)


def colour_tags(path):
    """The colour tags of a video file's first stream, unspecified ones as BT.709 (what players
    assume for HD); BT.709 for a file PyAV cannot open (e.g. a folder of images)."""
    try:
        import av
        with av.open(os.fspath(path)) as container:
            ctx = container.streams.video[0].codec_context
            found = {"primaries": ctx.color_primaries, "trc": ctx.color_trc, "space": ctx.colorspace,
                     "range": ctx.color_range}
    except Exception:  # not a video: image folders carry no tags
        return dict(BT709)
    return {k: (BT709[k] if int(v or 0) in (0, UNSPECIFIED) else int(v)) for k, v in found.items()}


class VideoWriterError(OSError):
    """The video could not be written; the message says which file and why."""


class VideoWriter:
    """``write(frame)`` takes numpy ``uint8 [H,W,3]`` RGB, ``uint8 [H,W]`` or ``uint16 [H,W]`` grey,
    or (ProRes) ``uint16 [H,W,4]`` RGBA, all of one size; ``close()`` finishes the file. The size
    is taken from the first frame (h264 needs even sides: odd ones are padded by repeating the
    last row/column). ``colour``: the tags written (``colour_tags`` of the source; BT.709 default),
    whose matrix also converts RGB to the encoder's YUV."""

    def __init__(self, path, fps, codec="h264", options=None, colour=None):
        if codec not in CODECS:
            raise ValueError(f"video codec {codec!r} is not one of {', '.join(CODECS)}")
        self.path = os.fspath(path)
        self.tmp = os.path.join(os.path.dirname(self.path), f".{os.path.basename(self.path)}.part")
        self.codec = codec
        self.options = {**CODECS[codec][2], **(options or {})}
        self.rate = Fraction(float(fps)).limit_denominator(1001)
        self.colour = {**BT709, **(colour or {})}
        if self.rate <= 0:
            raise ValueError(f"video fps {fps} must be above 0")
        self._container = self._stream = None
        self._size = self._shape = None
        self._reformat = {}  # ProRes: how each RGBA frame becomes the encoder's YUVA (set in _open)
        self.frames = 0

    def _open(self, frame):
        import av
        container_format, encoder, _, grey_format, colour_format = CODECS[self.codec]
        height, width = frame.shape[:2]
        if self.codec == "h264":
            height, width = height + height % 2, width + width % 2
        try:
            self._container = av.open(self.tmp, mode="w", format=container_format)
            stream = self._container.add_stream(encoder, rate=self.rate)
        except av.FFmpegError as exc:
            self.abort()
            raise VideoWriterError(exc.errno, f"cannot encode {encoder} into {self.path} ({exc})") from None
        stream.width, stream.height = width, height
        stream.pix_fmt = grey_format if frame.ndim == 2 else colour_format
        stream.options = dict(self.options)
        if self.codec == "prores":
            ctx = stream.codec_context
            ctx.color_primaries, ctx.color_trc = self.colour["primaries"], self.colour["trc"]
            ctx.colorspace, ctx.color_range = self.colour["space"], self.colour["range"]
            # one thread: sliced swscale (FFmpeg 8) sometimes writes garbage into the first 8 alpha
            # samples of a slice's first row (rgba64le -> yuva444p10le), up to 0.5 off the matte;
            # PyAV before 17 has no threads argument and converts on one thread anyway
            self._reformat = {"format": colour_format,
                              "dst_colorspace": self.colour["space"] if self.colour["space"] in _MATRICES else 1,
                              "dst_color_range": "JPEG" if self.colour["range"] == 2 else "MPEG",
                              **({"threads": 1} if int(av.__version__.split(".")[0]) >= 17 else {})}
        self._stream, self._size, self._shape = stream, (height, width), tuple(frame.shape)

    def write(self, frame):
        import av
        frame = np.ascontiguousarray(frame)
        if self._container is None:
            self._open(frame)
        if tuple(frame.shape) != self._shape:
            raise ValueError(f"frame {self.frames} has shape {tuple(frame.shape)}, the first one had "
                             f"{self._shape}: every frame of a video must have the same size")
        height, width = self._size
        if (height, width) != frame.shape[:2]:
            pad = ((0, height - frame.shape[0]), (0, width - frame.shape[1])) + ((0, 0),) * (frame.ndim - 2)
            frame = np.pad(frame, pad, mode="edge")
        if frame.ndim == 3:
            layout = "rgba64le" if frame.shape[2] == 4 else "rgb24"
        else:
            layout = "gray16le" if frame.dtype == np.uint16 else "gray"
        if (self.codec == "prores") != (layout == "rgba64le"):
            raise ValueError(f"frame {self.frames} is {frame.dtype} {tuple(frame.shape)}: ProRes takes uint16 "
                             "RGBA [H,W,4] frames, the other codecs RGB or grey")
        picture = av.VideoFrame.from_ndarray(frame, format=layout)
        if self.codec == "prores":
            picture = picture.reformat(**self._reformat)
        picture.pts = self.frames
        self._encode(picture)
        self.frames += 1

    def _encode(self, picture):
        """Encode one picture (None flushes) and write its packets; FFmpeg's errors (a full disk
        among them) become a VideoWriterError with the errno."""
        import av
        try:
            for packet in self._stream.encode(picture):
                self._container.mux(packet)
        except av.FFmpegError as exc:
            raise VideoWriterError(exc.errno, f"writing {self.path} failed ({exc})") from None

    def close(self):
        """Flush the encoder, close the file and rename it into place; returns the path."""
        import av
        if self._container is None:
            raise ValueError(f"no frame was written to {self.path}")
        self._encode(None)
        container, self._container = self._container, None
        try:
            container.close()
        except av.FFmpegError as exc:
            raise VideoWriterError(exc.errno, f"finishing {self.path} failed ({exc})") from None
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self):
        """Stop and remove the temporary file; the final name is never created."""
        container, self._container = self._container, None
        if container is not None:
            try:
                container.close()
            except Exception:  # a container that failed half-way may not close cleanly
                pass
        if os.path.exists(self.tmp):
            os.remove(self.tmp)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if kind is not None:
            self.abort()
        elif self._container is not None:
            self.close()
        return False
