"""One key-value memory store with object groups (spec §4.5).

Keys, shrinkage, selection and usage counters are shared by every object. Values are kept per
object *group* (the objects first written together); group ``g`` covers the **last** ``N_g``
keys, because objects that appear later only have values from the frame they were added.
"""
import torch

NEW_LIFE = 1e-7  # life count of a fresh element; normalised usage = use / life


class MemoryStore:
    def __init__(self, count_usage):
        self.count_usage = count_usage
        self.key = self.shrinkage = self.selection = None
        self.use_count = self.life_count = None
        self.values = []   # per group: [n_g, Cv, N_g]
        self.groups = []   # per group: 0-based object indices, ascending across groups

    # ----------------------------------------------------------------- queries
    @property
    def size(self):
        return 0 if self.key is None else self.key.shape[-1]

    @property
    def num_groups(self):
        return len(self.groups)

    def group_size(self, gi):
        return self.values[gi].shape[-1] if gi < len(self.values) else 0

    @property
    def objects(self):
        return [o for group in self.groups for o in group]

    def usage(self):
        return self.use_count / self.life_count

    # --------------------------------------------------------------- mutation
    def _append_keys(self, key, shrinkage, selection):
        n = key.shape[-1]
        new_use = torch.zeros(key.shape[0], 1, n, device=key.device, dtype=torch.float32)
        if self.key is None:
            self.key, self.shrinkage, self.selection = key, shrinkage, selection
            if self.count_usage:
                self.use_count, self.life_count = new_use, new_use + NEW_LIFE
            return
        self.key = torch.cat([self.key, key], -1)
        if shrinkage is not None:
            self.shrinkage = torch.cat([self.shrinkage, shrinkage], -1)
        if selection is not None:
            self.selection = torch.cat([self.selection, selection], -1)
        if self.count_usage:
            self.use_count = torch.cat([self.use_count, new_use], -1)
            self.life_count = torch.cat([self.life_count, new_use + NEW_LIFE], -1)

    def add(self, key, shrinkage, selection, value, objects):
        """Append one frame: value ``[num_objects, Cv, N]`` indexed by 0-based object index.

        Objects already in a group extend that group; the rest form a new group."""
        self._append_keys(key, shrinkage, selection)
        remaining = list(objects)
        for gi, group in enumerate(self.groups):
            for obj in group:
                remaining.remove(obj)
            self.values[gi] = torch.cat([self.values[gi], value[group]], -1)
        if remaining:
            if self.groups and min(remaining) < max(self.objects):
                raise ValueError("objects must be added in ascending order")
            self.values.append(value[remaining])
            self.groups.append(list(remaining))

    def add_grouped(self, key, shrinkage, values_per_group, groups):
        """Append elements whose values are already split by group (long-term memory).

        A group entry may be None when it has no valid element in this batch."""
        self._append_keys(key, shrinkage, None)
        for gi, gv in enumerate(values_per_group):
            if gv is None:
                continue
            if gi < self.num_groups:
                self.values[gi] = torch.cat([self.values[gi], gv], -1)
            else:
                self.values.append(gv)
                self.groups.append(list(groups[gi]))

    def ensure_groups(self, groups, like):
        """Give this store an empty entry for every group another store has (XMem++ keeps both
        working stores with the same groups)."""
        for gi in range(self.num_groups, len(groups)):
            n = len(groups[gi])
            self.values.append(like.new_zeros(n, like.shape[1], 0))
            self.groups.append(list(groups[gi]))

    def update_usage(self, usage):
        if not self.count_usage or self.key is None:
            return
        self.use_count = self.use_count + usage.view_as(self.use_count)
        self.life_count = self.life_count + 1

    def slice(self, start, end):
        """Keys, shrinkage, selection and normalised usage of elements ``[start, end)``."""
        sel = None if self.selection is None else self.selection[:, :, start:end]
        usage = self.usage()[:, :, start:end] if self.count_usage else None
        return self.key[:, :, start:end], self.shrinkage[:, :, start:end], sel, usage

    def remove_range(self, start, keep_tail, min_group_size):
        """Drop keys ``[start, size - keep_tail)``; in each group at least ``min_group_size`` long,
        keep its own first ``start`` values and its last ``keep_tail`` values.

        For groups that began after the first frame this is XMem's behaviour (spec §4.7 quirk);
        with ``start == 0`` (XMem++) the groups stay aligned with the keys."""
        end = self.size - keep_tail

        def cut(t):
            return torch.cat([t[:, :, :start], t[:, :, end:]], -1)

        self.key = cut(self.key)
        if self.shrinkage is not None:
            self.shrinkage = cut(self.shrinkage)
        if self.selection is not None:
            self.selection = cut(self.selection)
        if self.count_usage:
            self.use_count, self.life_count = cut(self.use_count), cut(self.life_count)
        for gi, gv in enumerate(self.values):
            n = gv.shape[-1]
            if n >= min_group_size:
                self.values[gi] = torch.cat([gv[:, :, :start], gv[:, :, n - keep_tail:]], -1)

    def prune(self, max_size):
        """Keep the elements whose normalised usage is strictly above the ``size - max_size``-th
        smallest (ties at the threshold all go, as in the reference, spec §4.8).

        Without usage counting the oldest elements go. With several groups the reference raises;
        here each group keeps the survivors of its own suffix."""
        excess = self.size - max_size
        if excess <= 0:
            return
        if self.count_usage:
            usage = self.usage().flatten()
            threshold = torch.topk(usage, k=excess, largest=False, sorted=True)[0][-1]
            survived = usage > threshold
        else:
            survived = torch.arange(self.size, device=self.key.device) >= excess
        self.key = self.key[:, :, survived]
        if self.shrinkage is not None:
            self.shrinkage = self.shrinkage[:, :, survived]
        if self.selection is not None:
            self.selection = self.selection[:, :, survived]
        if self.count_usage:
            self.use_count = self.use_count[:, :, survived]
            self.life_count = self.life_count[:, :, survived]
        for gi, gv in enumerate(self.values):
            self.values[gi] = gv[:, :, survived[survived.shape[0] - gv.shape[-1]:]]

    def rewrite_range(self, start, key, shrinkage, selection, value):
        """Overwrite elements ``[start, start+n)`` in place (a permanent-memory slot update).
        Every group must cover the range."""
        n = key.shape[-1]
        stop = start + n
        self.key = torch.cat([self.key[:, :, :start], key, self.key[:, :, stop:]], -1)
        self.shrinkage = torch.cat([self.shrinkage[:, :, :start], shrinkage, self.shrinkage[:, :, stop:]], -1)
        if self.selection is not None and selection is not None:
            self.selection = torch.cat([self.selection[:, :, :start], selection, self.selection[:, :, stop:]], -1)
        for gi, group in enumerate(self.groups):
            gv = self.values[gi]
            offset = self.size - gv.shape[-1]
            lo, hi = start - offset, stop - offset
            self.values[gi] = torch.cat([gv[:, :, :lo], value[group], gv[:, :, hi:]], -1)

    # ---------------------------------------------------------- state export
    def state(self, prefix):
        """Tensors and metadata describing this store, for saving a session."""
        tensors = {}
        if self.key is not None:
            tensors[f"{prefix}.key"] = self.key
            tensors[f"{prefix}.shrinkage"] = self.shrinkage
            if self.selection is not None:
                tensors[f"{prefix}.selection"] = self.selection
            if self.count_usage:
                tensors[f"{prefix}.use_count"] = self.use_count
                tensors[f"{prefix}.life_count"] = self.life_count
        for gi, gv in enumerate(self.values):
            tensors[f"{prefix}.value{gi}"] = gv
        meta = {"count_usage": self.count_usage, "groups": self.groups}
        return tensors, meta

    @classmethod
    def from_state(cls, tensors, meta, prefix):
        store = cls(meta["count_usage"])
        store.key = tensors.get(f"{prefix}.key")
        store.shrinkage = tensors.get(f"{prefix}.shrinkage")
        store.selection = tensors.get(f"{prefix}.selection")
        store.use_count = tensors.get(f"{prefix}.use_count")
        store.life_count = tensors.get(f"{prefix}.life_count")
        store.groups = [list(g) for g in meta["groups"]]
        store.values = [tensors[f"{prefix}.value{gi}"] for gi in range(len(store.groups))]
        return store
