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


def test_a_function_that_names_its_inputs_takes_their_defaults_from_the_declaration():
    import importlib
    import inspect
    inputs = importlib.import_module(f"{PACK.__name__}.nodes.inputs")
    declared = [inputs.Input("clip", "IMAGE", tooltip="c"), inputs.Input("size", "INT", 480, "px"),
                inputs.Input("mask", "MASK", tooltip="m", optional=True)]

    @inputs.takes_declared(declared)
    def run(self, clip, size, mask):
        return clip, size, mask

    assert run(None, "c") == ("c", 480, None)
    assert run(None, "c", 5, mask=1) == ("c", 5, 1)
    assert inspect.signature(run).parameters["size"].default == 480
    with pytest.raises(TypeError):
        run(None)  # an input without a default stays required
    with pytest.raises(TypeError, match=r"defaults of \['size'\] belong in the inputs' declaration"):
        inputs.takes_declared(declared)(lambda self, clip, mask, size=480: None)
    with pytest.raises(TypeError, match=r"no parameter for input \['mask'\]"):
        inputs.takes_declared(declared)(lambda self, clip, size: None)


# Load Model's weights show the first file found; the function assumes no file.
UI_ONLY_DEFAULTS = {("MemVOSLoadModel", "weights")}


@pytest.mark.parametrize("node_id", sorted(NODES))
def test_every_node_takes_its_input_defaults_from_one_declaration(node_id):
    import inspect
    cls = NODES[node_id]
    function = getattr(cls, cls.FUNCTION)
    written = inspect.signature(inspect.unwrap(function)).parameters  # the source's own signature
    hidden = set(cls.INPUT_TYPES().get("hidden", {}))
    repeated = [n for n, p in written.items() if p.default is not p.empty and n not in hidden]
    assert repeated == [], f"{node_id}.{cls.FUNCTION} repeats the defaults of {repeated}"
    shown = inspect.signature(function).parameters
    takes_given = any(p.kind is p.VAR_KEYWORD for p in shown.values())  # New Session: input_values
    for section in ("required", "optional"):
        for name, (_, options) in cls.INPUT_TYPES().get(section, {}).items():
            if "default" in options and (node_id, name) not in UI_ONLY_DEFAULTS and not takes_given:
                assert shown[name].default == options["default"], f"{node_id}.{name}"
