"""Load Model: XMem or Cutie weights from ComfyUI's ``models/memvos`` folders, or a known official
checkpoint downloaded on first use; device and precision; VRAM handed to ComfyUI's manager."""
import dataclasses
import os
import weakref

from . import comfy_env
from .common import LOG, MODEL
from .inputs import Input, input_types, takes_declared
from ..memvos_core import weights as core_weights
from ..memvos_core.runtime.model import MemVOSModel, load_model

# Each loaded model's ComfyUI memory-manager handle. Keyed weakly by the model: the handle lives
# as long as a session or a cached output still holds the model, and no longer.
_MANAGED = weakref.WeakKeyDictionary()


def ready_network(model):
    """The model's network on its device, reloaded there if ComfyUI offloaded it meanwhile."""
    managed = _MANAGED.get(model)
    if managed is not None:
        return managed.load()
    return model.network.to(model.device)


def weight_choices():
    """Files in the model folders, then the known checkpoints not downloaded yet."""
    files = list(comfy_env.list_model_files())
    return files + [name for name in core_weights.KNOWN_CHECKPOINTS if name not in files]


def _load_model_inputs(choices=()):
    """Load Model's inputs; the weights' choices are the files found when ComfyUI asks."""
    return (
        Input("weights", choices, choices[0] if choices else None, "Weights file from models/memvos, or an "
              "official XMem or Cutie checkpoint (downloaded there on first use).",
              options={} if choices else {"default": None}),
        Input("device", list(comfy_env.DEVICE_CHOICES), "auto",
              "auto: ComfyUI's device (honours --cpu). cpu / cuda / mps: force one."),
        Input("precision", list(comfy_env.PRECISION_CHOICES), "auto",
              "auto: bf16 or fp16 where the GPU computes it well, else fp32. fp32 is exact but slower; fp16/bf16 "
              "halve activation memory."),
    )


def weights_path(name):
    """A checked local weights file for a widget value, downloading a known checkpoint if needed."""
    folders = comfy_env.model_dirs()
    found = core_weights.find_weights(name, folders)
    if found is not None:
        return found
    if name not in core_weights.KNOWN_CHECKPOINTS:
        return core_weights.resolve_weights(name, folders)  # raises, saying where to put the file
    LOG.info("MemVOS: downloading %s into %s (first use)", name, folders[0])
    bar = comfy_env.progress_bar(100)

    def progress(done, total):
        if total:
            bar.update_absolute(min(100, int(100 * done / total)), 100)

    def cancel():
        comfy_env.check_interrupt()

    return core_weights.ensure_weights(name, folders[0], search_dirs=folders, progress=progress, cancel=cancel)


def _local_file_state(name):
    """What the cache should notice about a weights file: where it is, its time and size."""
    for folder in comfy_env.model_dirs():
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            stat = os.stat(path)
            return f"{path}|{stat.st_mtime_ns}|{stat.st_size}"
    return f"absent:{name}"


class MemVOSLoadModel:
    DESCRIPTION = ("Loads an XMem, Cutie, SAM 2.1 or MatAnyone model for MemVOS (the family is read from the file). "
                   "Pick a file from models/memvos (folders from extra_model_paths.yaml included) or an official "
                   "checkpoint (XMem.pth, XMem-s012.pth, cutie-base-mega.pth, cutie-small-mega.pth, "
                   "sam2.1_hiera_tiny.pt, _small, _base_plus, _large, matanyone.pth, matanyone2.pth), which downloads "
                   "from its release on first use and is verified before use. Cutie is the newer model, better on "
                   "cluttered shots; XMem the proven one. matanyone.pth / matanyone2.pth (MatAnyone, MatAnyone 2) "
                   "give learned soft alpha mattes; their weights are under the S-Lab License 1.0, NON-COMMERCIAL use "
                   "only. ComfyUI's memory manager may move the model off the GPU between runs.")
    CATEGORY = "MemVOS/loaders"
    FUNCTION = "load"
    RETURN_TYPES = (MODEL,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The loaded model, for New Session and Load Session.",)

    @classmethod
    def INPUT_TYPES(cls):
        return input_types(_load_model_inputs(weight_choices()))

    @classmethod
    @takes_declared(_load_model_inputs())
    def IS_CHANGED(cls, weights, device, precision):
        return _local_file_state(weights)

    @takes_declared(_load_model_inputs())
    def load(self, weights, device, precision):
        target = comfy_env.resolve_device(device)
        precision_name = comfy_env.resolve_precision(precision, target)
        path = weights_path(weights)
        base = load_model(path, device="cpu", precision="fp32", name=weights)
        # The network stays on the CPU here; the memory manager moves it right before each run.
        model = dataclasses.replace(base, device=str(target), precision=precision_name)
        _MANAGED[model] = comfy_env.free_memory_hook(model.network, target)
        LOG.info("MemVOS: loaded %s (%s, %s) for %s, %s", weights, model.family, model.model_id, target,
                 precision_name)
        return (model,)


def check_model(model, name="model"):
    if not isinstance(model, MemVOSModel):
        raise ValueError(f"{name} is a {type(model).__name__}, not a MemVOS model: connect the output "
                         "of MemVOS Load Model")
    return model


NODE_CLASS_MAPPINGS = {"MemVOSLoadModel": MemVOSLoadModel}
NODE_DISPLAY_NAME_MAPPINGS = {"MemVOSLoadModel": "MemVOS Load Model"}
