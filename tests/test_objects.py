"""The object manager: artist ids <-> internal indices, late and deleted objects, names, colours."""
import pytest
import torch

from memvos_core.media_io.palette import object_colors
from memvos_core.session.objects import ObjectManager


def test_late_objects_come_after_the_others_and_deletion_renumbers():
    objects = ObjectManager([5, 2])
    assert objects.know([2, 9]) == 3 and objects.ids == (5, 2, 9)
    assert objects.channels([9, 5]) == [3, 1] and objects.index(2) == 1
    objects.names[2] = "hero"
    assert objects.delete([2]) == [1] and objects.ids == (5, 9) and objects.index(9) == 1
    assert objects.name(9) == "object 9" and 2 not in objects.names
    with pytest.raises(ValueError, match="object id 2 is not in this propagation"):
        objects.index(2)
    with pytest.raises(ValueError, match="out of range: use 1..255"):
        objects.know([256])


def test_files_hold_a_plain_list_unless_names_or_colours_are_set():
    plain = ObjectManager([3, 1])
    assert plain.to_meta() == [3, 1] and ObjectManager.from_meta([3, 1]) == plain
    named = ObjectManager([3, 1], names={3: "car"}, colours={1: (1.0, 0.0, 0.0)})
    again = ObjectManager.from_meta(named.to_meta())
    assert again == named and again.name(3) == "car"
    assert torch.equal(again.colour_table(), object_colors([3, 1], colors={1: (1.0, 0.0, 0.0)}))
    copy = named.copy()
    copy.know([7])
    assert named.ids == (3, 1)
