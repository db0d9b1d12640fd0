"""New Session (model + memory settings) and Add Annotation Frame (one object's mask on one frame)."""
import torch

from .common import LOG, MAX_FRAME_INDEX, MAX_OBJECT_ID, MODEL, SESSION, check_frames, check_type
from .frame_source import FRAMES_INPUT
from .messages import size_text, warn
from .model_nodes import check_model
from ..memvos_core.config import MEMORY_MODES, MemoryConfig
from ..memvos_core.families import FAMILY_NAMES, check_config
from ..memvos_core.frames import same_aspect
from ..memvos_core.session import Session

_DEFAULTS = MemoryConfig()


def check_session(session, name="session"):
    return check_type(session, Session, "MemVOS session", name,
                      "connect the session output of MemVOS New Session, Add Annotation Frame, "
                      "Propagate or Load Session")


def _int(default, low, high, tooltip, advanced=False):
    options = {"default": default, "min": low, "max": high, "step": 1, "tooltip": tooltip}
    if advanced:
        options["advanced"] = True
    return ("INT", options)


def _bool(default, tooltip, advanced=False):
    options = {"default": default, "tooltip": tooltip}
    if advanced:
        options["advanced"] = True
    return ("BOOLEAN", options)


# Settings only one family reads (ComfyUI widgets are static, so New Session shows all of them):
# their tooltips say so, and a changed value the chosen model ignores is reported in the log.
XMEM_ONLY = ("deep_update_every",)
CUTIE_ONLY = {"cutie_stagger_updates": "stagger_updates", "cutie_chunk_size": "chunk_size",
              "cutie_max_mem_frames": "max_mem_frames", "cutie_buffer_tokens": "buffer_tokens"}


