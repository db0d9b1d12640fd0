"""Import the pack the way ComfyUI does, so that a name clash or a reliance on sys.path fails in CI.

ComfyUI (``nodes.py: load_custom_node``) imports every folder of ``custom_nodes`` by path, as a
package named after the folder's full path with dots replaced by ``_x_``, and ComfyUI itself owns
a top-level module named ``nodes``. A pack that imports its own ``nodes`` package absolutely gets
ComfyUI's module instead; a pack that expects its folder on ``sys.path`` breaks as well.

Two ways in: :func:`loaded_pack` imports in this process with a stand-in ``nodes`` module, the
repository root hidden from ``sys.path`` and the pack's own top-level modules hidden from
``sys.modules`` (all restored afterwards); :func:`run_in_fresh_python` imports in a new
interpreter whose ``sys.path`` never had the repository root, from another working directory.
This file imports nothing from the pack, so it can also run as that interpreter's script.
"""
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import types

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_PACKAGE_NAME = "memvos_pack_under_test"
_RESULT_TAG = "PACK-RESULT "


def comfyui_module_name(pack_dir):
    """The name ComfyUI gives a pack folder in sys.modules."""
    return os.path.abspath(pack_dir).replace(".", "_x_")


def stand_in_comfyui_nodes():
    """A module playing ComfyUI's own ``nodes.py``: a plain module, not a package."""
    module = types.ModuleType("nodes")
    module.__file__ = "<ComfyUI nodes.py stand-in>"
    module.NODE_CLASS_MAPPINGS = {}
    module.NODE_DISPLAY_NAME_MAPPINGS = {}
    module.IS_COMFYUI_STAND_IN = True
    return module


def import_like_comfyui(pack_dir, module_name=None):
    """Execute ``pack_dir/__init__.py`` as the package ``module_name``, exactly as ComfyUI does."""
    pack_dir = os.path.abspath(pack_dir)
    name = module_name or comfyui_module_name(pack_dir)
    spec = importlib.util.spec_from_file_location(name, os.path.join(pack_dir, "__init__.py"),
                                                  submodule_search_locations=[pack_dir])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        _drop_modules(name)
        raise
    return module


def comfyui_registration(module, pack_dir=REPO_ROOT):
    """What ComfyUI registers from an imported pack (V1 path): node classes, titles, web folder."""
    web = getattr(module, "WEB_DIRECTORY", None)
    web_dir = os.path.abspath(os.path.join(pack_dir, web)) if web is not None else None
    return {
        "classes": dict(getattr(module, "NODE_CLASS_MAPPINGS", None) or {}),
        "display_names": dict(getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None) or {}),
        "web_dir": web_dir if web_dir and os.path.isdir(web_dir) else None,
    }


def _top_level_names(pack_dir):
    """Module names the pack's own folders and files would have if its root were on sys.path."""
    names = set()
    for entry in os.scandir(pack_dir):
        if entry.is_dir() and os.path.isfile(os.path.join(entry.path, "__init__.py")):
            names.add(entry.name)
        elif entry.name.endswith(".py") and entry.name != "__init__.py":
            names.add(entry.name[:-3])
    return names | {"nodes"}


def _owned(key, names):
    return any(key == n or key.startswith(n + ".") for n in names)


def _drop_modules(prefix):
    for key in [k for k in sys.modules if k == prefix or k.startswith(prefix + ".")]:
        del sys.modules[key]


def _same_dir(entry, pack_dir):
    return os.path.realpath(entry or os.getcwd()) == os.path.realpath(pack_dir)


@contextlib.contextmanager
def loaded_pack(pack_dir=REPO_ROOT, module_name=None, *, extra_modules=None, keep=False):
    """Yield the pack imported as ComfyUI would, in this process.

    extra_modules: more stand-ins present during the import (e.g. a fake ``folder_paths``).
    keep: leave the pack's own modules (``module_name.*``) in sys.modules afterwards, so code
    with lazy relative imports keeps working; everything else is restored either way.
    """
    pack_dir = os.path.abspath(pack_dir)
    name = module_name or comfyui_module_name(pack_dir)
    hidden_names = _top_level_names(pack_dir) | set(extra_modules or {})
    hidden = {k: v for k, v in sys.modules.items() if _owned(k, hidden_names)}
    saved_path = list(sys.path)
    try:
        for key in hidden:
            del sys.modules[key]
        sys.path[:] = [p for p in sys.path if not _same_dir(p, pack_dir)]
        sys.modules["nodes"] = stand_in_comfyui_nodes()
        sys.modules.update(extra_modules or {})
        yield import_like_comfyui(pack_dir, name)
    finally:
        sys.path[:] = saved_path
        for key in [k for k in sys.modules if _owned(k, hidden_names)]:
            del sys.modules[key]
        sys.modules.update(hidden)
        if not keep:
            _drop_modules(name)


def pack_for_tests():
    """The pack imported once per test session under a fixed name; node tests use its modules."""
    if TEST_PACKAGE_NAME not in sys.modules:
        with loaded_pack(module_name=TEST_PACKAGE_NAME, keep=True):
            pass
    return sys.modules[TEST_PACKAGE_NAME]


def run_in_fresh_python(check, pack_dir=REPO_ROOT, module_name=None, timeout=300):
    """Import the pack in a new interpreter without its folder on sys.path, then run ``check``.

    check: Python source run with ``pack`` (the imported package), ``pack_dir`` and a dict
    ``result`` in scope; ``result`` comes back (JSON). An import failure raises with its output.
    """
    pack_dir = os.path.abspath(pack_dir)
    name = module_name or comfyui_module_name(pack_dir)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with tempfile.TemporaryDirectory(prefix="comfyui-cwd-") as cwd:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), pack_dir, name, check],
                              cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(_RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        raise ImportError(f"importing {pack_dir!r} in a fresh interpreter failed (exit {proc.returncode}):\n"
                          f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1][len(_RESULT_TAG):])


def _fresh_interpreter_main(pack_dir, name, check):
    # A script's own folder is sys.path[0]; drop it and anything pointing at the pack.
    sys.path[:] = [p for p in sys.path[1:] if not _same_dir(p, pack_dir)]
    sys.modules["nodes"] = stand_in_comfyui_nodes()
    pack = import_like_comfyui(pack_dir, name)
    result = {"sys_path_has_pack": any(_same_dir(p, pack_dir) for p in sys.path)}
    exec(compile(check, "<pack check>", "exec"), {"pack": pack, "pack_dir": pack_dir, "result": result})
    print(_RESULT_TAG + json.dumps(result))


if __name__ == "__main__":
    _fresh_interpreter_main(*sys.argv[1:4])
