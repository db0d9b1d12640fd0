"""One key-value store of object *buckets* (Cutie's working or long-term memory, cutie-spec §3.13.1).

A bucket is the set of objects first written together. Unlike XMem's groups (suffixes of one
shared key tensor) every bucket owns its keys, so buckets are read, consolidated and pruned
independently. Per bucket: keys ``[1,Ck,N]``, shrinkage ``[1,1,N]`` and the length of the
permanent prefix; selection and usage counters cover the temporary part only. Per object: values
``[1,Cv,N]`` aligned with its bucket's keys.

Tensors are replaced at every change, never written in place, so exported state can share them.
"""
import torch

NEW_LIFE = 1e-7
FIELDS = ("key", "shrinkage", "selection", "use_count", "life_count")


class BucketStore:
    def __init__(self, keep_selection, count_usage):
        self.keep_selection = keep_selection
        self.count_usage = count_usage
        self.buckets = {}    # bucket id -> object ids (creation order)
        self.perm = {}       # bucket id -> permanent prefix length
        self.tensors = {name: {} for name in FIELDS}   # field -> bucket id -> tensor
        self.value = {}      # object id -> [1, Cv, N]
        self.next_bucket = 0

    # ---------------------------------------------------------------- queries
    def key(self, b):
        return self.tensors["key"][b]

    def shrinkage(self, b):
        return self.tensors["shrinkage"][b]

    def size(self, b):
        return self.key(b).shape[-1] if b in self.tensors["key"] else 0

    def temporary_size(self, b):
        return self.size(b) - self.perm.get(b, 0)

    def usage(self, b):
        return self.tensors["use_count"][b] / self.tensors["life_count"][b]

    def bucket_of(self, obj):
        return next((b for b, objs in self.buckets.items() if obj in objs), None)

    def values(self, objects):
        """``[n, Cv, N]`` of objects of one bucket."""
        return torch.cat([self.value[o] for o in objects], 0)

    # --------------------------------------------------------------- writing
    def add(self, key, shrinkage, selection, values, as_permanent="no", bucket=None):
        """Append one write. values: object id -> ``[1,Cv,N]``. ``as_permanent``: ``"no"``,
        ``"first"`` (permanent for a bucket with no permanent part yet, i.e. its first write) or
        ``"all"`` (permanent, put in front of the older permanent elements). Objects not yet
        stored form one new bucket (or ``bucket``, to mirror another store's bucket ids)."""
        n = key.shape[-1]
        prepend = as_permanent == "all"
        enabled = []
        for obj, value in values.items():
            if obj in self.value:
                old = self.value[obj]
                self.value[obj] = torch.cat([value, old] if prepend else [old, value], -1)
                b = self.bucket_of(obj)
            else:
                self.value[obj] = value
                if bucket is None:
                    bucket = self.next_bucket
                    self.next_bucket += 1
                b = bucket
                self.buckets.setdefault(b, [])
                self.buckets[b] = self.buckets[b] + [obj]
                self.next_bucket = max(self.next_bucket, b + 1)
            if b not in enabled:
                enabled.append(b)
        for b in enabled:
            permanent = prepend or (as_permanent == "first" and self.perm.get(b, 0) == 0)
            if permanent:
                self.perm[b] = self.perm.get(b, 0) + n
            self._extend(b, "key", key, permanent)
            self._extend(b, "shrinkage", shrinkage, permanent)
            if permanent:
                continue
            if self.keep_selection:
                self._extend(b, "selection", selection, False)
            if self.count_usage:
                zeros = torch.zeros(key.shape[0], n, device=key.device, dtype=torch.float32)
                self._extend(b, "use_count", zeros, False)
                self._extend(b, "life_count", zeros + NEW_LIFE, False)

    def _extend(self, b, name, x, prepend):
        store = self.tensors[name]
        old = store.get(b)
        store[b] = x if old is None else torch.cat([x, old] if prepend else [old, x], -1)

    def update_usage(self, b, usage):
        """usage ``[1, N_b]`` of one read (permanent part included, and ignored)."""
        if not self.count_usage:
            return
        usage = usage[:, self.perm.get(b, 0):]
        if usage.shape[-1] == 0:
            return
        self.tensors["use_count"][b] = self.tensors["use_count"][b] + usage
        self.tensors["life_count"][b] = self.tensors["life_count"][b] + 1

    def temporary_slice(self, b, start, stop):
        """Keys, shrinkage, selection, values (object -> tensor) and normalised usage of
        temporary elements ``[start, stop)``."""
        p = self.perm.get(b, 0)
        sel = self.tensors["selection"].get(b)
        return (self.key(b)[:, :, p + start:p + stop], self.shrinkage(b)[:, :, p + start:p + stop],
                None if sel is None else sel[:, :, start:stop],
                {o: self.value[o][:, :, p + start:p + stop] for o in self.buckets[b]},
                self.usage(b)[:, start:stop] if self.count_usage else None)

    def remove_temporary(self, b, start, stop):
        """Drop temporary elements ``[start, stop)`` of bucket ``b``."""
        p = self.perm.get(b, 0)
        for name, store in self.tensors.items():
            if b in store:
                offset = p if name in ("key", "shrinkage") else 0
                t = store[b]
                store[b] = torch.cat([t[..., :offset + start], t[..., offset + stop:]], -1)
        for o in self.buckets[b]:
            v = self.value[o]
            self.value[o] = torch.cat([v[:, :, :p + start], v[:, :, p + stop:]], -1)

    def keep_newest(self, b, count):
        """Keep the newest ``count`` temporary elements (FIFO without long-term memory)."""
        extra = self.temporary_size(b) - count
        if extra > 0:
            self.remove_temporary(b, 0, extra)

    def prune(self, b, max_size):
        """Keep the ``max_size`` most used elements, in decreasing order of usage (spec
        §3.13.4). Without usage counts (the reference refuses) the newest are kept."""
        if self.size(b) <= max_size:
            return
        if self.count_usage:
            survivors = torch.topk(self.usage(b)[0], k=max_size).indices
        else:
            survivors = torch.arange(self.size(b) - max_size, self.size(b), device=self.key(b).device)
        for store in self.tensors.values():
            if b in store:
                store[b] = store[b][..., survivors]
        for o in self.buckets[b]:
            self.value[o] = self.value[o][:, :, survivors]

    def purge_except(self, keep):
        """Forget every object not in ``keep``; buckets left empty go with their keys."""
        keep = set(keep)
        self.value = {o: v for o, v in self.value.items() if o in keep}
        for b in list(self.buckets):
            self.buckets[b] = [o for o in self.buckets[b] if o in keep]
            if not self.buckets[b]:
                del self.buckets[b]
                self.perm.pop(b, None)
                for store in self.tensors.values():
                    store.pop(b, None)

    # ----------------------------------------------------------------- state
    def state(self, prefix):
        tensors = {f"{prefix}.b{b}.{name}": t for name, store in self.tensors.items() for b, t in store.items()}
        tensors.update({f"{prefix}.o{o}.value": v for o, v in self.value.items()})
        meta = {"keep_selection": self.keep_selection, "count_usage": self.count_usage,
                "buckets": [[b, objs, self.perm.get(b, 0)] for b, objs in self.buckets.items()],
                "next_bucket": self.next_bucket}
        return tensors, meta

    @classmethod
    def from_state(cls, tensors, meta, prefix):
        store = cls(meta["keep_selection"], meta["count_usage"])
        store.next_bucket = meta["next_bucket"]
        for b, objs, perm in meta["buckets"]:
            store.buckets[b] = list(objs)
            store.perm[b] = perm
            for name in FIELDS:
                t = tensors.get(f"{prefix}.b{b}.{name}")
                if t is not None:
                    store.tensors[name][b] = t
            for o in objs:
                store.value[o] = tensors[f"{prefix}.o{o}.value"]
        return store
