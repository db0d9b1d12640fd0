"""Test-time augmentation: the same shot seen flipped and at other internal scales.

Each variant has its own engine and memory. Every frame, all variants segment, their
probabilities are mapped back and averaged, and the *average* is what every variant writes to
its memory, so the variants never drift apart. Off by default: it multiplies the cost.
"""
import torch

from .engine import InferenceEngine
from .frames import resize_image, unpad


def _flip(x):
    return torch.flip(x, dims=[-1])


class TTAEngine:
    def __init__(self, network, config, device="cpu", precision="fp32", scales=(1.0,), flip=True):
        self.variants = [(float(s), f) for s in scales for f in ((False, True) if flip else (False,))]
        if not self.variants:
            raise ValueError("test-time augmentation needs at least one scale")
        self.engines = [InferenceEngine(network, config, device, precision) for _ in self.variants]
        self.device = self.engines[0].device

    @property
    def memory(self):
        return self.engines[0].memory

    @property
    def has_memory(self):
        return self.engines[0].has_memory

    def set_num_objects(self, n):
        for e in self.engines:
            e.set_num_objects(n)

    def set_shot_length(self, n):
        for e in self.engines:
            e.set_shot_length(n)

    # --------------------------------------------------------------- geometry
    @staticmethod
    def _size(hw, scale):
        return max(16, round(hw[0] * scale)), max(16, round(hw[1] * scale))

    def _image(self, image, variant):
        scale, flip = variant
        out = resize_image(image, self._size(image.shape[-2:], scale))
        return _flip(out) if flip else out

    def _mask(self, mask, variant):
        if mask is None:
            return None
        scale, flip = variant
        size = self._size(mask.shape[-2:], scale)
        out = torch.nn.functional.interpolate(mask[None].float(), size=size, mode="nearest")[0]
        return _flip(out) if flip else out

    def _back(self, prob, variant, hw):
        return resize_image(_flip(prob) if variant[1] else prob, hw)

    # ------------------------------------------------------------------ steps
    def add_permanent(self, image, mask, slot=None):
        for e, v in zip(self.engines, self.variants):
            e.add_permanent(self._image(image, v), self._mask(mask, v), slot)

    def step(self, image, mask=None, valid_labels=None, end=False, write_memory=True, write_permanent=False,
             feats=None):
        # ``feats`` is accepted for the pass loop's sake and always None: this engine has no
        # ``encode_keys`` (each variant encodes its own resized, flipped image)
        hw = tuple(image.shape[-2:])
        works = [e.begin(self._image(image, v), self._mask(mask, v), valid_labels, end)
                 for e, v in zip(self.engines, self.variants)]
        probs = [self._back(unpad(w.prob, w.pads), v, hw) for w, v in zip(works, self.variants)]
        average = torch.stack(probs).mean(0)
        for e, w, v in zip(self.engines, works, self.variants):
            inside = self._image(average, v)
            left, right, top, bottom = w.pads
            prob = w.prob.clone()  # keep the variant's own values in the padding
            prob[:, top:prob.shape[-2] - bottom, left:prob.shape[-1] - right] = inside
            w.prob = prob
            e.finish(w, write_memory=write_memory, write_permanent=write_permanent)
        return average

    # ------------------------------------------------------------------ state
    def state(self):
        tensors, metas = {}, []
        for i, e in enumerate(self.engines):
            t, m = e.state()
            tensors.update({f"v{i}.{k}": v for k, v in t.items()})
            metas.append(m)
        return tensors, {"variants": self.variants, "engines": metas}

    @classmethod
    def from_state(cls, network, config, tensors, meta, device="cpu", precision="fp32"):
        tta = cls.__new__(cls)
        tta.variants = [tuple(v) for v in meta["variants"]]
        tta.engines = []
        for i, m in enumerate(meta["engines"]):
            prefix = f"v{i}."
            mine = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            tta.engines.append(InferenceEngine.from_state(network, config, mine, m, device, precision))
        tta.device = tta.engines[0].device
        return tta


def make_engine(network, config, device, precision, tta_scales=(), tta_flip=False):
    """A plain engine, or a :class:`TTAEngine` when any augmentation is asked for."""
    scales = tuple(tta_scales) or (1.0,)
    if scales == (1.0,) and not tta_flip:
        return InferenceEngine(network, config, device, precision)
    refusal = getattr(network, "tta_refusal", None)  # a family whose inference cannot share variants
    if refusal:
        raise ValueError(refusal)
    return TTAEngine(network, config, device, precision, scales, tta_flip)


def engine_from_state(network, config, tensors, meta, device, precision):
    kind = TTAEngine if "variants" in meta else InferenceEngine
    return kind.from_state(network, config, tensors, meta, device, precision)
