"""The ComfyUI seam: with stand-in ComfyUI modules, without ComfyUI, and (when COMFYUI_PATH names a
checkout) against the real thing in a subprocess."""
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import types

import pytest
import torch
from torch import nn

from pack_loader import pack_for_tests

comfy_env = pack_for_tests().nodes.comfy_env

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- stand-in ComfyUI modules

def _fake_folder_paths(base):
    """The parts of ComfyUI's folder_paths we use, with its documented behaviour."""
    fp = types.ModuleType("folder_paths")
    fp.models_dir = str(base / "ComfyUI" / "models")
    fp.folder_names_and_paths = {"checkpoints": ([os.path.join(fp.models_dir, "checkpoints")], {".safetensors"})}

    def add_model_folder_path(name, path, is_default=False):
        if name not in fp.folder_names_and_paths:
            fp.folder_names_and_paths[name] = ([path], set())  # what an extra_model_paths.yaml key gets
            return
        paths = fp.folder_names_and_paths[name][0]
        if path not in paths:
            paths.insert(0, path) if is_default else paths.append(path)

    def get_filename_list(name):
        folders, extensions = fp.folder_names_and_paths[name]
        found = set()
        for folder in folders:
            for root, _dirs, files in os.walk(folder):
                for file in files:
                    if not extensions or os.path.splitext(file)[1] in extensions:
                        found.add(os.path.relpath(os.path.join(root, file), folder))
        return sorted(found)

    fp.add_model_folder_path = add_model_folder_path
    fp.get_folder_paths = lambda name: fp.folder_names_and_paths[name][0][:]
    fp.get_filename_list = get_filename_list
    fp.get_temp_directory = lambda: str(base / "ComfyUI" / "temp")
    return fp


class _Recorder:
    def __init__(self):
        self.calls = []


@pytest.fixture
def fake_comfy(monkeypatch, tmp_path):
    rec = _Recorder()
    comfy = types.ModuleType("comfy")
    mm = types.ModuleType("comfy.model_management")
    utils = types.ModuleType("comfy.utils")
    patcher_mod = types.ModuleType("comfy.model_patcher")

    class InterruptProcessingException(Exception):
        pass

    mm.InterruptProcessingException = InterruptProcessingException
    mm.interrupted = False
    mm.bf16, mm.fp16 = False, False
    mm.current_loaded_models = []
    mm.get_torch_device = lambda: torch.device("xpu", 0)  # a device the fallback would never pick
    mm.intermediate_device = lambda: torch.device("cpu")
    mm.unet_offload_device = lambda: torch.device("cpu")
    mm.should_use_bf16 = lambda device=None: rec.calls.append(("bf16?", device)) or mm.bf16
    mm.should_use_fp16 = lambda device=None: rec.calls.append(("fp16?", device)) or mm.fp16
    mm.soft_empty_cache = lambda force=False: rec.calls.append(("soft_empty_cache",))

    def throw_exception_if_processing_interrupted():
        if mm.interrupted:
            mm.interrupted = False
            raise InterruptProcessingException()

    class _Loaded:
        def __init__(self, patcher):
            self.model = patcher

        def model_unload(self, memory_to_free=None, unpatch_weights=True):
            rec.calls.append(("model_unload", self.model))
            self.model.detach()

    def load_models_gpu(models, memory_required=0, force_full_load=False, **kwargs):
        rec.calls.append(("load_models_gpu", list(models), memory_required, force_full_load))
        for patcher in models:
            if not any(entry.model is patcher for entry in mm.current_loaded_models):
                mm.current_loaded_models.insert(0, _Loaded(patcher))

    mm.throw_exception_if_processing_interrupted = throw_exception_if_processing_interrupted
    mm.load_models_gpu = load_models_gpu

    class ProgressBar:
        def __init__(self, total, node_id=None):
            self.total, self.current = total, 0
            rec.calls.append(("ProgressBar", total))

        def update_absolute(self, value, total=None, preview=None):
            self.current = value
            rec.calls.append(("progress", value, total))
            throw_exception_if_processing_interrupted()  # as ComfyUI's progress hook does

        def update(self, value):
            self.update_absolute(self.current + value)

    class ModelPatcher:
        def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
            self.model, self.load_device, self.offload_device = model, load_device, offload_device

        def detach(self, unpatch_all=True):
            rec.calls.append(("detach", self))
            self.model.to(self.offload_device)

    utils.ProgressBar = ProgressBar
    patcher_mod.ModelPatcher = ModelPatcher
    comfy.model_management, comfy.utils, comfy.model_patcher = mm, utils, patcher_mod
    for name, module in {"comfy": comfy, "comfy.model_management": mm, "comfy.utils": utils,
                         "comfy.model_patcher": patcher_mod, "folder_paths": _fake_folder_paths(tmp_path)}.items():
        monkeypatch.setitem(sys.modules, name, module)
    return types.SimpleNamespace(mm=mm, fp=sys.modules["folder_paths"], calls=rec.calls)


