"""Cutie behind the family interface (cutie-spec §3).

Per clip: :class:`~memvos_core.memory.bucket_manager.BucketMemory` (working and long-term memory
per object bucket, permanent prefixes). Per object: the sensory state (256 channels, float32)
and the object memory (running sums of object summaries, never forgotten). Per frame: the
previous output's object probabilities (``last_mask``), an input of the next read.

Objects get a stable internal id when they first appear (an
:class:`~memvos_core.memory.object_order.ObjectOrder`); their position in every tensor is their
order of appearance (the reference's "tmp id" minus one), which deletion renumbers.
"""
import numpy as np
import torch
import torch.nn.functional as F

from ...runtime.frames import aggregate_logits, pad_normalized
from ...memory.bucket_manager import BucketMemory
from ...memory.object_order import ObjectOrder
from ...runtime.perf import prepare_network
from ..base import FamilyModel, Plan


def stagger_offsets(mem_every, updates):
    """Frames after a memory write on which the decoder updates the sensory state (spec §3.10,
    NumPy's half-to-even rounding as the reference)."""
    if updates >= mem_every:
        return frozenset(range(1, mem_every + 1))
    return frozenset(int(v) for v in np.round(np.linspace(1, mem_every, updates)))


def check_cutie_config(config):
    """Settings Cutie cannot run with, as one clear error."""
    if config.enable_long_term:
        target = config.max_long_term_elements - config.num_prototypes - config.buffer_tokens
        if target < 1:
            raise ValueError(
                f"memory settings: Cutie prunes long-term memory to max_long_term_elements - num_prototypes - "
                f"buffer_tokens = {target} elements; raise max_long_term_elements "
                f"({config.max_long_term_elements}) or lower buffer_tokens ({config.buffer_tokens})")


