"""The pack imports the way ComfyUI imports it, and registers what ComfyUI expects."""
import os
import sys
import textwrap

import pytest

from pack_loader import (REPO_ROOT, comfyui_module_name, comfyui_registration, loaded_pack,
                         run_in_fresh_python)


def _check_registration(reg):
    assert reg["web_dir"] is not None, "WEB_DIRECTORY must name an existing folder of the pack"
    assert os.path.commonpath([reg["web_dir"], REPO_ROOT]) == REPO_ROOT
    for node_id, node_class in reg["classes"].items():
        assert node_id.startswith("MemVOS"), f"node id {node_id!r} must start with 'MemVOS'"
        inputs = node_class.INPUT_TYPES()
        assert isinstance(inputs, dict) and "required" in inputs, node_id
        assert isinstance(node_class.RETURN_TYPES, tuple), node_id
        assert callable(getattr(node_class, node_class.FUNCTION)), node_id
        assert isinstance(getattr(node_class, "CATEGORY", ""), str), node_id
    assert set(reg["display_names"]) <= set(reg["classes"]), "a display name for a node that does not exist"


@pytest.mark.parametrize("module_name", [None, "ComfyUI-MemVOS"], ids=["comfyui path name", "folder name"])
def test_pack_imports_as_comfyui_imports_it(module_name):
    before = set(sys.modules)
    with loaded_pack(module_name=module_name) as pack:
        assert getattr(sys.modules["nodes"], "IS_COMFYUI_STAND_IN", False), "the pack replaced ComfyUI's nodes module"
        assert isinstance(pack.NODE_CLASS_MAPPINGS, dict)
        assert isinstance(pack.NODE_DISPLAY_NAME_MAPPINGS, dict)
        assert isinstance(pack.WEB_DIRECTORY, str)
        _check_registration(comfyui_registration(pack))
        name = module_name or comfyui_module_name(REPO_ROOT)
        strays = sorted(key for key, mod in sys.modules.items() if key not in before
                        and _inside_pack(mod) and not (key == name or key.startswith(name + ".")))
        assert not strays, f"pack modules imported outside the pack's package: {strays}"
    assert not any(key == name or key.startswith(name + ".") for key in sys.modules)


def _inside_pack(module):
    """A module loaded from a file of the pack (this test harness in tests/ aside)."""
    file = getattr(module, "__file__", None)
    if not isinstance(file, str) or not os.path.isfile(file):
        return False
    file = os.path.abspath(file)
    # tests/ is the harness, .venv/ the project environment scripts/ make (third-party packages)
    return file.startswith(REPO_ROOT + os.sep) and not any(
        file.startswith(os.path.join(REPO_ROOT, folder) + os.sep) for folder in ("tests", ".venv"))


def test_pack_imports_without_its_folder_on_sys_path():
    check = textwrap.dedent("""
        import os, sys
        result["exports"] = sorted(k for k in ("NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY")
                                   if hasattr(pack, k))
        result["node_ids"] = sorted(pack.NODE_CLASS_MAPPINGS)
        result["display_ids"] = sorted(pack.NODE_DISPLAY_NAME_MAPPINGS)
        result["web_dir_exists"] = os.path.isdir(os.path.join(pack_dir, pack.WEB_DIRECTORY))
        result["nodes_is_stand_in"] = getattr(sys.modules["nodes"], "IS_COMFYUI_STAND_IN", False)
        def from_pack(m):
            file = getattr(m, "__file__", None)
            return (isinstance(file, str) and file.startswith(pack_dir + os.sep)
                    and not any(file.startswith(os.path.join(pack_dir, f) + os.sep) for f in ("tests", ".venv")))
        result["strays"] = sorted(k for k, m in list(sys.modules.items())
                                  if from_pack(m) and not k.startswith(pack.__name__))
    """)
    result = run_in_fresh_python(check)
    assert not result["sys_path_has_pack"]
    assert result["exports"] == ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
    assert all(node_id.startswith("MemVOS") for node_id in result["node_ids"])
    assert set(result["display_ids"]) <= set(result["node_ids"])
    assert result["web_dir_exists"] and result["nodes_is_stand_in"]
    assert result["strays"] == []


# ---------------------------------------------------------------- the harness catches what it should

def _write_pack(root, files):
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


_GOOD_PACK = {
    "__init__.py": """
        from .nodes.thing import NODE_CLASS_MAPPINGS
        NODE_DISPLAY_NAME_MAPPINGS = {}
        WEB_DIRECTORY = "./web"
    """,
    "nodes/__init__.py": "",
    "nodes/thing.py": """
        from ..core import helper
        NODE_CLASS_MAPPINGS = {}
    """,
    "core/__init__.py": "",
    "core/helper.py": "",
    "web/.keep": "",
}


def test_harness_accepts_a_pack_with_relative_imports(tmp_path):
    pack_dir = _write_pack(tmp_path / "GoodPack", _GOOD_PACK)
    with loaded_pack(pack_dir) as pack:
        assert comfyui_registration(pack, pack_dir)["web_dir"] == str(pack_dir / "web")
    assert run_in_fresh_python("result['ok'] = True", pack_dir)["ok"]


def test_harness_catches_an_absolute_import_of_nodes(tmp_path):
    pack_dir = _write_pack(tmp_path / "ClashPack", {**_GOOD_PACK, "__init__.py": """
        from nodes.thing import NODE_CLASS_MAPPINGS
        WEB_DIRECTORY = "./web"
    """})
    with pytest.raises(ImportError, match="'nodes' is not a package|No module named 'nodes.thing'"):
        with loaded_pack(pack_dir):
            pass
    assert "nodes.thing" not in sys.modules or not sys.modules["nodes.thing"].__file__.startswith(str(pack_dir))


def test_harness_catches_reliance_on_sys_path(tmp_path):
    pack_dir = _write_pack(tmp_path / "PathPack", {**_GOOD_PACK, "nodes/thing.py": """
        import core.helper
        NODE_CLASS_MAPPINGS = {}
    """})
    with pytest.raises(ImportError, match="No module named 'core'"):
        run_in_fresh_python("result['ok'] = True", pack_dir)
    with pytest.raises(ImportError, match="No module named 'core'"):
        with loaded_pack(pack_dir):
            pass


def test_pack_for_tests_stays_importable_for_node_tests():
    import importlib
    from pack_loader import TEST_PACKAGE_NAME, pack_for_tests
    pack = pack_for_tests()
    assert pack is pack_for_tests() and pack.__name__ == TEST_PACKAGE_NAME
    env = importlib.import_module(TEST_PACKAGE_NAME + ".nodes.comfy_env")  # a lazy relative import still works
    assert env.MODEL_FOLDER == "memvos"
    assert sys.modules.get("nodes") is None or not getattr(sys.modules["nodes"], "IS_COMFYUI_STAND_IN", False)
