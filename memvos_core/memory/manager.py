"""Working, permanent and long-term memory, read and consolidated together (spec §4.4–4.8, §5.1).

``memory_mode="evaluation"``: XMem's manager. The first working-memory frame is never consolidated.
``memory_mode="keyframes"``: XMem++'s manager. Annotations live in a permanent store that is read
with everything else but never counted, consolidated or pruned; all of the temporary working
memory may be consolidated.

``sparse_readout`` and ``preallocate`` are the speed options of :mod:`..perf`; they give the
same results to rounding.
"""
import torch

from .similarity import (query_major_similarity, readout, similarity, softmax, sparse_readout,
                         topk_softmax, topk_weights)
from .store import MemoryStore

STORES = ("working", "permanent", "long_term")


class MemoryManager:
    def __init__(self, config, sparse_readout=False, preallocate=False):
        self.config = config
        self.sparse_readout = sparse_readout
        self.preallocate = preallocate
        self.sticky_first_frame = config.memory_mode == "evaluation"
        self.grid_size = None  # HW: memory elements per frame, set at the first write
        lt = config.enable_long_term
        self.working = MemoryStore(count_usage=lt)
        self.permanent = MemoryStore(count_usage=False)
        self.long_term = MemoryStore(count_usage=lt and config.enable_long_term_count_usage)

    def _reserves(self):
        """Buffer sizes per store: the most each can hold (working memory is consolidated when
        it reaches ``max_mid_term_frames``; permanent memory grows with keyframes)."""
        if not self.preallocate:
            return dict.fromkeys(STORES, 0)
        hw, cfg = self.grid_size, self.config
        return {"working": cfg.max_mid_term_frames * hw, "permanent": 2 * hw,
                "long_term": cfg.max_long_term_elements}

    # ------------------------------------------------------------------ read
    def read(self, query_key, query_selection):
        """Memory readout for one frame: ``[num_objects, Cv, h, w]`` in object order."""
        h, w = query_key.shape[-2:]
        qk = query_key.flatten(start_dim=2)
        qe = None if query_selection is None else query_selection.flatten(start_dim=2)
        stores = [s for s in (self.long_term, self.working, self.permanent) if s.size > 0]
        mem_key = _cat([s.key for s in stores])
        mem_shrinkage = _cat([s.shrinkage for s in stores])
        # Dense: rows are memory elements. Sparse: rows are queries, so top-k runs along rows.
        axis = 2 if self.sparse_readout else 1
        sim = (query_major_similarity if self.sparse_readout else similarity)(mem_key, mem_shrinkage, qk, qe)
        bounds, offset = {}, 0
        for s in stores:
            bounds[id(s)] = (offset, offset + s.size)
            offset += s.size

        readouts = []
        num_groups = max(self.working.num_groups, self.permanent.num_groups)
        for gi in range(num_groups):
            parts = [(s, s.group_size(gi)) for s in stores if s.group_size(gi) > 0]
            group_sim = _cat([sim.narrow(axis, bounds[id(s)][1] - n, n) for s, n in parts], axis)
            group_values = [s.values[gi] for s, _ in parts]
            record = gi == 0 and self.config.enable_long_term
            if self.sparse_readout:
                weights, indices = topk_weights(group_sim, self.config.top_k, dim=2)
                readouts.append(sparse_readout(weights, indices, group_values))
                if record:
                    usage = weights.new_zeros(1, group_sim.shape[2])
                    self._record_usage(usage.index_add_(1, indices.flatten(), weights.flatten()[None]), parts)
            else:
                affinity = topk_softmax(group_sim, self.config.top_k)
                if record:
                    self._record_usage(affinity.sum(dim=2), parts)
                readouts.append(readout(affinity, _cat(group_values)))
        out = torch.cat(readouts, 0)
        return out.view(out.shape[0], out.shape[1], h, w)

    def _record_usage(self, usage, parts):
        """Usage of group 0's read, handed to the stores it covers (never to permanent memory)."""
        offset = 0
        for s, n in parts:
            part = usage[:, offset:offset + n]
            offset += n
            if s is self.permanent:
                continue
            if n < s.size:  # a store whose first group started late: its older elements got no read
                part = torch.cat([part.new_zeros(part.shape[0], s.size - n), part], 1)
            s.update_usage(part)

    # ----------------------------------------------------------------- write
    def add(self, key, shrinkage, selection, value, objects, permanent=False):
        """Write one frame. key ``[1,Ck,h,w]``; value ``[1,num_objects,Cv,h,w]``; objects are
        0-based indices of every object known at this frame."""
        if self.grid_size is None:
            self.grid_size = key.shape[-2] * key.shape[-1]
            for name, reserve in self._reserves().items():
                getattr(self, name).set_reserve(reserve)
        key = key.flatten(start_dim=2)
        shrinkage = shrinkage.flatten(start_dim=2)
        value = value[0].flatten(start_dim=2)
        keep_selection = self.config.enable_long_term and selection is not None
        selection = selection.flatten(start_dim=2) if keep_selection else None
        target, other = (self.permanent, self.working) if permanent else (self.working, self.permanent)
        target.add(key, shrinkage, selection, value, objects)
        if not self.sticky_first_frame:
            other.ensure_groups(target.groups, value)
        if not permanent and self.config.enable_long_term:
            self._consolidate_if_full()

    def rewrite_permanent(self, slot, key, shrinkage, selection, value):
        """Replace permanent slot ``slot`` (frames in insertion order) in place."""
        hw = self.grid_size
        keep_selection = self.config.enable_long_term and selection is not None
        self.permanent.rewrite_range(
            slot * hw, key.flatten(start_dim=2), shrinkage.flatten(start_dim=2),
            selection.flatten(start_dim=2) if keep_selection else None, value[0].flatten(start_dim=2))

    # --------------------------------------------------------- consolidation
    def _consolidate_if_full(self):
        cfg, hw = self.config, self.grid_size
        min_work = cfg.min_mid_term_frames * hw
        if self.working.size < cfg.max_mid_term_frames * hw:
            return
        lt_room = cfg.max_long_term_elements - cfg.num_prototypes
        if self.long_term.size >= lt_room:
            self.long_term.prune(lt_room)
        if self.sticky_first_frame:   # XMem: frame 0 stays, newest T_min-1 frames stay
            start, keep_tail, candidate_min = hw, min_work - hw, min_work + hw
        else:                         # XMem++: newest T_min frames stay
            start, keep_tail, candidate_min = 0, min_work, min_work
        self._consolidate(start, keep_tail, candidate_min)
        self.working.remove_range(start, keep_tail, min_group_size=min_work + hw)

    def _consolidate(self, start, keep_tail, candidate_min):
        wm = self.working
        end = wm.size - keep_tail
        candidate_values = []
        for gv in wm.values:
            n = gv.shape[-1]
            if n == wm.size or n > candidate_min:
                candidate_values.append(gv[:, :, start:n - keep_tail])
            else:
                candidate_values.append(None)  # this group has nothing old enough
        key, shrinkage, selection, usage = wm.slice(start, end)
        n_candidates = key.shape[-1]
        k = min(self.config.num_prototypes, n_candidates)
        indices = torch.topk(usage, k=k, dim=-1, sorted=True)[1].flatten()
        proto_key = key[:, :, indices]
        proto_selection = None if selection is None else selection[:, :, indices]
        # Potentiation: each prototype's value is a softmax-weighted average of candidates.
        sim = similarity(key, shrinkage, proto_key, proto_selection)
        affinities, proto_values = [], []
        for gv in candidate_values:
            if gv is None:
                affinities.append(None)
                proto_values.append(None)
                continue
            valid = indices >= n_candidates - gv.shape[-1]
            if not bool(valid.any()):
                affinities.append(None)
                proto_values.append(None)
                continue
            aff = softmax(sim[:, -gv.shape[-1]:, valid])
            affinities.append(aff)
            proto_values.append(readout(aff, gv))
        proto_shrinkage = readout(affinities[0], shrinkage)
        self.long_term.add_grouped(proto_key, proto_shrinkage, proto_values, wm.groups)

    # ---------------------------------------------------------------- state
    def state(self):
        tensors, meta = {}, {"grid_size": self.grid_size}
        for name in STORES:
            t, m = getattr(self, name).state(name)
            tensors.update(t)
            meta[name] = m
        return tensors, meta

    @classmethod
    def from_state(cls, config, tensors, meta, sparse_readout=False, preallocate=False):
        mm = cls(config, sparse_readout, preallocate)
        mm.grid_size = meta["grid_size"]
        reserves = mm._reserves() if mm.grid_size is not None else dict.fromkeys(STORES, 0)
        for name in STORES:
            setattr(mm, name, MemoryStore.from_state(tensors, meta[name], name, reserves[name]))
        return mm

    def sizes(self):
        return {"working": self.working.size, "permanent": self.permanent.size,
                "long_term": self.long_term.size}


def _cat(tensors, dim=-1):
    """Concatenation that hands a single tensor back as is (no copy)."""
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim)
