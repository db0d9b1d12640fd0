"""ObjectOrder: ids in order of appearance <-> positions, the one mapping the session's object
manager and the families' internal ids share."""
import json

import pytest

from memvos_core.memory.object_order import ObjectOrder


def test_ids_keep_their_order_of_appearance_and_late_objects_come_last():
    order = ObjectOrder()
    assert order.grow_to(2) == [0, 1] and order.grow_to(2) == []
    assert order.add([1, 7, 7]) == 3 and order.ids == (0, 1, 7)
    assert order.positions([7, 0]) == [2, 0] and order[1] == 1 and list(order) == [0, 1, 7]
    # A late object gets an id past every id known, also one given from outside.
    assert order.grow_to(4) == [8] and order.position(8) == 3


def test_deletion_renumbers_and_never_reuses_an_id():
    order = ObjectOrder()
    order.grow_to(3)
    assert order.remove_at([1]) == [1] and order.ids == (0, 2) and order.position(2) == 1
    assert order.grow_to(3) == [3], "a deleted object's id (and the state saved under it) is not reused"
    assert order.remove([3, 0]) == [0, 2] and order.ids == (2,)
    assert 0 not in order and len(order) == 1
    with pytest.raises(ValueError, match="object id 0 is not known"):
        order.position(0)


def test_saved_state_is_what_saved_sessions_hold_and_restores_the_counter():
    order = ObjectOrder()
    order.grow_to(3)
    order.remove_at([0])
    meta = json.loads(json.dumps(order.state()))
    assert meta == {"object_ids": [1, 2], "next_id": 3}
    again = ObjectOrder.from_state(meta)
    assert again == order and again.grow_to(3) == [3]
    copy = order.copy()
    copy.grow_to(5)
    assert order.ids == (1, 2) and order.next_id == 3