@pytest.fixture
def no_comfy(monkeypatch, tmp_path):
    """No ComfyUI importable (as in CI); the model folder comes from the environment."""
    for name in ("comfy", "comfy.model_management", "comfy.utils", "comfy.model_patcher", "folder_paths"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    real_import = comfy_env.importlib.import_module

    def refuse(name, *args):
        if name == "folder_paths" or name.split(".")[0] == "comfy":
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args)

    monkeypatch.setattr(comfy_env.importlib, "import_module", refuse)
    monkeypatch.setenv("MEMVOS_MODELS_DIR", str(tmp_path / "weights"))
    return tmp_path / "weights"


# ---------------------------------------------------------------- model folders

def test_model_folder_is_created_with_our_extensions(fake_comfy):
    fp = fake_comfy.fp
    dirs = comfy_env.register_model_folder()
    assert dirs == [os.path.join(fp.models_dir, "memvos")]
    assert fp.folder_names_and_paths["memvos"] == (dirs, {".pth", ".pt", ".safetensors"})
    assert fp.folder_names_and_paths["checkpoints"][1] == {".safetensors"}  # nobody else touched


def test_yaml_entry_is_kept_first_and_ours_appended_once(fake_comfy, tmp_path):
    fp = fake_comfy.fp
    user_dir = str(tmp_path / "nas" / "memvos")
    fp.add_model_folder_path("memvos", user_dir)  # what extra_model_paths.yaml did at startup
    comfy_env.register_model_folder()
    comfy_env.register_model_folder()  # e.g. a reload: still no duplicate
    default_dir = os.path.join(fp.models_dir, "memvos")
    assert comfy_env.model_dirs() == [user_dir, default_dir]
    assert fp.folder_names_and_paths["memvos"][1] == {".pth", ".pt", ".safetensors"}

    for folder, files in ((user_dir, ["XMem.pth", "XMem.pth.sha256", "XMem.pth.part-1a2b"]),
                          (default_dir, ["XMem-s012.safetensors", "notes.txt"])):
        os.makedirs(folder, exist_ok=True)
        for file in files:
            open(os.path.join(folder, file), "wb").close()
    assert comfy_env.list_model_files() == ["XMem-s012.safetensors", "XMem.pth"]


def test_an_existing_extension_filter_is_widened_not_replaced(fake_comfy, tmp_path):
    fp = fake_comfy.fp
    fp.folder_names_and_paths["memvos"] = ([str(tmp_path / "mine")], {".ckpt"})
    comfy_env.register_model_folder()
    paths, extensions = fp.folder_names_and_paths["memvos"]
    assert paths[0] == str(tmp_path / "mine") and extensions == {".ckpt", ".pth", ".pt", ".safetensors"}


def test_without_comfyui_the_environment_folder_is_used(no_comfy):
    assert comfy_env.register_model_folder() == [str(no_comfy)]
    assert comfy_env.model_dirs() == [str(no_comfy)]
    (no_comfy / "sub").mkdir(parents=True)
    for name in ("XMem.pth", "XMem.pth.sha256", "sub/Other.safetensors", "XMem.pth.part-ff"):
        (no_comfy / name).write_bytes(b"")
    assert comfy_env.list_model_files() == ["XMem.pth", "sub/Other.safetensors"]


def test_temp_directory(fake_comfy):
    path = comfy_env.temp_directory()
    assert path == fake_comfy.fp.get_temp_directory() and os.path.isdir(path)


def test_temp_directory_without_comfyui(no_comfy):
    path = comfy_env.temp_directory()
    assert path == os.path.join(tempfile.gettempdir(), "memvos") and os.path.isdir(path)


# ---------------------------------------------------------------- devices and precision

def test_auto_device_is_comfyuis_and_explicit_choices_are_honoured(fake_comfy):
    assert comfy_env.resolve_device("auto") == torch.device("xpu", 0)
    assert comfy_env.get_torch_device() == torch.device("xpu", 0)
    assert comfy_env.resolve_device("CPU") == torch.device("cpu")
    assert comfy_env.resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert comfy_env.intermediate_device() == torch.device("cpu")


