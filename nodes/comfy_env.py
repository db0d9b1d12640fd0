"""Everything that touches ComfyUI: model folders, devices, precision, progress, cancel and VRAM.

ComfyUI is imported lazily inside each function, so the pack imports (and its tests run)
without ComfyUI; every helper then falls back to plain PyTorch, which the CLI uses too.
This module imports nothing else from the pack, so it works however ``nodes`` is imported.
"""
import importlib
import os
import sys
import tempfile

import torch
from torch import nn

from ..memvos_core.weights import default_models_dir

MODEL_FOLDER = "memvos"
MODEL_EXTENSIONS = frozenset({".pth", ".pt", ".safetensors"})  # .pt: SAM 2.1 releases
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
PRECISION_CHOICES = ("auto", "fp32", "fp16", "bf16")


def _comfy(module_name):
    """A ComfyUI module (``folder_paths``, ``comfy.utils``, ...), or None outside ComfyUI."""
    module = sys.modules.get(module_name)
    if module is not None:
        return module
    try:
        return importlib.import_module(module_name)
    except ImportError:
        return None


# ---------------------------------------------------------------- model folders

def default_model_dir():
    """Where weights go outside ComfyUI (see :func:`memvos_core.weights.default_models_dir`)."""
    return default_models_dir()


def register_model_folder():
    """Register ``models/memvos`` with ComfyUI, keeping every folder the user already gave it.

    extra_model_paths.yaml is applied before packs load; an entry ``memvos:`` there must survive,
    so our default folder is appended behind it instead of replacing it. Returns the folders.
    """
    folder_paths = _comfy("folder_paths")
    if folder_paths is None:
        return [default_model_dir()]
    default_dir = os.path.join(folder_paths.models_dir, MODEL_FOLDER)
    registered = folder_paths.folder_names_and_paths.get(MODEL_FOLDER)
    if registered is None:
        folder_paths.folder_names_and_paths[MODEL_FOLDER] = ([default_dir], set(MODEL_EXTENSIONS))
    else:
        folder_paths.add_model_folder_path(MODEL_FOLDER, default_dir, is_default=False)
        paths, extensions = folder_paths.folder_names_and_paths[MODEL_FOLDER]
        if not MODEL_EXTENSIONS <= set(extensions):
            # A YAML entry has no extension filter: the menu would list our .sha256 records too.
            folder_paths.folder_names_and_paths[MODEL_FOLDER] = (paths, set(extensions) | MODEL_EXTENSIONS)
    return list(folder_paths.folder_names_and_paths[MODEL_FOLDER][0])


def model_dirs():
    """Every folder searched for weights, the user's own first; downloads go to the first."""
    folder_paths = _comfy("folder_paths")
    if folder_paths is None:
        return [default_model_dir()]
    if MODEL_FOLDER not in folder_paths.folder_names_and_paths:
        register_model_folder()
    return list(folder_paths.get_folder_paths(MODEL_FOLDER))


def list_model_files():
    """Weights files present in the model folders, as names relative to their folder."""
    folder_paths = _comfy("folder_paths")
    if folder_paths is not None:
        model_dirs()
        return list(folder_paths.get_filename_list(MODEL_FOLDER))
    names = set()
    for folder in model_dirs():
        for root, _dirs, files in os.walk(folder, followlinks=True):
            for file in files:
                if os.path.splitext(file)[1].lower() in MODEL_EXTENSIONS:
                    names.add(os.path.relpath(os.path.join(root, file), folder).replace(os.sep, "/"))
    return sorted(names)


def temp_directory():
    """A folder for preview files: ComfyUI's temp folder (served at /view?type=temp), or the OS's."""
    folder_paths = _comfy("folder_paths")
    path = folder_paths.get_temp_directory() if folder_paths is not None else os.path.join(tempfile.gettempdir(), "memvos")
    os.makedirs(path, exist_ok=True)
    return path


# ---------------------------------------------------------------- devices and precision

def _mps_available():
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def get_torch_device():
    """The device ComfyUI computes on (honours --cpu, XPU, DirectML, ...); else cuda, mps or cpu."""
    mm = _comfy("comfy.model_management")
    if mm is not None:
        return mm.get_torch_device()
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("mps") if _mps_available() else torch.device("cpu")


def intermediate_device():
    """Where node outputs live between nodes: CPU unless ComfyUI runs with --gpu-only."""
    mm = _comfy("comfy.model_management")
    return mm.intermediate_device() if mm is not None else torch.device("cpu")