class MemVOSNewSession:
    DESCRIPTION = ("Starts an empty rotoscoping session: the model (XMem or Cutie) plus its memory settings "
                   "(defaults are the families' own). Settings marked 'XMem only' or 'Cutie only' apply to that "
                   "family and are ignored by the other. Add annotation frames to it, then propagate. xmem++ "
                   "keeps every annotation in permanent memory, so several keyframes anywhere in the shot all "
                   "help every frame.")
    CATEGORY = "MemVOS/session"
    FUNCTION = "create"
    RETURN_TYPES = (SESSION,)
    RETURN_NAMES = ("session",)
    OUTPUT_TOOLTIPS = ("An empty session: connect it to Add Annotation Frame.",)

    @classmethod
    def INPUT_TYPES(cls):
        d = _DEFAULTS
        return {"required": {
            "model": (MODEL, {"tooltip": "The model from MemVOS Load Model."}),
            "memory_mode": (list(reversed(MEMORY_MODES)), {
                "default": d.memory_mode,
                "tooltip": "xmem++: every annotation goes into permanent memory (best with several keyframes). "
                           "xmem: the original XMem schedule (annotations enter working memory as frames); "
                           "with Cutie, its evaluation schedule (each object's first annotation is permanent)."}),
            "internal_size": _int(480, -1, 4096, "Shorter side (pixels) the network works at; masks come back "
                                  "at the source size. 480 is what XMem and Cutie use; lower is faster, -1 = the "
                                  "source size."),
            "mem_every": _int(d.mem_every, 1, 1000, "A frame is written into memory every this many frames."),
            "top_k": _int(d.top_k, 1, 1024, "Memory entries each pixel reads from (top-k)."),
            "enable_long_term": _bool(d.enable_long_term, "Long-term memory: compresses old frames into "
                                      "prototypes so memory stays bounded on long shots."),
            "deep_update_every": _int(d.deep_update_every, -1, 1000, "XMem only (Cutie ignores it): deep "
                                      "update of the hidden state every this many frames; -1 = with every memory "
                                      "write (Cutie always does that).", advanced=True),
            "min_mid_term_frames": _int(d.min_mid_term_frames, 1, 1000, "Frames kept in working memory "
                                        "after a consolidation into long-term memory.", advanced=True),
            "max_mid_term_frames": _int(d.max_mid_term_frames, 2, 1000, "Working-memory frames that trigger "
                                        "a consolidation into long-term memory.", advanced=True),
            "num_prototypes": _int(d.num_prototypes, 1, 4096, "Prototypes made per consolidation.",
                                   advanced=True),
            "max_long_term_elements": _int(d.max_long_term_elements, 2, 1_000_000, "Long-term memory size "
                                           "limit (Cutie: per group of objects annotated together); the least "
                                           "used elements are dropped beyond it.", advanced=True),
            "long_term_count_usage": _bool(d.enable_long_term_count_usage, "Count how often long-term "
                                           "elements are read, to drop the least used first.", advanced=True),
            "antialias": _bool(False, "Antialias when shrinking frames to the internal size (XMem does "
                               "not; it can help very large sources).", advanced=True),
            "tta_flip": _bool(False, "Test-time augmentation: also segment the mirrored shot and average "
                              "(about twice the time; steadier edges).", advanced=True),
            "tta_scales": ("STRING", {"default": "", "advanced": True,
                                      "tooltip": "Test-time augmentation: internal scales to average, e.g. "
                                                 "'1.0, 0.75, 1.25' (each one costs a full pass); empty = off."}),
        }, "optional": {
            "cutie_stagger_updates": _int(d.stagger_updates, 1, 1000, "Cutie only (XMem ignores it): how many "
                                          "of the mem_every frames after a memory write update the sensory "
                                          "memory (5 = Cutie's default).", advanced=True),
            "cutie_chunk_size": _int(d.chunk_size, -1, 255, "Cutie only (XMem ignores it): objects read and "
                                     "decoded together; -1 = all (Cutie's default). Smaller saves GPU memory with "
                                     "many objects but changes results slightly: objects only compete within a "
                                     "chunk.", advanced=True),
            "cutie_max_mem_frames": _int(d.max_mem_frames, 1, 1000, "Cutie only (XMem ignores it): with long-term "
                                         "memory off, the frames kept in memory, annotations included (the oldest "
                                         "others are dropped).", advanced=True),
            "cutie_buffer_tokens": _int(d.buffer_tokens, 0, 1_000_000, "Cutie only (XMem ignores it): long-term "
                                        "memory is pruned this many elements below its limit, so pruning does "
                                        "not happen at every consolidation.", advanced=True),
        }}

    def create(self, model, memory_mode="xmem++", internal_size=480, mem_every=_DEFAULTS.mem_every,
               top_k=_DEFAULTS.top_k, enable_long_term=_DEFAULTS.enable_long_term,
               deep_update_every=_DEFAULTS.deep_update_every, min_mid_term_frames=_DEFAULTS.min_mid_term_frames,
               max_mid_term_frames=_DEFAULTS.max_mid_term_frames, num_prototypes=_DEFAULTS.num_prototypes,
               max_long_term_elements=_DEFAULTS.max_long_term_elements,
               long_term_count_usage=_DEFAULTS.enable_long_term_count_usage, antialias=False,
               tta_flip=False, tta_scales="", cutie_stagger_updates=_DEFAULTS.stagger_updates,
               cutie_chunk_size=_DEFAULTS.chunk_size, cutie_max_mem_frames=_DEFAULTS.max_mem_frames,
               cutie_buffer_tokens=_DEFAULTS.buffer_tokens):
        check_model(model)
        internal_size = int(internal_size)
        if internal_size != -1 and internal_size < 32:
            raise ValueError(f"internal_size {internal_size} is too small: use -1 (the source size) or at "
                             "least 32 pixels (480 is XMem's and Cutie's)")
        config = MemoryConfig(top_k=int(top_k), mem_every=int(mem_every), deep_update_every=int(deep_update_every),
                              enable_long_term=bool(enable_long_term),
                              enable_long_term_count_usage=bool(long_term_count_usage),
                              min_mid_term_frames=int(min_mid_term_frames),
                              max_mid_term_frames=int(max_mid_term_frames), num_prototypes=int(num_prototypes),
                              max_long_term_elements=int(max_long_term_elements), memory_mode=memory_mode,
                              stagger_updates=int(cutie_stagger_updates), chunk_size=int(cutie_chunk_size),
                              max_mem_frames=int(cutie_max_mem_frames), buffer_tokens=int(cutie_buffer_tokens))
        check_config(model.family, config)
        _report_ignored(model.family, config)
        return (Session(model, config, internal_size, bool(antialias), parse_scales(tta_scales), bool(tta_flip)),)


def _report_ignored(family, config):
    """Say in the log which changed settings the chosen family does not read."""
    ignored = CUTIE_ONLY.values() if family == "xmem" else XMEM_ONLY if family == "cutie" else ()
    changed = [f"{name}={getattr(config, name)}" for name in ignored
               if getattr(config, name) != getattr(_DEFAULTS, name)]
    if changed:
        LOG.warning("MemVOS New Session: %s model ignores %s (settings of the other model family)",
                    FAMILY_NAMES.get(family, family), ", ".join(changed))


def parse_scales(text):
    """'1.0, 0.75' -> (1.0, 0.75); empty -> () (no scale augmentation)."""
    parts = [p for p in str(text).replace(";", ",").split(",") if p.strip()]
    try:
        scales = tuple(float(p) for p in parts)
    except ValueError:
        raise ValueError(f"tta_scales {text!r}: write numbers separated by commas, e.g. '1.0, 0.75'") from None
    bad = [s for s in scales if not 0.25 <= s <= 4]
    if bad:
        raise ValueError(f"tta_scales {bad}: each scale must be between 0.25 and 4")
    return scales


