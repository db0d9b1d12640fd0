"""Where the long nodes work: ComfyUI's compute device, a working-memory budget from its free
memory, results handed back on the intermediate device (as core's morphology nodes do), and one
progress bar per node run, split into stages, that also checks the cancel button.

Frames and masks are read a chunk at a time through ``memvos_core.ops.chunking.read_chunk``, so a
lazy frame source (``num_frames`` and ``chunk(t0, t1)``) works wherever an IMAGE batch does.
"""
from . import comfy_env
from ..memvos_core.ops.chunking import Compute, default_budget


def working_budget(device):
    """Bytes one op may use on ``device``: half of what ComfyUI reports free, within 64 MiB..2 GiB
    (1 GiB on the CPU); outside ComfyUI the device is asked directly."""
    return default_budget(device, comfy_env.free_memory(device))


class NodeProgress:
    """A node's progress bar over ``total`` steps, handed out in stages (e.g. composite the
    frames, then write the preview): each stage reports ``(done, stage_total)`` and is mapped
    onto its slice of the bar. Every update also checks ComfyUI's cancel button."""

    def __init__(self, total):
        self.total, self.offset = max(1, int(total)), 0
        self.bar = comfy_env.progress_bar(self.total)

    def stage(self, length):
        """``(progress, cancel)`` for the next ``length`` steps of the bar."""
        start, length = self.offset, max(0, int(length))
        self.offset += length

        def progress(done, stage_total):
            step = done * length // stage_total if stage_total else length
            self.bar.update_absolute(min(self.total, start + step), self.total)
        return progress, cancel

    def compute(self, length, device=None):
        """A ``Compute`` for the next ``length`` steps: ComfyUI's device (or ``device``), its
        budget, results on the intermediate device, this bar and the cancel check."""
        device = comfy_env.get_torch_device() if device is None else device
        progress, check = self.stage(length)
        return Compute(device, comfy_env.intermediate_device(), working_budget(device), progress, check)


def cancel():
    """ComfyUI's cancel check: raises its InterruptProcessingException when the user cancelled."""
    comfy_env.check_interrupt()
    return False
