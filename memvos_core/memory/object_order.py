"""Object ids in order of first appearance <-> their positions (0-based) in every per-object
tensor. The session keeps the artist's ids (1..255) in one (``session.objects.ObjectManager``);
the families keep their own stable internal ids, issued from a counter that never goes back,
so an id deleted is never reused and the state saved under it cannot be mistaken for a new
object's. Deleting renumbers the positions of the objects after it.

It lives beside the memory (which it keys) because that package imports nothing else of the
project: the session and every family can use it without an import circle."""


class ObjectOrder:
    """Ids in order of appearance. :meth:`add` appends given ids (unseen ones, in the given
    order); :meth:`grow_to` issues new ids from ``next_id``; :meth:`remove` / :meth:`remove_at`
    forget objects, the rest keeping their order. Iterating yields the ids by position."""

    def __init__(self, ids=(), next_id=0):
        self._ids = []
        self.next_id = int(next_id)
        self.add(ids)

    # ------------------------------------------------------------ reading
    @property
    def ids(self):
        return tuple(self._ids)

    def __len__(self):
        return len(self._ids)

    def __iter__(self):
        return iter(tuple(self._ids))

    def __contains__(self, object_id):
        return object_id in self._ids

    def __getitem__(self, position):
        return self._ids[position]

    def position(self, object_id):
        """The position (0-based) of an id; ``ValueError`` naming the ids known when unknown."""
        try:
            return self._ids.index(object_id)
        except ValueError:
            raise ValueError(f"object id {object_id} is not known (objects: {self._ids})") from None

    def positions(self, object_ids):
        return [self.position(o) for o in object_ids]

    # ------------------------------------------------------------ changes
    def add(self, object_ids):
        """Append the ids not yet known, in the given order; returns how many are known.
        ``next_id`` moves past them, so :meth:`grow_to` never issues one of them again."""
        for o in object_ids:
            if o not in self._ids:
                self._ids.append(o)
                if isinstance(o, int):
                    self.next_id = max(self.next_id, o + 1)
        return len(self._ids)

    def grow_to(self, count):
        """Issue new ids until ``count`` are known; returns the new ids (late objects)."""
        new = []
        while len(self._ids) < count:
            new.append(self.next_id)
            self._ids.append(self.next_id)
            self.next_id += 1
        return new

    def remove(self, object_ids):
        """Forget ids (each must be known); returns their former positions, sorted."""
        gone = sorted(self.positions(set(object_ids)))
        self._ids = [o for p, o in enumerate(self._ids) if p not in gone]
        return gone

    def remove_at(self, positions):
        """Forget the objects at positions; returns their ids, in position order."""
        gone = [self._ids[p] for p in sorted(set(positions))]
        self.remove(gone)
        return gone

    def copy(self):
        return ObjectOrder(self._ids, self.next_id)

    # ------------------------------------------------------------ files
    def state(self):
        """JSON-able: the ids and the counter (the keys saved states have always held)."""
        return {"object_ids": list(self._ids), "next_id": self.next_id}

    @classmethod
    def from_state(cls, meta):
        return cls(meta["object_ids"], meta["next_id"])

    def __eq__(self, other):
        return isinstance(other, ObjectOrder) and self.state() == other.state()

    def __repr__(self):
        return f"ObjectOrder({self._ids}, next_id={self.next_id})"