def test_device_without_comfyui(no_comfy):
    expected = "cuda" if torch.cuda.is_available() else "mps" if comfy_env._mps_available() else "cpu"
    assert comfy_env.resolve_device("auto").type == expected
    assert comfy_env.intermediate_device() == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="'cuda' was chosen but PyTorch here sees no CUDA GPU.*'auto' or 'cpu'"):
        comfy_env.resolve_device("cuda")


@pytest.mark.skipif(comfy_env._mps_available(), reason="needs a machine without MPS")
def test_unavailable_mps_is_a_clear_error():
    with pytest.raises(ValueError, match="'mps' was chosen.*not available"):
        comfy_env.resolve_device("mps")


def test_unknown_device_lists_the_choices():
    with pytest.raises(ValueError, match="'tpu' is not one of auto, cpu, cuda, mps"):
        comfy_env.resolve_device("tpu")


@pytest.mark.parametrize("bf16, fp16, expected", [(True, True, "bf16"), (False, True, "fp16"), (False, False, "fp32")])
def test_auto_precision_follows_comfyui(fake_comfy, bf16, fp16, expected):
    fake_comfy.mm.bf16, fake_comfy.mm.fp16 = bf16, fp16
    assert comfy_env.resolve_precision("auto", torch.device("cuda", 0)) == expected
    assert ("bf16?", torch.device("cuda", 0)) in fake_comfy.calls


@pytest.mark.parametrize("device, capability, expected", [
    ("cpu", None, "fp32"), ("mps", None, "fp16"),
    ("cuda", (9, 0), "bf16"), ("cuda", (7, 5), "fp16"), ("cuda", (6, 1), "fp32"),
])
def test_auto_precision_without_comfyui(no_comfy, monkeypatch, device, capability, expected):
    monkeypatch.setattr(comfy_env.torch.cuda, "get_device_capability", lambda d=None: capability)
    assert comfy_env.resolve_precision("auto", torch.device(device)) == expected


def test_explicit_precision_and_its_errors(no_comfy, monkeypatch):
    assert comfy_env.resolve_precision("FP16", "cpu") == "fp16"
    assert comfy_env.resolve_precision("bf16", "cpu") == "bf16"
    monkeypatch.setattr(comfy_env.torch.cuda, "get_device_capability", lambda d=None: (7, 5))
    monkeypatch.setattr(comfy_env.torch.cuda, "get_device_name", lambda d=None: "Tesla T4")
    with pytest.raises(ValueError, match="'bf16' is not supported natively by Tesla T4.*'fp16'"):
        comfy_env.resolve_precision("bf16", "cuda:0")
    with pytest.raises(ValueError, match="'int8' is not one of auto, fp32, fp16, bf16"):
        comfy_env.resolve_precision("int8", "cpu")


# ---------------------------------------------------------------- progress and cancel

def test_progress_and_cancel_reach_comfyui(fake_comfy):
    bar = comfy_env.progress_bar(3)
    bar.update(1)
    bar.update_absolute(2, 3)
    assert [c for c in fake_comfy.calls if c[0] in ("ProgressBar", "progress")] == [
        ("ProgressBar", 3), ("progress", 1, None), ("progress", 2, 3)]
    comfy_env.check_interrupt()  # not cancelled: nothing happens
    fake_comfy.mm.interrupted = True
    with pytest.raises(fake_comfy.mm.InterruptProcessingException):
        comfy_env.check_interrupt()
    fake_comfy.mm.interrupted = True
    with pytest.raises(fake_comfy.mm.InterruptProcessingException):
        bar.update(1)


def test_download_progress_drives_a_node_bar(fake_comfy):
    report = comfy_env.download_progress(steps=10)
    report(50, 200)
    report(10, None)  # size unknown: nothing to show
    report(200, 200)
    assert [c for c in fake_comfy.calls if c[0] in ("ProgressBar", "progress")] == [
        ("ProgressBar", 10), ("progress", 2, None), ("progress", 10, None)]


def test_progress_and_cancel_without_comfyui(no_comfy):
    bar = comfy_env.progress_bar(2)
    bar.update(1)
    bar.update(5)
    assert (bar.current, bar.total) == (2, 2)
    bar.update_absolute(1, 4)
    assert (bar.current, bar.total) == (1, 4)
    comfy_env.check_interrupt()


# ---------------------------------------------------------------- VRAM