def pick_mask(mask, frame_index, num_frames):
    """One ``[H,W]`` float mask out of a MASK input (``[H,W]`` or ``[B,H,W]``)."""
    if not torch.is_tensor(mask) or mask.dim() not in (2, 3):
        shape = tuple(mask.shape) if torch.is_tensor(mask) else type(mask).__name__
        raise ValueError(f"mask must be a MASK [height, width] or [batch, height, width] (got {shape}): "
                         "connect a mask, e.g. from Load Image (Mask) or the mask editor")
    mask = mask.float() if mask.dtype == torch.bool else mask
    if mask.dim() == 2:
        return mask
    count = mask.shape[0]
    if count == 1:
        return mask[0]
    if count == num_frames:
        return mask[frame_index]
    raise ValueError(f"mask is a batch of {count} masks but frames has {num_frames} frames: connect a single "
                     "mask, or one mask per frame (then the one at frame_index is used)")


def fit_mask(mask, frame_hw, name="mask"):
    """The mask at the frame's size: equal, or resized (with a warning) when only the scale differs."""
    (mh, mw), (h, w) = tuple(mask.shape), tuple(frame_hw)
    if (mh, mw) == (h, w):
        return mask
    if not same_aspect((mh, mw), (h, w)):
        raise ValueError(f"{name} is {size_text((mh, mw))} but the frame is {size_text((h, w))} (a different aspect "
                         "ratio): draw the mask on this shot's frame, or resize/crop it to the frames")
    warn(f"{name} {size_text((mh, mw))} resized to the frame size {size_text((h, w))}")
    resized = torch.nn.functional.interpolate(mask[None, None].float(), size=(h, w), mode="nearest")
    return resized[0, 0]


class MemVOSAddAnnotation:
    DESCRIPTION = ("Adds one object's mask on one frame (a keyframe) to the session. Chain several for more "
                   "objects and more keyframes, anywhere in the shot; the same object on the same frame again "
                   "replaces its mask. Mask 1 (white) = the object.")
    CATEGORY = "MemVOS/session"
    FUNCTION = "add"
    RETURN_TYPES = (SESSION,)
    RETURN_NAMES = ("session",)
    OUTPUT_TOOLTIPS = ("The session with this annotation: chain more annotations, or propagate.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "session": (SESSION, {"tooltip": "A session from New Session or from another Add Annotation Frame."}),
            "frames": (FRAMES_INPUT, {"tooltip": "The shot's frames (the annotated frame is taken at "
                                                 "frame_index), or just the annotated frame itself."}),
            "mask": ("MASK", {"tooltip": "The object's mask on that frame (1 = object). A batch with one mask "
                                         "per frame is accepted: the one at frame_index is used."}),
            "frame_index": ("INT", {"default": 0, "min": 0, "max": MAX_FRAME_INDEX, "step": 1,
                                    "tooltip": "Clip frame the mask belongs to (0 = first frame of the shot)."}),
            "object_id": ("INT", {"default": 1, "min": 1, "max": MAX_OBJECT_ID, "step": 1,
                                  "tooltip": "Which object this mask is (1, 2, ...): one id per object, kept "
                                             "across keyframes."}),
        }}

    def add(self, session, frames, mask, frame_index, object_id):
        check_session(session)
        frames = check_frames(frames)
        frame_index, object_id = int(frame_index), int(object_id)
        count = frames.shape[0]
        if count == 1:
            image = frames[0]
        elif 0 <= frame_index < count:
            image = frames[frame_index]
        else:
            raise ValueError(f"frame_index {frame_index} is outside frames ({count} frames: 0..{count - 1}): "
                             "pick a frame of the shot, or connect the whole shot")
        # Keyframes live on the CPU (one frame each); the mask may arrive on the GPU (--gpu-only).
        chosen = fit_mask(pick_mask(mask, frame_index, count), image.shape[:2]).detach().cpu()
        if not bool((chosen > 0.5).any()):
            if object_id not in session.object_ids:
                raise ValueError(f"mask for object {object_id} on frame {frame_index} is empty (nothing above "
                                 "0.5): paint the object, or check you connected the right mask")
            LOG.info("MemVOS: object %d marked as absent on frame %d (empty mask)", object_id, frame_index)
        return (session.add_annotation(frame_index, image, chosen, object_id),)


NODE_CLASS_MAPPINGS = {"MemVOSNewSession": MemVOSNewSession, "MemVOSAddAnnotation": MemVOSAddAnnotation}
NODE_DISPLAY_NAME_MAPPINGS = {"MemVOSNewSession": "MemVOS New Session",
                              "MemVOSAddAnnotation": "MemVOS Add Annotation Frame"}
