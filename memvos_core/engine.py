"""One step per frame: encode -> read memory -> decode -> maybe write (spec §4.2, §5.2).

The engine works on one frame at a time at internal resolution, on the caller's device, and
owns its memory privately. Object ids here are internal and contiguous, 1..N; sessions map the
artist's ids onto them.
"""
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from .frames import aggregate, pad, unpad
from .memory import MemoryManager
from .network.features import KeyFeatures
from .perf import prepare_network, resolve_options

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def autocast_context(device, precision):
    """Autocast for fp16/bf16 on accelerators; fp32 (and CPU) run without it."""
    if precision == "fp32":
        return nullcontext()
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    device_type = torch.device(device).type
    if device_type == "cpu":
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    return torch.autocast(device_type, dtype=PRECISIONS[precision])


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
        self.calls = prepare_network(network, self.options)
        self.xmem_plus = config.memory_mode == "xmem++"
        self.memory = MemoryManager(config, self.options.sparse_readout, self.options.preallocate)
        self.num_objects = 0
        self.hidden = None
        self.curr_ti = -1
        self.last_mem_ti = 0
        self.last_deep_update_ti = -config.deep_update_every

    # ------------------------------------------------------------- helpers
    def set_num_objects(self, n):
        if n < self.num_objects:
            raise ValueError("objects cannot be removed from a running propagation")
        self.num_objects = n

    def _grow_hidden(self, grid_hw):
        have = 0 if self.hidden is None else self.hidden.shape[1]
        if have < self.num_objects:
            extra = self.network.init_hidden(1, self.num_objects - have, grid_hw, self.device)
            self.hidden = extra if self.hidden is None else torch.cat([self.hidden, extra], 1)

    def _encode_value(self, image, feats, prob, deep_update):
        with autocast_context(self.device, self.precision):
            value, hidden = self.calls.encode_value(
                image, feats.features, self.hidden, prob[1:].unsqueeze(0), deep_update)
        return value.float(), hidden.float() if hidden is not None else None

    def _encode_key(self, image, need_shrinkage, need_selection):
        with autocast_context(self.device, self.precision):
            feats = self.calls.encode_key(image, need_shrinkage, need_selection)
        as32 = (lambda t: None if t is None else t.float())
        return feats._replace(key=as32(feats.key), shrinkage=as32(feats.shrinkage),
                              selection=as32(feats.selection))

    def encode_keys(self, images):
        """Key features of several upcoming frames (normalised ``[3,H,W]`` each) in one batch,
        one :class:`KeyFeatures` per frame to hand to :meth:`step`. The key encoder does not
        depend on memory, so frames can be encoded ahead of the sequential loop."""
        batch = torch.stack([pad(image.to(self.device))[0] for image in images])
        feats = self._encode_key(batch, True, True)
        one = (lambda t, i: t[i:i + 1])
        return [KeyFeatures(one(feats.key, i), one(feats.shrinkage, i), one(feats.selection, i),
                            tuple(one(f, i) for f in feats.features)) for i in range(len(images))]

    # ---------------------------------------------------------------- steps
    def add_permanent(self, image, mask, slot=None):
        """XMem++: encode an annotated frame straight into permanent memory (no hidden update).

        ``mask`` ``[N,H,W]`` one-hot over every object known so far (N == num_objects)."""
        image, _ = pad(image.to(self.device))
        image = image.unsqueeze(0)
        mask, _ = pad(mask.to(self.device).float())
        feats = self._encode_key(image, True, True)
        prob = aggregate(mask, dim=0)
        self._grow_hidden(feats.key.shape[-2:])
        value, _ = self._encode_value(image, feats, prob, deep_update=False)
        objects = list(range(self.num_objects))
        if slot is None:
            self.memory.add(feats.key, feats.shrinkage, feats.selection, value, objects, permanent=True)
        else:
            self.memory.rewrite_permanent(slot, feats.key, feats.shrinkage, feats.selection, value)

    # ---------------------------------------------------------------- state
    def state(self):
        """(tensors, json-able meta) that :meth:`from_state` turns back into an equal engine.
        The tensors are shared, not copied: nothing ever writes into them in place."""
        tensors, memory_meta = self.memory.state()
        if self.hidden is not None:
            tensors["hidden"] = self.hidden
        meta = {"memory": memory_meta, "num_objects": self.num_objects, "curr_ti": self.curr_ti,
                "last_mem_ti": self.last_mem_ti, "last_deep_update_ti": self.last_deep_update_ti}
        return tensors, meta

    @classmethod
    def from_state(cls, network, config, tensors, meta, device="cpu", precision="fp32", options=None):
        engine = cls(network, config, device, precision, options)
        moved = {k: v.to(engine.device) for k, v in tensors.items()}
        engine.memory = MemoryManager.from_state(config, moved, meta["memory"],
                                                 engine.options.sparse_readout, engine.options.preallocate)
        engine.hidden = moved.get("hidden")
        engine.num_objects = meta["num_objects"]
        engine.curr_ti = meta["curr_ti"]
        engine.last_mem_ti = meta["last_mem_ti"]
        engine.last_deep_update_ti = meta["last_deep_update_ti"]
        return engine

    def step(self, image, mask=None, valid_labels=None, end=False, write_memory=True,
             write_permanent=False, feats=None):
        """Process the next frame and return probabilities ``[num_objects+1, H, W]`` (background
        first) at the input's size. ``write_memory=False`` is XMem++'s "already in permanent
        memory": the value is still encoded for the deep hidden update, but nothing is written.
        ``write_permanent=True`` writes this frame to permanent instead of working memory (an
        annotation reached during propagation, XMem++ mode). ``feats``: this frame's features
        from :meth:`encode_keys`, if it was encoded ahead."""
        work = self.begin(image, mask, valid_labels, end, feats)
        return self.finish(work, write_memory=write_memory, write_permanent=write_permanent)

    def begin(self, image, mask=None, valid_labels=None, end=False, feats=None):
        """First half of :meth:`step`: encode, read memory, decode, merge the annotation.
        Returns the frame's work; its ``prob`` (padded) may be replaced before :meth:`finish`
        (test-time augmentation writes the averaged probabilities into every variant's memory)."""
        cfg = self.config
        self.curr_ti += 1
        image, pads = pad(image.to(self.device))
        image = image.unsqueeze(0)
        is_mem_frame = (self.curr_ti - self.last_mem_ti >= cfg.mem_every or mask is not None) and not end
        first_frame_rule = self.xmem_plus or self.curr_ti > 0
        need_segment = first_frame_rule and (valid_labels is None or len(valid_labels) != self.num_objects)
        sync = cfg.deep_update_every < 0
        if sync:
            is_deep_update = is_mem_frame
        else:
            is_deep_update = self.curr_ti - self.last_deep_update_ti >= cfg.deep_update_every and not end
        is_normal_update = (not sync or not is_deep_update) and not end

        if feats is None:
            feats = self._encode_key(image, need_shrinkage=is_mem_frame or self.xmem_plus,
                                     need_selection=cfg.enable_long_term or need_segment)
        prob = None
        if need_segment:
            if self.memory.working.size + self.memory.permanent.size == 0:
                raise RuntimeError("nothing to propagate from: the memory is empty (no annotated frame yet)")
            readout = self.memory.read(feats.key, feats.selection).unsqueeze(0)
            self._grow_hidden(feats.key.shape[-2:])
            hidden_in = self.hidden[:, :readout.shape[1]]
            with autocast_context(self.device, self.precision):
                new_hidden, logits = self.calls.decode(feats.features, readout, hidden_in, is_normal_update)
            prob = aggregate(torch.sigmoid(logits.float()[0]), dim=0)
            if is_normal_update and new_hidden is not None:
                self.hidden = torch.cat([new_hidden.float(), self.hidden[:, readout.shape[1]:]], 1)

        if mask is not None:
            mask, _ = pad(mask.to(self.device).float())
            if prob is not None:
                mask = merge_partial_annotation(prob[1:], mask, valid_labels)
            prob = aggregate(mask, dim=0)
            self._grow_hidden(feats.key.shape[-2:])
        return FrameWork(image, pads, feats, prob, is_mem_frame, is_deep_update)

    def finish(self, work, write_memory=True, write_permanent=False):
        """Second half of :meth:`step`: value-encode and write memory; returns unpadded ``prob``."""
        if work.is_mem_frame:
            value, hidden = self._encode_value(work.image, work.feats, work.prob, work.is_deep_update)
            if write_memory:
                self.memory.add(work.feats.key, work.feats.shrinkage, work.feats.selection, value,
                                list(range(self.num_objects)), permanent=write_permanent)
            self.last_mem_ti = self.curr_ti
            if work.is_deep_update:
                self.hidden = hidden
                self.last_deep_update_ti = self.curr_ti
        return unpad(work.prob, work.pads)


@dataclass
class FrameWork:
    image: torch.Tensor      # padded, [1,3,H,W]
    pads: tuple
    feats: object
    prob: torch.Tensor       # padded, [N+1,H,W]
    is_mem_frame: bool
    is_deep_update: bool


def merge_partial_annotation(predicted, mask, valid_labels):
    """A mask that names only some objects overrides only those objects and the area it covers:
    predictions vanish where the mask has any object; objects it does not name keep the
    prediction (spec §4.2 step 7). predicted ``[K,H,W]`` (K may be < N for new objects)."""
    covered = mask.sum(0) > 0.5
    predicted = predicted.masked_fill(covered, 0)
    if valid_labels is None:
        return mask
    mask = mask.clone()
    for i in range(predicted.shape[0]):
        if (i + 1) not in valid_labels:
            mask[i] = predicted[i]
    return mask
