"""Node inputs declared once: INPUT_TYPES and the function's values come from one declaration."""
import pytest

from pack_loader import pack_for_tests

PACK = pack_for_tests()
NODES = PACK.NODE_CLASS_MAPPINGS


def test_new_session_defaults_come_from_its_declaration_alone():
    import importlib
    inputs = importlib.import_module(f"{PACK.__name__}.nodes.inputs")
    declared = [inputs.Input("size", "INT", 480, "px", -1, 4096, 1), inputs.Input("flip", "BOOLEAN", False, "x",
                                                                                   optional=True)]
    assert inputs.input_types(declared) == {
        "required": {"size": ("INT", {"default": 480, "min": -1, "max": 4096, "step": 1, "tooltip": "px"})},
        "optional": {"flip": ("BOOLEAN", {"default": False, "tooltip": "x"})}}
    assert inputs.input_values(declared, {"flip": True}, "Node") == {"size": 480, "flip": True}
    with pytest.raises(ValueError, match="Node has no input sise: reload the node"):
        inputs.input_values(declared, {"sise": 3}, "Node")


def test_new_session_has_no_second_default_in_its_signature():
    import inspect
    node = NODES["MemVOSNewSession"]
    params = inspect.signature(node.create).parameters
    assert all(p.default is p.empty for p in params.values())  # defaults live in the declaration only
    declared = node.INPUT_TYPES()["required"]["internal_size"][1]
    assert declared["default"] == 480