def offload_device():
    """Where an idle model waits: CPU unless ComfyUI runs with --highvram."""
    mm = _comfy("comfy.model_management")
    return mm.unet_offload_device() if mm is not None else torch.device("cpu")


def free_memory(device):
    """Bytes free for work on ``device`` by ComfyUI's accounting (memory its allocator caches
    counts as free), or None outside ComfyUI (callers then measure for themselves)."""
    mm = _comfy("comfy.model_management")
    if mm is not None and hasattr(mm, "get_free_memory"):
        return int(mm.get_free_memory(torch.device(device)))
    return None


def resolve_device(choice="auto"):
    """The torch device for a device widget value: auto (ComfyUI's device), cpu, cuda or mps."""
    if isinstance(choice, torch.device):
        return choice
    name = str(choice).strip().lower()
    if name == "auto":
        return get_torch_device()
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was chosen but PyTorch here sees no CUDA GPU (a CPU-only "
                             "PyTorch build, or no GPU driver): choose 'auto' or 'cpu'")
        auto = get_torch_device()
        return auto if auto.type == "cuda" else torch.device("cuda", torch.cuda.current_device())
    if name == "mps":
        if not _mps_available():
            raise ValueError("device 'mps' was chosen but Apple's Metal (MPS) is not available to "
                             "PyTorch here (it needs a Mac with Apple silicon): choose 'auto' or 'cpu'")
        return torch.device("mps")
    raise ValueError(f"device {choice!r} is not one of {', '.join(DEVICE_CHOICES)}")


def resolve_precision(choice, device):
    """The engine precision name ("fp32", "fp16" or "bf16") for a precision widget value.

    auto follows ComfyUI's should_use_bf16/should_use_fp16 when ComfyUI is present; otherwise
    bf16 on CUDA GPUs that compute it natively, fp16 on older tensor-core GPUs and on MPS, fp32 else.
    """
    name = str(choice).strip().lower()
    device = torch.device(device)
    if name in ("fp32", "fp16"):
        return name
    if name == "bf16":
        if device.type == "cuda" and torch.cuda.get_device_capability(device)[0] < 8:
            raise ValueError(f"precision 'bf16' is not supported natively by {torch.cuda.get_device_name(device)} "
                             "(it needs an Ampere or newer GPU): choose 'fp16', 'fp32' or 'auto'")
        return name
    if name != "auto":
        raise ValueError(f"precision {choice!r} is not one of {', '.join(PRECISION_CHOICES)}")
    mm = _comfy("comfy.model_management")
    if mm is not None:
        if mm.should_use_bf16(device):
            return "bf16"
        return "fp16" if mm.should_use_fp16(device) else "fp32"
    if device.type == "cuda":
        major = torch.cuda.get_device_capability(device)[0]
        return "bf16" if major >= 8 else "fp16" if major >= 7 else "fp32"
    return "fp16" if device.type == "mps" else "fp32"


# ---------------------------------------------------------------- progress and cancel

class _SilentProgress:
    """Stands in for ComfyUI's ProgressBar outside ComfyUI."""

    def __init__(self, total):
        self.total, self.current = total, 0

    def update_absolute(self, value, total=None, preview=None):
        if total is not None:
            self.total = total
        self.current = min(value, self.total)

    def update(self, value=1):
        self.update_absolute(self.current + value)


def progress_bar(total):
    """A progress bar on the running node: ``update(n)`` / ``update_absolute(value, total, preview)``.

    In ComfyUI every update also checks the cancel button, so one update per frame makes a
    loop stop within a frame of the user cancelling.
    """
    utils = _comfy("comfy.utils")
    if utils is not None and hasattr(utils, "ProgressBar"):
        return utils.ProgressBar(total)
    return _SilentProgress(total)


