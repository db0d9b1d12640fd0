"""One key-value memory store with object groups (spec §4.5).

Keys, shrinkage, selection and usage counters are shared by every object. Values are kept per
object *group* (the objects first written together); group ``g`` covers the **last** ``N_g``
keys, because objects that appear later only have values from the frame they were added.

Every tensor is a :class:`~.column.Column`: plain tensors replaced at each change, or (with a
``reserve``) preallocated buffers written in place whose exported state is a copy.
"""
import torch

from .column import Column, ColumnAttribute

NEW_LIFE = 1e-7  # life count of a fresh element; normalised usage = use / life


class MemoryStore:
    key = ColumnAttribute()
    shrinkage = ColumnAttribute()
    selection = ColumnAttribute()
    use_count = ColumnAttribute()
    life_count = ColumnAttribute()

    def __init__(self, count_usage, reserve=0):
        self.count_usage = count_usage
        self.reserve = reserve  # elements each buffer is preallocated for; 0: grow by concatenation
        self._columns = {}
        self._values = []  # per group: Column of [n_g, Cv, N_g]
        self.groups = []   # per group: 0-based object indices, ascending across groups

    def set_reserve(self, reserve):
        """Preallocate ``reserve`` elements for every tensor not yet written."""
        self.reserve = reserve
        for col in list(self._columns.values()) + self._values:
            if col.storage is None:
                col.reserve = reserve

    def column(self, name):
        if name not in self._columns:
            self._columns[name] = Column(self.reserve)
        return self._columns[name]

    def _new_group(self, value, objects):
        col = Column(self.reserve, element_major=True)
        col.set(value)
        self._values.append(col)
        self.groups.append(list(objects))

    # ----------------------------------------------------------------- queries
    @property
    def values(self):
        """Per group ``[n_g, Cv, N_g]`` (views of the buffers when preallocated: read only)."""
        return [c.data for c in self._values]

    @property
    def size(self):
        return self.column("key").size

    @property
    def num_groups(self):
        return len(self.groups)

    def group_size(self, gi):
        return self._values[gi].size if gi < len(self._values) else 0

    @property
    def objects(self):
        return [o for group in self.groups for o in group]

    def usage(self):
        return self.use_count / self.life_count

    # --------------------------------------------------------------- mutation
    def _append_keys(self, key, shrinkage, selection):
        n = key.shape[-1]
        new_use = torch.zeros(key.shape[0], 1, n, device=key.device, dtype=torch.float32)
        first = self.key is None
        self.column("key").append(key)
        # Like the reference, a first write without shrinkage/selection leaves them absent.
        if shrinkage is not None and (first or self.shrinkage is not None):
            self.column("shrinkage").append(shrinkage)
        if selection is not None and (first or self.selection is not None):
            self.column("selection").append(selection)
        if self.count_usage:
            self.column("use_count").append(new_use)
            self.column("life_count").append(new_use + NEW_LIFE)

    def add(self, key, shrinkage, selection, value, objects):
        """Append one frame: value ``[num_objects, Cv, N]`` indexed by 0-based object index.

        Objects already in a group extend that group; the rest form a new group."""
        self._append_keys(key, shrinkage, selection)
        remaining = list(objects)
        for gi, group in enumerate(self.groups):
            for obj in group:
                remaining.remove(obj)
            self._values[gi].append(value[group])
        if remaining:
            if self.groups and min(remaining) < max(self.objects):
                raise ValueError("objects must be added in ascending order")
            self._new_group(value[remaining], remaining)

    def add_grouped(self, key, shrinkage, values_per_group, groups):
        """Append elements whose values are already split by group (long-term memory).

        A group entry may be None when it has no valid element in this batch."""
        self._append_keys(key, shrinkage, None)
        for gi, gv in enumerate(values_per_group):
            if gv is None:
                continue
            if gi < self.num_groups:
                self._values[gi].append(gv)
            else:
                self._new_group(gv, groups[gi])

    def ensure_groups(self, groups, like):
        """Give this store an empty entry for every group another store has (XMem++ keeps both
        working stores with the same groups)."""
        for gi in range(self.num_groups, len(groups)):
            self._new_group(like.new_zeros(len(groups[gi]), like.shape[1], 0), groups[gi])

    def update_usage(self, usage):
        if not self.count_usage or self.key is None:
            return
        self.column("use_count").add_(usage.view_as(self.use_count))
        self.column("life_count").add_(1)

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
                self._values[gi].set(torch.cat([gv[:, :, :start], gv[:, :, n - keep_tail:]], -1))

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
            self._values[gi].set(gv[:, :, survived[survived.shape[0] - gv.shape[-1]:]])

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
            self._values[gi].set(torch.cat([gv[:, :, :lo], value[group], gv[:, :, hi:]], -1))

    # ---------------------------------------------------------- state export
    def state(self, prefix):
        """Tensors and metadata describing this store, for saving a session. The tensors are
        never written afterwards: plain tensors are only ever replaced, buffers are copied."""
        tensors = {}
        if self.key is not None:
            names = ["key", "shrinkage"] + (["selection"] if self.selection is not None else [])
            names += ["use_count", "life_count"] if self.count_usage else []
            tensors.update({f"{prefix}.{name}": self.column(name).export() for name in names})
        for gi, col in enumerate(self._values):
            tensors[f"{prefix}.value{gi}"] = col.export()
        meta = {"count_usage": self.count_usage, "groups": self.groups}
        return tensors, meta

    @classmethod
    def from_state(cls, tensors, meta, prefix, reserve=0):
        """The store back from :meth:`state`; with a ``reserve`` the tensors are copied into
        buffers (so the saved tensors stay untouched), otherwise shared."""
        store = cls(meta["count_usage"], reserve)
        for name in ("key", "shrinkage", "selection", "use_count", "life_count"):
            store.column(name).set(tensors.get(f"{prefix}.{name}"))
        for gi, group in enumerate(meta["groups"]):
            store._new_group(tensors[f"{prefix}.value{gi}"], group)
        return store
