"""XMem and XMem++ behind the family interface (xmem-spec §4.2, §5.2).

Per clip: :class:`~memvos_core.memory.MemoryManager` (working, permanent and long-term memory
with object groups). Per object: the hidden state (64 channels). Nothing per frame.
"""
import torch

from ...runtime.frames import aggregate, pad
from ...memory import MemoryManager
from ...runtime.perf import prepare_network
from ..base import FamilyModel, Plan


class XMemModel(FamilyModel):
    family = "xmem"

    def __init__(self, network, config, device, precision, options):
        super().__init__(network, config, device, precision, options)
        self.calls = prepare_network(network, options)
        self.xmem_plus = config.memory_mode == "keyframes"
        self.memory = MemoryManager(config, options.sparse_readout, options.preallocate)
        self.hidden = None
        self.last_deep_update_ti = -config.deep_update_every

    # ------------------------------------------------------------- helpers
    def _grow_hidden(self, num_objects, grid_hw):
        have = 0 if self.hidden is None else self.hidden.shape[1]
        if have < num_objects:
            extra = self.network.init_hidden(1, num_objects - have, grid_hw, self.device)
            self.hidden = extra if self.hidden is None else torch.cat([self.hidden, extra], 1)

    def _encode_key(self, image, need_shrinkage, need_selection):
        with self.autocast():
            feats = self.calls.encode_key(image, need_shrinkage, need_selection)
        as32 = (lambda t: None if t is None else t.float())
        return feats._replace(key=as32(feats.key), shrinkage=as32(feats.shrinkage),
                              selection=as32(feats.selection))

    def _encode_value(self, image, feats, prob, deep_update):
        with self.autocast():
            value, hidden = self.calls.encode_value(
                image, feats.features, self.hidden, prob[1:].unsqueeze(0), deep_update)
        return value.float(), hidden.float() if hidden is not None else None

    # ----------------------------------------------------------- per frame
    def pad(self, image):
        return pad(image)

    def plan(self, engine, mask_given, valid_labels, end):
        cfg, ti = self.config, engine.curr_ti
        is_mem_frame = (ti - engine.last_mem_ti >= cfg.mem_every or mask_given) and not end
        first_frame_rule = self.xmem_plus or ti > 0
        need_segment = first_frame_rule and (valid_labels is None or len(valid_labels) != engine.num_objects)
        sync = cfg.deep_update_every < 0
        if sync:
            deep = is_mem_frame
        else:
            deep = ti - self.last_deep_update_ti >= cfg.deep_update_every and not end
        normal = (not sync or not deep) and not end
        return Plan(is_mem_frame, need_segment, normal, deep)

    def encode(self, image, plan):
        if plan is None:
            return self._encode_key(image, True, True)
        return self._encode_key(image, need_shrinkage=plan.is_mem_frame or self.xmem_plus,
                                need_selection=self.config.enable_long_term or plan.need_segment)

    def read(self, feats):
        return self.memory.read(feats.key, feats.selection).unsqueeze(0)

    def decode(self, feats, readout, plan):
        n = readout.shape[1]
        self._grow_hidden(n, feats.key.shape[-2:])
        with self.autocast():
            new_hidden, logits = self.calls.decode(feats.features, readout, self.hidden[:, :n], plan.update_sensory)
        prob = aggregate(torch.sigmoid(logits.float()[0]), dim=0)
        if plan.update_sensory and new_hidden is not None:
            self.hidden = torch.cat([new_hidden.float(), self.hidden[:, n:]], 1)
        return prob

    def add_objects(self, num_objects, grid_hw):
        self._grow_hidden(num_objects, grid_hw)

    def write(self, engine, work, write_memory, write_permanent):
        """``write_memory=False``: XMem++'s "already in permanent memory": the value is still
        encoded for the deep hidden update, but nothing is written."""
        feats, plan = work.feats, work.plan
        value, hidden = self._encode_value(work.image, feats, work.prob, plan.deep_update)
        if write_memory:
            self.memory.add(feats.key, feats.shrinkage, feats.selection, value,
                            list(range(engine.num_objects)), permanent=write_permanent)
        if plan.deep_update:
            self.hidden = hidden
            self.last_deep_update_ti = engine.curr_ti

    def add_permanent(self, engine, image, mask, slot=None):
        """XMem++: encode an annotated frame straight into permanent memory (no hidden update)."""
        image, _ = pad(image.to(self.device))
        image = image.unsqueeze(0)
        mask, _ = pad(mask.to(self.device).float())
        feats = self._encode_key(image, True, True)
        prob = aggregate(mask, dim=0)
        self._grow_hidden(engine.num_objects, feats.key.shape[-2:])
        value, _ = self._encode_value(image, feats, prob, deep_update=False)
        if slot is None:
            self.memory.add(feats.key, feats.shrinkage, feats.selection, value,
                            list(range(engine.num_objects)), permanent=True)
        else:
            self.memory.rewrite_permanent(slot, feats.key, feats.shrinkage, feats.selection, value)

    # ---------------------------------------------------------------- state
    @property
    def has_memory(self):
        return self.memory.working.size + self.memory.permanent.size > 0

    def state(self):
        tensors, memory_meta = self.memory.state()
        if self.hidden is not None:
            tensors["hidden"] = self.hidden
        return tensors, {"memory": memory_meta, "last_deep_update_ti": self.last_deep_update_ti}

    def load_state(self, tensors, meta):
        self.memory = MemoryManager.from_state(self.config, tensors, meta["memory"],
                                               self.options.sparse_readout, self.options.preallocate)
        self.hidden = tensors.get("hidden")
        self.last_deep_update_ti = meta["last_deep_update_ti"]