def test_network_is_handed_to_comfyuis_memory_manager(fake_comfy):
    network = nn.Linear(2, 2)
    managed = comfy_env.free_memory_hook(network, torch.device("cpu"), offload_to=torch.device("meta"))
    assert managed.managed_by_comfyui
    patcher = managed._patcher
    assert patcher.model.network is network and patcher.load_device == torch.device("cpu")
    assert not hasattr(network, "model_loaded_weight_memory")  # ComfyUI's bookkeeping stays on the holder

    assert managed.load(memory_required=123) is network
    assert ("load_models_gpu", [patcher], 123, True) in fake_comfy.calls
    assert [entry.model for entry in fake_comfy.mm.current_loaded_models] == [patcher]

    managed.offload()
    assert fake_comfy.mm.current_loaded_models == []
    assert ("model_unload", patcher) in fake_comfy.calls and fake_comfy.calls[-1] == ("soft_empty_cache",)
    assert network.weight.device.type == "meta"  # moved to the offload device


def test_same_load_and_offload_device_needs_no_manager(fake_comfy):
    managed = comfy_env.ManagedNetwork(nn.Linear(2, 2), "cpu")
    assert not managed.managed_by_comfyui
    assert managed.load().weight.device == torch.device("cpu")


def test_without_comfyui_the_network_just_moves(no_comfy):
    network = nn.Linear(2, 2)
    managed = comfy_env.ManagedNetwork(network, "cpu", offload_to="meta", use_comfyui=True)
    assert not managed.managed_by_comfyui
    managed.offload()
    assert network.weight.device.type == "meta"


# ---------------------------------------------------------------- the real ComfyUI, when available

_REAL_COMFYUI_SCRIPT = r"""
import json, os, sys
comfy_root, repo, base = sys.argv[1:4]
sys.argv = ["main.py", "--cpu"]
sys.path.insert(0, comfy_root)
import comfy.options
comfy.options.enable_args_parsing()
import folder_paths
from utils.extra_config import load_extra_path_config
import torch
yaml_path = os.path.join(base, "extra_model_paths.yaml")
with open(yaml_path, "w") as f:
    f.write("mine:\n    base_path: %s\n    memvos: nas/memvos\n" % base)
load_extra_path_config(yaml_path)
import importlib.util
# The pack as ComfyUI imports it: by path, as a package; ComfyUI's own nodes.py owns the name "nodes".
spec = importlib.util.spec_from_file_location("memvos_pack", os.path.join(repo, "__init__.py"),
                                              submodule_search_locations=[repo])
pack = importlib.util.module_from_spec(spec)
sys.modules["memvos_pack"] = pack
spec.loader.exec_module(pack)
comfy_env = importlib.import_module("memvos_pack.nodes.comfy_env")
out = {"dirs": comfy_env.register_model_folder()}
comfy_env.register_model_folder()
for folder, name in ((out["dirs"][0], "XMem.pth"), (out["dirs"][0], "XMem.pth.sha256"), (out["dirs"][1], "Other.safetensors")):
    os.makedirs(folder, exist_ok=True)
    open(os.path.join(folder, name), "wb").close()
out["files"] = comfy_env.list_model_files()
out["default_dir"] = os.path.join(folder_paths.models_dir, "memvos")
out["auto"] = str(comfy_env.resolve_device("auto"))
out["precision"] = comfy_env.resolve_precision("auto", "cpu")
import comfy.model_management as mm
net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
managed = comfy_env.ManagedNetwork(net, "cpu", use_comfyui=True)  # CPU only here: exercise the bookkeeping
managed.load()
out["loaded"] = any(m is managed._patcher for m in mm.loaded_models())
mm.unload_all_models()
out["after_unload_all"] = any(m is managed._patcher for m in mm.loaded_models())
managed.load()
managed.offload()
out["after_offload"] = any(m is managed._patcher for m in mm.loaded_models())
seen = []
import comfy.utils
comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: seen.append([value, total]))
bar = comfy_env.progress_bar(4)
bar.update(1)
out["progress"] = seen
mm.interrupt_current_processing(True)
try:
    comfy_env.check_interrupt()
    out["interrupt"] = None
except mm.InterruptProcessingException:
    out["interrupt"] = "raised"
print("RESULT " + json.dumps(out))
"""


@pytest.mark.skipif(not os.environ.get("COMFYUI_PATH"), reason="set COMFYUI_PATH to a ComfyUI checkout to run")
def test_against_a_real_comfyui(tmp_path):
    comfy_root = os.environ["COMFYUI_PATH"]
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_REAL_COMFYUI_SCRIPT), comfy_root, REPO_ROOT,
                           str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["dirs"] == [str(tmp_path / "nas" / "memvos"), out["default_dir"]]
    assert out["files"] == ["Other.safetensors", "XMem.pth"]
    assert out["auto"] == "cpu" and out["precision"] == "fp32"
    assert out["loaded"] and not out["after_unload_all"] and not out["after_offload"]
    assert out["progress"] == [[1, 4]] and out["interrupt"] == "raised"
