"""The objects of a shot: the artist's ids (1..255, what label maps and files hold) and the
internal indices the engine and the families work with (order of first appearance in a pass),
with late objects, deleted ones, names and colours. One class owns that mapping."""
from ..media_io.palette import object_colors
from ..memory.object_order import ObjectOrder

MAX_OBJECT_ID = 255  # label maps are uint8 (the one definition; nodes and the CLI import it)


def check_object_id(object_id):
    if not 1 <= int(object_id) <= MAX_OBJECT_ID:
        raise ValueError(f"object id {object_id} is out of range: use 1..{MAX_OBJECT_ID} (0 is background)")
    return int(object_id)


class ObjectManager:
    """Artist ids in internal order: index ``k`` (0-based) is channel ``k + 1`` of the engine's
    probabilities (channel 0 the background). An object enters when it is first annotated
    (:meth:`know`), late objects after the others; :meth:`delete` renumbers the rest in order.
    ``names`` and ``colours`` (RGB in 0..1) are optional, per artist id. The order itself is
    an :class:`~memvos_core.memory.object_order.ObjectOrder`, as the families' internal ids."""

    def __init__(self, ids=(), names=None, colours=None):
        self._order = ObjectOrder()
        self.names = dict(names or {})
        self.colours = dict(colours or {})
        self.know(ids)

    # ------------------------------------------------------------ mapping
    @property
    def ids(self):
        return self._order.ids

    def __len__(self):
        return len(self._order)

    def __contains__(self, object_id):
        return object_id in self._order

    def __iter__(self):
        return iter(self._order)

    def index(self, object_id):
        """The internal index (0-based) of an artist id."""
        try:
            return self._order.position(object_id)
        except ValueError:
            raise ValueError(f"object id {object_id} is not in this propagation (objects: {list(self.ids)})") from None

    def indices(self, object_ids):
        return [self.index(o) for o in object_ids]

    def channels(self, object_ids):
        """1-based channels (background is 0) of artist ids, as the engine's ``valid_labels``."""
        return [self.index(o) + 1 for o in object_ids]

    # ------------------------------------------------------------ changes
    def know(self, object_ids):
        """Objects seen from now on, appended in the given order; returns how many are known."""
        for o in object_ids:
            if o not in self._order:
                self._order.add([check_object_id(o)])
        return len(self._order)

    def delete(self, object_ids):
        """Forget objects; returns their former internal indices (sorted)."""
        gone = sorted(self.indices(set(object_ids)))
        self._order.remove_at(gone)
        for o in object_ids:
            self.names.pop(o, None)
            self.colours.pop(o, None)
        return gone

    def copy(self):
        return ObjectManager(self.ids, self.names, self.colours)

    # ------------------------------------------------------------ display
    def name(self, object_id):
        return self.names.get(object_id, f"object {object_id}")

    def colour_table(self, object_ids=None, device=None):
        """Float RGB ``[N,3]`` of the objects (default: all, internal order): the artist's colours
        where given, else the DAVIS palette's."""
        return object_colors(list(self.ids) if object_ids is None else object_ids, device, self.colours)

    # ------------------------------------------------------------ files
    def to_meta(self):
        """JSON-able; a plain list of ids when nothing else is set (what files before held)."""
        if not self.names and not self.colours:
            return list(self.ids)
        return {"ids": list(self.ids), "names": {str(k): v for k, v in self.names.items()},
                "colours": {str(k): list(v) for k, v in self.colours.items()}}

    @classmethod
    def from_meta(cls, meta):
        if isinstance(meta, list):
            return cls(meta)
        return cls(meta["ids"], {int(k): v for k, v in meta.get("names", {}).items()},
                   {int(k): tuple(v) for k, v in meta.get("colours", {}).items()})

    def __eq__(self, other):
        return isinstance(other, ObjectManager) and self.to_meta() == other.to_meta()

    def __repr__(self):
        return f"ObjectManager({list(self.ids)})"
