"""One growing memory tensor (elements along the last axis), stored one of two ways.

``reserve == 0``: a plain tensor, replaced by a new one at every change (``torch.cat``). Nothing
is ever written in place, so the tensor can be shared with saved state as is.
``reserve > 0``: a preallocated buffer of at least ``reserve`` elements, written in place (doubled
if it ever overflows); the data is a view of its first ``size`` elements, and :meth:`export`
copies it, because a later write would change a shared view. An ``element_major`` buffer keeps
each element's channels together in memory (``[N, ...]`` physically, same logical shape), so
the sparse readout can gather elements without first transposing the whole store.
"""
import torch


class Column:
    def __init__(self, reserve=0, element_major=False):
        self.reserve = int(reserve)
        self.element_major = element_major
        self.storage = None
        self.size = 0

    @property
    def data(self):
        if self.storage is None or not self.reserve:
            return self.storage
        return self.storage[..., :self.size]

    def export(self):
        data = self.data
        return data.clone(memory_format=torch.contiguous_format) if self.reserve and data is not None else data

    def _allocate(self, lead, capacity, like):
        if not self.element_major:
            return like.new_empty(*lead, capacity)
        return like.new_empty(capacity, *lead).permute(*range(1, len(lead) + 1), 0)

    def set(self, x):
        """Replace the whole content by ``x`` (in a buffer: copied into it)."""
        if not self.reserve or x is None:
            self.storage, self.size = x, (0 if x is None else x.shape[-1])
            return
        if self.storage is not None and _shares_memory(x, self.storage):
            x = x.clone()
        self.size = 0
        if self.storage is not None and self.storage.shape[:-1] != x.shape[:-1]:
            self.storage = None
        self.append(x)

    def append(self, x):
        if not self.reserve:
            self.set(x if self.storage is None else torch.cat([self.storage, x], -1))
            return
        need = self.size + x.shape[-1]
        if self.storage is None:
            self.storage = self._allocate(x.shape[:-1], max(self.reserve, need), x)
        elif need > self.storage.shape[-1]:
            bigger = self._allocate(self.storage.shape[:-1], max(need, 2 * self.storage.shape[-1]), self.storage)
            bigger[..., :self.size] = self.data
            self.storage = bigger
        self.storage[..., self.size:need] = x
        self.size = need

    def add_(self, x):
        """``data += x``: in place in a buffer, a new tensor otherwise."""
        if self.reserve:
            self.data.add_(x)
        else:
            self.storage = self.storage + x


def _shares_memory(a, b):
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


class ColumnAttribute:
    """A store attribute backed by a :class:`Column`: reading gives its data, assigning sets it."""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, store, owner=None):
        return self if store is None else store.column(self.name).data

    def __set__(self, store, value):
        store.column(self.name).set(value)