class CutieModel(FamilyModel):
    family = "cutie"

    def __init__(self, network, config, device, precision, options):
        super().__init__(network, config, device, precision, options)
        check_cutie_config(config)
        # Layout options apply to any network; compiled calls are XMem's method set.
        prepare_network(network, options.replace(compile=""))
        self.memory = BucketMemory(config, options.sparse_readout)
        self.stagger = stagger_offsets(config.mem_every, config.stagger_updates)
        self.object_ids = ObjectOrder()   # stable ids, in order of appearance
        self.sensory = {}          # id -> [1, Cs, h, w] float32
        self.object_memory = {}    # id -> [1, Q, C + 1] float32 running sums
        self.last_mask = None      # [1, N, H, W]

    def _stack(self, table, ids):
        return torch.stack([table[i] for i in ids], 1)

    # ----------------------------------------------------------- per frame
    def pad(self, image):
        return pad_normalized(image, rgb_zero=True)

    def plan(self, engine, mask_given, valid_labels, end):
        since = engine.curr_ti - engine.last_mem_ti
        n, known = engine.num_objects, len(self.object_ids)
        is_mem_frame = (since >= self.config.mem_every or mask_given) and not end
        # Segment without an annotation, or when it brings new objects or leaves some out: the
        # prediction of the others is kept (the reference would take a mask of known ids only
        # as complete and fail on a partial one).
        covers_all = valid_labels is None or set(valid_labels) >= set(range(1, n + 1))
        need_segment = not mask_given or (known > 0 and (n > known or not covers_all))
        update_sensory = since in self.stagger and not end
        return Plan(is_mem_frame, need_segment, update_sensory, True)

    def encode(self, image, plan):
        with self.autocast():
            feats = self.network.encode_key(image, True, True)
        return feats._replace(key=feats.key.float(), shrinkage=feats.shrinkage.float(),
                              selection=feats.selection.float())

    def read(self, feats):
        def read_objects(ids, visual):
            sensory = self._stack(self.sensory, ids)
            last = self.last_mask[:, self.object_ids.positions(ids)]
            with self.autocast():
                return self.network.read_objects(feats.features, visual, sensory, last,
                                                 self._stack(self.object_memory, ids))

        readout = self.memory.read(feats.key, feats.selection, read_objects)
        return torch.stack([readout[i] for i in self.object_ids], 1)

    def decode(self, feats, readout, plan):
        ids = self.object_ids
        with self.autocast():
            sensory, logits = self.network.decode(feats.features, readout, self._stack(self.sensory, ids),
                                                  plan.update_sensory, self.config.chunk_size)
        # Soft aggregation at stride 4; the aggregated log-odds are upsampled (spec §3.7).
        log_odds = aggregate_logits(torch.sigmoid(logits.float()), dim=1)
        log_odds = F.interpolate(log_odds, scale_factor=4, mode="bilinear", align_corners=False)
        if plan.update_sensory:
            self.sensory.update({i: sensory[:, j].float() for j, i in enumerate(ids)})
        return torch.softmax(log_odds, dim=1)[0]

    def add_objects(self, num_objects, grid_hw):
        for i in self.object_ids.grow_to(num_objects):
            self.sensory[i] = torch.zeros(1, self.network.sensory_dim, *grid_hw, device=self.device)

    def observe(self, prob):
        self.last_mask = prob[1:].unsqueeze(0)

    def writes(self, plan, write_permanent):
        return plan.is_mem_frame or write_permanent

    def write(self, engine, work, write_memory, write_permanent):
        """``write_permanent``: the frame goes to the permanent part of every bucket (Cutie's
        ``force_permanent``). ``write_memory=False`` (a keyframe already committed to permanent
        memory) still writes it as an ordinary memory frame: that is Cutie's keyframe procedure
        (``process_video.py`` commits each keyframe, then steps it again with its mask)."""
        del write_memory
        ids, feats = self.object_ids, work.feats
        with self.autocast():
            value, sensory, summaries = self.network.encode_mask(
                work.image, feats.features, self._stack(self.sensory, ids), self.last_mask,
                True, self.config.chunk_size)
        for j, i in enumerate(ids):
            new = summaries[:, j].float()
            self.object_memory[i] = self.object_memory[i] + new if i in self.object_memory else new
        self.memory.add(feats.key, feats.shrinkage, feats.selection, value.float(), ids,
                        "all" if write_permanent else "first")
        self.sensory.update({i: sensory[:, j].float() for j, i in enumerate(ids)})

    def add_permanent(self, engine, image, mask, slot=None):
        """Commit an annotated frame to permanent memory: a full step with ``force_permanent``,
        as Cutie's keyframe procedure does (it also feeds the sensory state and the last mask)."""
        if slot is not None:
            raise ValueError("Cutie's permanent memory has no slots to rewrite: start a new propagation")
        engine.step(image, mask, list(range(1, engine.num_objects + 1)), write_permanent=True)

    def delete_objects(self, positions):
        before = self.object_ids.ids
        gone = self.object_ids.remove_at(positions)
        keep = [p for p, i in enumerate(before) if i not in gone]
        self.memory.purge_except(self.object_ids)
        # Unlike the reference, forget the object memory too and re-index the last mask.
        for table in (self.sensory, self.object_memory):
            for i in gone:
                table.pop(i, None)
        if self.last_mask is not None:
            self.last_mask = self.last_mask[:, keep]

    # ---------------------------------------------------------------- state
    @property
    def has_memory(self):
        return self.memory.has_memory

    def state(self):
        tensors, memory_meta = self.memory.state()
        tensors.update({f"sensory.{i}": t for i, t in self.sensory.items()})
        tensors.update({f"object_memory.{i}": t for i, t in self.object_memory.items()})
        if self.last_mask is not None:
            tensors["last_mask"] = self.last_mask
        meta = {"memory": memory_meta, **self.object_ids.state()}
        return _unshared(tensors), meta

    def load_state(self, tensors, meta):
        self.memory = BucketMemory.from_state(self.config, tensors, meta["memory"], self.options.sparse_readout)
        self.object_ids = ObjectOrder.from_state(meta)
        self.sensory = {i: tensors[f"sensory.{i}"] for i in self.object_ids if f"sensory.{i}" in tensors}
        self.object_memory = {i: tensors[f"object_memory.{i}"] for i in self.object_ids
                              if f"object_memory.{i}" in tensors}
        self.last_mask = tensors.get("last_mask")


def _unshared(tensors):
    """The state with no two tensors on one storage: objects updated together hold views of one
    tensor (sensory state, summaries, values), and safetensors refuses tensors that overlap.
    Only such tensors are copied."""
    seen, out = set(), {}
    for name, t in tensors.items():
        ptr = t.untyped_storage().data_ptr()
        if t.numel() and ptr in seen:
            t = t.clone()
        seen.add(ptr)
        out[name] = t
    return out
