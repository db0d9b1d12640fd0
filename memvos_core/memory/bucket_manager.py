"""Cutie's memory manager (cutie-spec §3.4, §3.13): working and long-term memory per bucket.

Every bucket is read on its own (one similarity and one top-k affinity, shared by the bucket's
objects); its objects are then handed, in chunks, to a callback that turns the visual readout
into what the decoder gets (pixel fusion and object transformer live in the network). Without
long-term memory a bucket keeps its permanent frames and the newest ``max_mem_frames - 1``
others; with it, old frames are consolidated into prototypes and the long-term store is pruned
by usage with a hysteresis buffer. Permanent frames are never consolidated or dropped.

Settings come from :class:`~memvos_core.config.MemoryConfig` under XMem's names where the two
families share the idea (``max_mid_term_frames`` = Cutie's ``long_term.max_mem_frames`` ...).
"""
import torch

from .bucket_store import BucketStore
from .similarity import (query_major_similarity, readout, similarity, softmax, sparse_readout,
                         topk_softmax, topk_weights)


class BucketMemory:
    def __init__(self, config, sparse_readout=False):
        self.config = config
        self.sparse_readout = sparse_readout
        lt = config.enable_long_term
        self.working = BucketStore(keep_selection=lt, count_usage=lt)
        self.long_term = BucketStore(keep_selection=False, count_usage=lt and config.enable_long_term_count_usage)
        self.grid_size = None  # tokens per frame, from the first write

    @property
    def has_memory(self):
        return bool(self.working.buckets)

    def _limits(self):
        """Temporary tokens a bucket may hold / keeps after consolidating. Frame counts include
        the permanent first frame, hence the minus one (as the reference counts them)."""
        cfg, hw = self.config, self.grid_size
        if cfg.enable_long_term:
            return (cfg.max_mid_term_frames - 1) * hw, (cfg.min_mid_term_frames - 1) * hw
        return (cfg.max_mem_frames - 1) * hw, None

    # ------------------------------------------------------------------ read
    def read(self, query_key, query_selection, read_objects):
        """For every object, what ``read_objects(object_ids, visual_readout [1,n,Cv,h,w])``
        returns (``[1,n,C,h,w]``) for the chunk it was read in: object id -> ``[1,C,h,w]``."""
        h, w = query_key.shape[-2:]
        qk = query_key.flatten(start_dim=2)
        qe = query_selection.flatten(start_dim=2)
        cfg = self.config
        out = {}
        for b, objects in self.working.buckets.items():
            use_long_term = cfg.enable_long_term and self.long_term.size(b) > 0
            stores = [self.long_term, self.working] if use_long_term else [self.working]
            key = _cat([s.key(b) for s in stores])
            shrinkage = _cat([s.shrinkage(b) for s in stores])
            if self.sparse_readout:
                sim = query_major_similarity(key, shrinkage, qk, qe)
                weights, indices = topk_weights(sim, cfg.top_k, dim=2)
                usage = weights.new_zeros(1, key.shape[-1]).index_add_(1, indices.flatten(), weights.flatten()[None])
            else:
                affinity = topk_softmax(similarity(key, shrinkage, qk, qe), cfg.top_k)
                usage = affinity.sum(dim=2)
            if cfg.enable_long_term:
                lt_size = self.long_term.size(b)
                self.working.update_usage(b, usage[:, lt_size:])
                self.long_term.update_usage(b, usage[:, :lt_size])
            chunk = len(objects) if cfg.chunk_size < 1 else cfg.chunk_size
            for i in range(0, len(objects), chunk):
                ids = objects[i:i + chunk]
                values = [s.values(ids) for s in stores]
                if self.sparse_readout:
                    visual = sparse_readout(weights, indices, values)
                else:
                    visual = readout(affinity, _cat(values))
                result = read_objects(ids, visual.view(1, len(ids), visual.shape[1], h, w))
                out.update({o: result[:, j] for j, o in enumerate(ids)})
        return out

    # ----------------------------------------------------------------- write
    def add(self, key, shrinkage, selection, value, objects, as_permanent="first"):
        """Write one frame. key ``[1,Ck,h,w]``; value ``[1,n,Cv,h,w]`` of ``objects`` (ids)."""
        if self.grid_size is None:
            self.grid_size = key.shape[-2] * key.shape[-1]
        flat = value.flatten(start_dim=3)
        values = {o: flat[:, i] for i, o in enumerate(objects)}
        keep = self.config.enable_long_term
        self.working.add(key.flatten(start_dim=2), shrinkage.flatten(start_dim=2),
                         selection.flatten(start_dim=2) if keep else None, values, as_permanent)
        max_work, min_work = self._limits()
        for b in list(self.working.buckets):
            if not keep:
                self.working.keep_newest(b, max_work)
            elif self.working.temporary_size(b) >= max_work:
                cfg = self.config
                if self.long_term.size(b) >= cfg.max_long_term_elements - cfg.num_prototypes:
                    self.long_term.prune(b, cfg.max_long_term_elements - cfg.num_prototypes - cfg.buffer_tokens)
                self._consolidate(b, min_work)

    def _consolidate(self, b, min_work):
        """Turn the oldest temporary frames of bucket ``b`` into prototypes (spec §3.13.3)."""
        wm = self.working
        stop = wm.temporary_size(b) - min_work
        key, shrinkage, selection, values, usage = wm.temporary_slice(b, 0, stop)
        k = min(self.config.num_prototypes, key.shape[-1])
        indices = torch.topk(usage[0], k=k, sorted=True).indices
        proto_key = key[:, :, indices]
        affinity = softmax(similarity(key, shrinkage, proto_key, selection[:, :, indices]))
        proto_values = {o: readout(affinity, v) for o, v in values.items()}
        wm.remove_temporary(b, 0, stop)
        self.long_term.add(proto_key, readout(affinity, shrinkage), None, proto_values, "no", bucket=b)

    def purge_except(self, keep):
        self.working.purge_except(keep)
        self.long_term.purge_except(keep)

    # ----------------------------------------------------------------- state
    def sizes(self):
        wm, lt = self.working, self.long_term
        return {"working": sum(wm.temporary_size(b) for b in wm.buckets),
                "permanent": sum(wm.perm.get(b, 0) for b in wm.buckets),
                "long_term": sum(lt.size(b) for b in lt.buckets)}

    def bucket_sizes(self):
        """Per bucket: objects, permanent and temporary working elements, long-term elements."""
        wm, lt = self.working, self.long_term
        return [{"objects": list(objs), "permanent": wm.perm.get(b, 0), "temporary": wm.temporary_size(b),
                 "long_term": lt.size(b)} for b, objs in wm.buckets.items()]

    def state(self):
        tensors, meta = {}, {"grid_size": self.grid_size}
        for name in ("working", "long_term"):
            t, m = getattr(self, name).state(name)
            tensors.update(t)
            meta[name] = m
        return tensors, meta

    @classmethod
    def from_state(cls, config, tensors, meta, sparse_readout=False):
        memory = cls(config, sparse_readout)
        memory.grid_size = meta["grid_size"]
        memory.working = BucketStore.from_state(tensors, meta["working"], "working")
        memory.long_term = BucketStore.from_state(tensors, meta["long_term"], "long_term")
        return memory


def _cat(tensors, dim=-1):
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim)
