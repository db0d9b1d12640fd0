"""A clip rendered a slice at a time when the preview player's pages read it: nothing is kept
but the last slice's labels."""
import torch

from .preview import PREVIEW_BUDGET
from ..memvos_core.ops.chunking import concat_as_made, frames_per_chunk


class RenderedClip:
    """Frames made by ``work(t0, t1, device) -> (image, mask, labels)`` (Composite's composited frames,
    Refine's matte preview) as a read-only view that slices like an IMAGE batch, made a slice
    at a time when the preview reads it; ``labels`` is the matching label view, served from the
    same pieces (the preview reads frames, then labels).

    ``work`` takes ``bytes_per_frame`` at its peak; it runs on as many frames at once as fit the
    working budget, capped as the preview's own chunks are (:data:`nodes.preview.PREVIEW_BUDGET`):
    the tiles are small, and a bigger piece only holds more. The preview's pages ask for frames
    by the tiles' size, many more than the work's frames at source size would fit."""

    is_clip_view = True  # nodes/preview.py takes it like a tensor

    def __init__(self, work, num_frames, frame_hw, channels, bytes_per_frame, budget_bytes, device,
                 dtype=torch.float32):
        self.work, self.device, self.dtype = work, device, dtype
        self.step = frames_per_chunk(bytes_per_frame, min(int(budget_bytes), PREVIEW_BUDGET))
        self.shape = torch.Size((num_frames, *frame_hw, channels))
        self.labels = LabelsOf(self)
        self._last = None  # ((t0, t1), labels)

    def dim(self):
        return 4

    def __len__(self):
        return self.shape[0]

    def render(self, t0, t1):
        """``(image, labels)`` of frames t0..t1 on the CPU."""
        return concat_as_made((self._piece(a, min(t1, a + self.step)) for a in range(t0, t1, self.step)), t1 - t0)

    def _piece(self, t0, t1):
        image, _mask, label = self.work(t0, t1, self.device)
        return image.cpu(), label.cpu()

    def __getitem__(self, index):
        start, stop, _ = index.indices(self.shape[0])
        image, labels = self.render(start, stop)
        self._last = ((start, stop), labels)
        return image

    def labels_of(self, index):
        start, stop, _ = index.indices(self.shape[0])
        if self._last is not None and self._last[0] == (start, stop):
            return self._last[1]
        return self.render(start, stop)[1]


class LabelsOf:
    is_clip_view = True
    dtype = torch.uint8

    def __init__(self, composited):
        self.composited = composited
        self.shape = composited.shape[:3]

    def dim(self):
        return 3

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, index):
        return self.composited.labels_of(index)
