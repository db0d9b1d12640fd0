"""A clip rendered a slice at a time when the preview player's pages read it: nothing is kept
but the last slice's labels."""
import torch


class RenderedClip:
    """Frames made by ``work(t0, t1, device) -> (image, mask, labels)`` (Composite's composited frames,
    Refine's matte preview) as a read-only view that slices like an IMAGE batch, made a slice
    at a time (in pieces of at most ``step`` frames) when the preview reads it; ``labels`` is the
    matching label view, served from the same pieces (the preview reads frames, then labels)."""

    is_clip_view = True  # nodes/preview.py takes it like a tensor

    def __init__(self, work, num_frames, frame_hw, channels, step, device, dtype=torch.float32):
        self.work, self.step, self.device, self.dtype = work, int(step), device, dtype
        self.shape = torch.Size((num_frames, *frame_hw, channels))
        self.labels = LabelsOf(self)
        self._last = None  # ((t0, t1), labels)

    def dim(self):
        return 4

    def __len__(self):
        return self.shape[0]

    def render(self, t0, t1):
        """``(image, labels)`` of frames t0..t1 on the CPU."""
        images, labels = [], []
        for a in range(t0, t1, self.step):
            image, _mask, label = self.work(a, min(t1, a + self.step), self.device)
            images.append(image.cpu())
            labels.append(label.cpu())
        return torch.cat(images), torch.cat(labels)

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
