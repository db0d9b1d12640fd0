"""What the node modules share: link type names, input checks, output conventions."""
import logging
import re

from . import comfy_env
from .frame_source import frame_clip
from ..memvos_core.ops.composite import mask_to_image  # noqa: F401  (re-exported for the node modules)
from ..memvos_core.media_io.palette import davis_palette
from ..memvos_core.session.objects import MAX_OBJECT_ID

LOG = logging.getLogger("memvos")

# Link types between our nodes (custom objects are passed by reference, never serialised).
MODEL = "MEMVOS_MODEL"
SESSION = "MEMVOS_SESSION"
MASKS = "MEMVOS_MASKS"
SUGGESTIONS = "MEMVOS_SUGGESTIONS"

MAX_FRAME_INDEX = 1_000_000
CHUNK_FRAMES = 16  # frames materialised at source size at a time


def check_frames(frames, name="frames"):
    """An IMAGE batch ``[T,H,W,3]`` (the core's check), or a ValueError that says what to connect. A
    VIDEO or MEMVOS_FRAMES (a long shot) gives a FrameClip instead, which slices like the batch."""
    return frame_clip(frames, name)


def check_type(value, expected_class, type_name, name, hint):
    if not isinstance(value, expected_class):
        raise ValueError(f"{name} is a {type(value).__name__}, not a {type_name}: {hint}")
    return value


def parse_object_ids(text, name="object_ids"):
    """``"1, 3"`` (commas or spaces) -> ``[1, 3]``; an empty text -> None (every object)."""
    text = (text or "").strip()
    if not text:
        return None
    parts = [p for p in re.split(r"[\s,;]+", text) if p]
    try:
        ids = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a list of object ids: write them like '1, 3' "
                         "(or leave it empty for every object)") from None
    bad = [i for i in ids if not 1 <= i <= MAX_OBJECT_ID]
    if bad:
        raise ValueError(f"{name} {text!r} holds {bad}: object ids are 1..{MAX_OBJECT_ID}")
    return list(dict.fromkeys(ids))


def to_output(tensor):
    """Node outputs live on ComfyUI's intermediate device (CPU unless --gpu-only)."""
    return tensor.to(comfy_env.intermediate_device())


def colour_labels(labels):
    """uint8 label maps ``[T,H,W]`` -> IMAGE ``[T,H,W,3]`` in the DAVIS palette (0 black)."""
    palette = davis_palette().to(labels.device).float() / 255.0
    return palette[labels.long()]


def progress_and_cancel(total):
    """``(progress(done, total), cancel())`` for core loops: a ComfyUI ProgressBar updated every
    frame and ComfyUI's interrupt check (it raises when the user cancels; outside ComfyUI both
    do nothing)."""
    bar = comfy_env.progress_bar(total)

    def progress(done, total_now):
        bar.update_absolute(done, total_now)

    def cancel():
        comfy_env.check_interrupt()
        return False

    return progress, cancel