def download_progress(steps=100):
    """A ``progress(bytes_done, bytes_total)`` callback for a weights download, shown as a node bar."""
    bar = progress_bar(steps)

    def report(done, total):
        if total:
            bar.update_absolute(min(steps, done * steps // total))
    return report


def check_interrupt():
    """Raise ComfyUI's InterruptProcessingException if the user pressed cancel; no-op outside ComfyUI."""
    mm = _comfy("comfy.model_management")
    if mm is not None:
        mm.throw_exception_if_processing_interrupted()


# ---------------------------------------------------------------- queued prompts

def add_prompt_handler(handler):
    """Pass every prompt queued on ComfyUI's server through ``handler(json_data) -> json_data``
    (its on-prompt hook, run before validation). False outside a running server."""
    server = sys.modules.get("server")
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    if instance is None or not hasattr(instance, "add_on_prompt_handler"):
        return False
    if handler not in getattr(instance, "on_prompt_handlers", ()):
        instance.add_on_prompt_handler(handler)
    return True


# ---------------------------------------------------------------- VRAM

class _NetworkHolder(nn.Module):
    """ComfyUI's ModelPatcher writes bookkeeping attributes onto the module it manages; they go
    onto this holder instead of onto the network."""

    def __init__(self, network):
        super().__init__()
        self.network = network


class ManagedNetwork:
    """A network that ComfyUI's memory manager may move off the GPU whenever it needs room.

    Call :meth:`load` before every run and use the module it returns: it (re)loads the network
    onto its device, first evicting other models if VRAM is short. Between runs ComfyUI can
    offload it like any of its own models (other models loading, the "unload models" button,
    unload_all_models after an out-of-memory error). Keep this object with the network: when it
    is dropped, ComfyUI forgets the network too. Without ComfyUI, or when the compute and
    offload devices are the same, it is a plain ``.to(device)``.
    """

    def __init__(self, network, load_device, offload_to=None, *, use_comfyui=None):
        self.network = network
        self.load_device = torch.device(load_device)
        self.offload_to = torch.device(offload_to) if offload_to is not None else offload_device()
        self._patcher = None
        model_patcher = _comfy("comfy.model_patcher")
        if use_comfyui is None:
            use_comfyui = self.load_device != self.offload_to
        if use_comfyui and model_patcher is not None:
            self._patcher = model_patcher.ModelPatcher(
                _NetworkHolder(network), load_device=self.load_device, offload_device=self.offload_to)

    @property
    def managed_by_comfyui(self):
        return self._patcher is not None

    def load(self, memory_required=0):
        """The network, on ``load_device``; ``memory_required``: bytes the run needs besides the weights."""
        if self._patcher is None:
            return self.network.to(self.load_device)
        mm = _comfy("comfy.model_management")
        # A full load: ComfyUI's partial ("lowvram") loading only works for its own layer types.
        mm.load_models_gpu([self._patcher], memory_required=memory_required, force_full_load=True)
        return self.network

    def offload(self):
        """Move the network to the offload device now (e.g. a 'keep model loaded' switch turned off)."""
        if self._patcher is None:
            self.network.to(self.offload_to)
            if self.load_device.type == "cuda" and self.offload_to.type != "cuda":
                torch.cuda.empty_cache()  # hand the freed blocks back to the driver, as ComfyUI would
            return
        mm = _comfy("comfy.model_management")
        loaded = getattr(mm, "current_loaded_models", None)
        if loaded is None:
            self._patcher.detach()
        else:
            for index in reversed(range(len(loaded))):
                if loaded[index].model is self._patcher:
                    loaded.pop(index).model_unload()
        mm.soft_empty_cache()


def free_memory_hook(network, load_device, offload_to=None):
    """Wrap a loaded network so ComfyUI can release its VRAM when asked (see :class:`ManagedNetwork`)."""
    return ManagedNetwork(network, load_device, offload_to)


# ---------------------------------------------------------------- HTTP routes

def add_get_routes(handlers):
    """Serve ``{path: handler(query dict) -> (status, content type, bytes)}`` from ComfyUI's web
    server (PromptServer also mirrors them under /api). Handlers run in a worker thread, so
    encoding an image never stalls the server. Returns the paths added (none outside ComfyUI)."""
    server = sys.modules.get("server")  # ComfyUI's, imported before any pack; never import one here
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    if instance is None or not hasattr(instance, "routes"):
        return []
    try:
        from aiohttp import web  # ComfyUI's web framework: always there in a real ComfyUI
    except ImportError:
        return []  # a stand-in server (the benchmarks' executor)
    import asyncio

    def wrap(handler):
        async def handle(request):
            status, content_type, body = await asyncio.get_running_loop().run_in_executor(
                None, handler, dict(request.rel_url.query))
            return web.Response(status=status, body=body, content_type=content_type,
                                headers={"Cache-Control": "no-store"})
        return handle

    for path, handler in handlers.items():
        instance.routes.get(path)(wrap(handler))
    return list(handlers)
