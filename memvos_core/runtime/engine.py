"""One step per frame: encode -> read memory -> decode -> maybe write, for any model family.

The engine works on one frame at a time at internal resolution, on the caller's device, and
owns its memory privately. Object ids here are internal and contiguous, 1..N; sessions map the
artist's ids onto them. What differs between families (padding, schedule, memory, sensory
state, network calls) is behind :class:`~memvos_core.families.FamilyModel`; the engine keeps
the frame counters and does what both share: merging annotations with predictions.
"""
from dataclasses import dataclass

import torch

from ..families import Plan, family_model
from ..families.registry import FAMILY_OF_UNMARKED_FILES
from .frames import merge_partial_annotation, unpad
from ..network.features import KeyFeatures
from .perf import resolve_options
from .precision import PRECISIONS, autocast_context

__all__ = ["InferenceEngine", "FrameWork", "PRECISIONS", "autocast_context", "merge_partial_annotation"]


class InferenceEngine:
    """Stateful frame-by-frame propagation for one clip.

    ``step(image, mask, valid_labels, end)`` follows XMem's calling convention: ``image`` is
    normalised ``[3,H,W]``; ``mask`` is ``[N,H,W]`` one-hot over every object known so far;
    ``valid_labels`` names the (1-based) objects the mask actually annotates.
    ``options`` (:class:`~.perf.EngineOptions`) choose how it computes, not what; by default the
    fastest options measured for the device.
    """

    def __init__(self, network, config, device="cpu", precision="fp32", options=None):
        self.network = network
        self.config = config
        self.device = torch.device(device)
        self.precision = precision
        self.options = resolve_options(self.device, options)
        self.model = family_model(network, config, self.device, precision, self.options)
        self.num_objects = 0
        self.curr_ti = -1
        self.last_mem_ti = 0
        # Frames in the whole shot when the caller knows it (None: a stream of unknown length);
        # read by families whose temporal codes are normalised by the shot's length.
        self.shot_length = None

    @property
    def family(self):
        return self.model.family

    @property
    def memory(self):
        """The family's memory (its ``sizes()`` are comparable across families)."""
        return self.model.memory

    @property
    def has_memory(self):
        """Whether anything is in memory to propagate from."""
        return self.model.has_memory

    # ------------------------------------------------------------- objects
    def set_num_objects(self, n):
        if n < self.num_objects:
            raise ValueError("objects cannot be removed from a running propagation")
        self.num_objects = n

    def set_shot_length(self, n):
        """The number of frames of the shot this engine steps through (None: unknown)."""
        self.shot_length = None if n is None else int(n)

    def delete_objects(self, labels):
        """Forget objects (1-based ids) and everything memory holds of them; the others are
        renumbered in order (Cutie; XMem cannot)."""
        positions = sorted({int(o) - 1 for o in labels})
        if any(not 0 <= p < self.num_objects for p in positions):
            raise ValueError(f"objects {list(labels)} are not all among 1..{self.num_objects}")
        self.model.delete_objects(positions)
        self.num_objects -= len(positions)

    def encode_keys(self, images):
        """Key features of several upcoming frames (normalised ``[3,H,W]`` each) in one batch,
        one :class:`KeyFeatures` per frame to hand to :meth:`step`. The key encoder does not
        depend on memory, so frames can be encoded ahead of the sequential loop."""
        batch = torch.stack([self.model.pad(image.to(self.device))[0] for image in images])
        feats = self.model.encode_batch(batch)
        one = (lambda t, i: None if t is None else t[i:i + 1])
        return [KeyFeatures(one(feats.key, i), one(feats.shrinkage, i), one(feats.selection, i),
                            tuple(one(f, i) for f in feats.features)) for i in range(len(images))]

    # ---------------------------------------------------------------- steps
    def add_permanent(self, image, mask, slot=None):
        """Put an annotated frame into permanent memory before propagating (XMem++ mode).

        ``mask`` ``[N,H,W]`` one-hot over every object known so far (N == num_objects)."""
        self.model.add_permanent(self, image, mask, slot)

    def step(self, image, mask=None, valid_labels=None, end=False, write_memory=True,
             write_permanent=False, feats=None):
        """Process the next frame and return probabilities ``[num_objects+1, H, W]`` (background
        first) at the input's size. ``write_memory=False`` marks a keyframe already in permanent
        memory (XMem++ then writes nothing; Cutie steps it as an ordinary memory frame, as its
        reference does). ``write_permanent=True`` writes this frame to permanent instead of
        working memory (an annotation reached during propagation, XMem++ mode; Cutie's
        ``force_permanent``). ``feats``: this frame's features from :meth:`encode_keys`, if it
        was encoded ahead."""
        work = self.begin(image, mask, valid_labels, end, feats)
        return self.finish(work, write_memory=write_memory, write_permanent=write_permanent)

    def begin(self, image, mask=None, valid_labels=None, end=False, feats=None):
        """First half of :meth:`step`: encode, read memory, decode, merge the annotation.
        Returns the frame's work; its ``prob`` (padded) may be replaced before :meth:`finish`
        (test-time augmentation writes the averaged probabilities into every variant's memory)."""
        self.curr_ti += 1
        image, pads = self.model.pad(image.to(self.device))
        image = image.unsqueeze(0)
        plan = self.model.plan(self, mask is not None, valid_labels, end)
        if feats is None:
            feats = self.model.encode(image, plan)
        prob = None
        if plan.need_segment:
            if not self.model.has_memory:
                raise RuntimeError("nothing to propagate from: the memory is empty (no annotated frame yet)")
            prob = self.model.decode(feats, self.model.read(feats), plan)
        if mask is not None:
            # padded as the family padded the image (a family that resizes inside pads nothing)
            mask = mask.to(self.device).float()
            mask = torch.nn.functional.pad(mask, pads) if any(pads) else mask
            prob = self.model.annotate(prob, mask, valid_labels)
            self.model.add_objects(self.num_objects, feats.key.shape[-2:])
        return FrameWork(image, pads, feats, prob, plan)

    def finish(self, work, write_memory=True, write_permanent=False):
        """Second half of :meth:`step`: value-encode and write memory; returns unpadded ``prob``."""
        self.model.observe(work.prob)
        if self.model.writes(work.plan, write_permanent):
            self.model.write(self, work, write_memory, write_permanent)
            self.last_mem_ti = self.curr_ti
        return unpad(work.prob, work.pads)

    # ---------------------------------------------------------------- state
    def state(self):
        """(tensors, json-able meta) that :meth:`from_state` turns back into an equal engine.
        The tensors are shared, not copied: nothing ever writes into them in place."""
        tensors, meta = self.model.state()
        meta = {**meta, "family": self.family, "num_objects": self.num_objects,
                "curr_ti": self.curr_ti, "last_mem_ti": self.last_mem_ti, "shot_length": self.shot_length}
        return tensors, meta

    @classmethod
    def from_state(cls, network, config, tensors, meta, device="cpu", precision="fp32", options=None):
        saved = meta.get("family", FAMILY_OF_UNMARKED_FILES)
        if saved != network.family:
            raise ValueError(f"this propagation state was made by a {saved} model, not by the loaded "
                             f"{network.family} model: load the weights it was made with")
        engine = cls(network, config, device, precision, options)
        engine.model.load_state({k: v.to(engine.device) for k, v in tensors.items()}, meta)
        engine.num_objects = meta["num_objects"]
        engine.curr_ti = meta["curr_ti"]
        engine.last_mem_ti = meta["last_mem_ti"]
        engine.shot_length = meta.get("shot_length")
        return engine


@dataclass
class FrameWork:
    image: torch.Tensor      # padded, [1,3,H,W]
    pads: tuple
    feats: object
    prob: torch.Tensor       # padded, [N+1,H,W]
    plan: Plan
