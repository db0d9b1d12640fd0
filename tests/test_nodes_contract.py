"""Every node class as ComfyUI reads it: input specs, defaults, outputs, tooltips, categories."""
import inspect
import textwrap

import pytest

from pack_loader import pack_for_tests, run_in_fresh_python

WIDGETS = {"INT", "FLOAT", "STRING", "BOOLEAN"}
OUR_TYPES = {"MEMVOS_MODEL", "MEMVOS_SESSION", "MEMVOS_MASKS", "MEMVOS_SUGGESTIONS", "MEMVOS_FRAMES"}
CORE_TYPES = {"IMAGE", "MASK", "VIDEO"}
OUTPUT_NODES = {"MemVOSPropagate", "MemVOSComposite", "MemVOSSaveSession", "MemVOSSaveMasks", "MemVOSKeyframes"}
EXPECTED = {"MemVOSLoadModel", "MemVOSNewSession", "MemVOSAddAnnotation", "MemVOSKeyframes", "MemVOSPropagate",
            "MemVOSSelectObjects", "MemVOSRefine", "MemVOSComposite", "MemVOSSuggestFrames",
            "MemVOSSaveSession", "MemVOSLoadSession", "MemVOSLoadFrames", "MemVOSGetFrames",
            "MemVOSGetMasks", "MemVOSSaveMasks", "MemVOSMasksToKeyframes"}
FRAMES_INPUT = "IMAGE,VIDEO,MEMVOS_FRAMES"  # a union: ComfyUI links any one of them
LINKED = "memvos_linked_outputs"  # hidden input the pack's server hook fills in

PACK = pack_for_tests()
NODES = PACK.NODE_CLASS_MAPPINGS


def test_the_node_set():
    assert set(NODES) == EXPECTED
    assert set(PACK.NODE_DISPLAY_NAME_MAPPINGS) == EXPECTED
    assert all(name.startswith("MemVOS ") for name in PACK.NODE_DISPLAY_NAME_MAPPINGS.values())


def _inputs(cls):
    spec = cls.INPUT_TYPES()
    assert isinstance(spec, dict) and set(spec) <= {"required", "optional", "hidden"} and "required" in spec
    for section in ("required", "optional"):
        for name, entry in spec.get(section, {}).items():
            yield section, name, entry


@pytest.mark.parametrize("node_id", sorted(EXPECTED))
def test_input_specs_are_well_formed(node_id):
    cls = NODES[node_id]
    for section, name, entry in _inputs(cls):
        where = f"{node_id}.{name}"
        assert isinstance(entry, tuple) and len(entry) == 2, f"{where}: (TYPE, options)"
        kind, options = entry
        assert isinstance(options, dict)
        assert isinstance(options.get("tooltip"), str) and len(options["tooltip"]) > 10, f"{where}: tooltip"
        if isinstance(kind, list):
            assert kind and all(isinstance(v, str) for v in kind), where
            if "default" in options:
                assert options["default"] in kind, f"{where}: default not among the choices"
            continue
        assert isinstance(kind, str), where
        if kind in ("INT", "FLOAT"):
            number = int if kind == "INT" else (int, float)
            for key in ("default", "min", "max", "step"):
                assert isinstance(options.get(key), number) and not isinstance(options[key], bool), f"{where}.{key}"
            assert options["min"] <= options["default"] <= options["max"], f"{where}: default outside min..max"
            assert options["step"] > 0
        elif kind == "BOOLEAN":
            assert isinstance(options.get("default"), bool), where
        elif kind == "STRING":
            assert isinstance(options.get("default"), str), where
        else:
            assert set(kind.split(",")) <= OUR_TYPES | CORE_TYPES, f"{where}: unknown link type {kind}"
            if name == "frames":
                assert kind == FRAMES_INPUT, f"{where}: every frames socket takes IMAGE, VIDEO and MEMVOS_FRAMES"


@pytest.mark.parametrize("node_id", sorted(EXPECTED))
def test_class_attributes(node_id):
    cls = NODES[node_id]
    assert isinstance(cls.RETURN_TYPES, tuple) and cls.RETURN_TYPES
    assert len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES)
    assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES)
    assert all(t in OUR_TYPES | CORE_TYPES | WIDGETS for t in cls.RETURN_TYPES)
    assert isinstance(cls.DESCRIPTION, str) and len(cls.DESCRIPTION) > 40
    assert cls.CATEGORY.startswith("MemVOS/")
    assert bool(getattr(cls, "OUTPUT_NODE", False)) == (node_id in OUTPUT_NODES)
    function = getattr(cls, cls.FUNCTION)
    params = inspect.signature(function).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())  # inputs declared once (nodes/inputs.py)
    for _, name, _ in _inputs(cls):
        assert name in params or takes_any, f"{node_id}.{cls.FUNCTION} does not take input {name!r}"
    required = {n for n, p in params.items() if p.default is inspect.Parameter.empty and n != "self"
                and p.kind is not p.VAR_KEYWORD}
    assert required <= set(cls.INPUT_TYPES()["required"]), f"{node_id}: a parameter no input provides"
    hidden = cls.INPUT_TYPES().get("hidden", {})
    # the outputs built on demand, and the node's own id (the Keyframes node tells its editor which node)
    assert set(hidden) <= {LINKED, "unique_id"}, f"{node_id}: hidden inputs {sorted(hidden)}"
    lazy = getattr(cls, "LAZY_OUTPUTS", ())
    assert set(lazy) <= set(cls.RETURN_NAMES) and bool(lazy) == (LINKED in hidden), (
        f"{node_id}: outputs built on demand need the hidden {LINKED} input, and only those")
    for name in hidden:
        assert name in params and params[name].default is None, f"{node_id}: {name} must default to None"


def test_link_types_are_produced_and_consumed():
    produced = {t for cls in NODES.values() for t in cls.RETURN_TYPES}
    consumed = {t for cls in NODES.values() for _, _, entry in _inputs(cls) if isinstance(entry[0], str)
                for t in entry[0].split(",")}
    assert OUR_TYPES <= produced and OUR_TYPES <= consumed


def test_what_the_web_player_and_the_keyframe_editor_rely_on():
    assert {"MemVOSPropagate", "MemVOSComposite"} <= set(NODES)
    kind, options = NODES["MemVOSKeyframes"].INPUT_TYPES()["required"]["keyframes"]
    assert kind == "STRING" and options["default"] == "" and options["multiline"] and options["socketless"]
    for node_id, cls in NODES.items():
        for _, name, entry in _inputs(cls):
            if entry[0] == "MEMVOS_SESSION":
                assert name == "session", f"{node_id}: the session input must be named 'session'"


def test_node_modules_import_nothing_from_comfyui():
    check = textwrap.dedent("""
        import sys
        roots = {"comfy", "folder_paths", "comfy_execution", "comfy_api", "server", "execution"}
        result["comfy_modules"] = sorted(k for k in sys.modules if k.split(".")[0] in roots)
        result["node_count"] = len(pack.NODE_CLASS_MAPPINGS)
    """)
    result = run_in_fresh_python(check)
    assert result["comfy_modules"] == []
    assert result["node_count"] == len(EXPECTED)
