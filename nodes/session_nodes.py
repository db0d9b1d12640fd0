"""New Session (model + memory settings) and Add Annotation Frame (one object's mask on one frame)."""
import torch

from .common import LOG, MAX_FRAME_INDEX, MAX_OBJECT_ID, MODEL, SESSION, check_frames, check_type
from .frame_source import FRAMES_INPUT
from .inputs import Input, input_types, input_values, takes_declared
from .messages import size_text, warn
from .model_nodes import check_model
from ..memvos_core.config import MEMORY_MODES, SHARED, MemoryConfig, all_settings
from ..memvos_core.families import check_config, title_of
from ..memvos_core.families.registry import FORMER_MEMORY_MODES, family_settings, readers
from ..memvos_core.runtime.frames import same_aspect
from ..memvos_core.session import Session

def check_session(session, name="session"):
    return check_type(session, Session, "MemVOS session", name,
                      "connect the session output of MemVOS New Session, Add Annotation Frame, "
                      "Propagate or Load Session")


def _setting_input(setting, owner=None, optional=False):
    """A memory setting as a widget; a family's own says which family reads it (ComfyUI widgets are
    static, so New Session shows every family's)."""
    tooltip = setting.help if owner is None else f"{owner.title} only (other models ignore it): {setting.help}"
    if setting.name == "memory_mode":
        # The former names stay choosable: workflows saved with them must pass ComfyUI's check.
        kind = [setting.default, *(m for m in MEMORY_MODES if m != setting.default), *FORMER_MEMORY_MODES]
        return Input(setting.input_name, kind, setting.default, tooltip)
    if setting.kind is bool:
        return Input(setting.input_name, "BOOLEAN", setting.default, tooltip, advanced=setting.advanced,
                     optional=optional)
    return Input(setting.input_name, "INT", setting.default, tooltip, setting.low, setting.high, setting.step,
                 advanced=setting.advanced, optional=optional)


def _settings_inputs():
    """Every memory setting's widget in New Session's order: the shared ones, each family's after
    the input it names, the rest of the families' at the end (optional)."""
    placed = {}
    for family, setting in family_settings():
        placed.setdefault(setting.widget_after, []).append((family, setting))
    required, optional = [], []
    for setting in SHARED:
        required.append(_setting_input(setting))
        required += [_setting_input(own, family) for family, own in placed.get(setting.input_name, ())]
    optional += [_setting_input(own, family, optional=True) for family, own in placed.get(None, ())]
    return required, optional


def _new_session_inputs():
    settings, family_only = _settings_inputs()
    return (
        Input("model", MODEL, tooltip="The model from MemVOS Load Model."),
        settings[0],  # the memory mode, then the size the network works at
        Input("internal_size", "INT", 480, "Shorter side (pixels) the network works at; masks come back at the "
              "source size. 480 is what the released models use; lower is faster, -1 = the source size.",
              -1, 4096, 1),
        *settings[1:],
        Input("antialias", "BOOLEAN", False, "Antialias when shrinking frames to the internal size (the "
              "reference models do not; it can help very large sources).", advanced=True),
        Input("tta_flip", "BOOLEAN", False, "Test-time augmentation: also segment the mirrored shot and average "
              "(about twice the time; steadier edges).", advanced=True),
        Input("tta_scales", "STRING", "", "Test-time augmentation: internal scales to average, e.g. "
              "'1.0, 0.75, 1.25' (each one costs a full pass); empty = off.", advanced=True),
        *family_only,
    )


class MemVOSNewSession:
    DESCRIPTION = ("Starts an empty rotoscoping session: the model plus its memory settings (defaults are the "
                   "families' own). Settings marked '<family> only' apply to that family and are ignored by the "
                   "others. Add annotation frames to it, then propagate. The keyframes memory mode keeps every "
                   "annotation in permanent memory, so several keyframes anywhere in the shot all help every "
                   "frame.")
    CATEGORY = "MemVOS/session"
    FUNCTION = "create"
    RETURN_TYPES = (SESSION,)
    RETURN_NAMES = ("session",)
    OUTPUT_TOOLTIPS = ("An empty session: connect it to Add Annotation Frame.",)

    @classmethod
    def INPUT_TYPES(cls):
        return input_types(_new_session_inputs())

    def create(self, model, **given):
        v = input_values(_new_session_inputs(), {**given, "model": model}, "New Session")
        model = check_model(v.pop("model"))
        internal_size = int(v.pop("internal_size"))
        if internal_size != -1 and internal_size < 32:
            raise ValueError(f"internal_size {internal_size} is too small: use -1 (the source size) or at "
                             "least 32 pixels (480 is what the released models use)")
        antialias, tta_flip, tta_scales = bool(v.pop("antialias")), bool(v.pop("tta_flip")), v.pop("tta_scales")
        by_input = {s.input_name: s for s in all_settings()}
        config = MemoryConfig(**{by_input[k].name: by_input[k].kind(value) for k, value in v.items()})
        check_config(model.family, config)
        _report_ignored(model.family, config)
        return (Session(model, config, internal_size, antialias, parse_scales(tta_scales), tta_flip),)


def _report_ignored(family, config):
    """Say in the log which changed settings the chosen family does not read."""
    defaults = MemoryConfig()
    changed = [f"{s.name}={getattr(config, s.name)}" for owner, s in family_settings()
               if family not in [f.name for f in readers(owner)]
               and getattr(config, s.name) != getattr(defaults, s.name)]
    if changed:
        LOG.warning("MemVOS New Session: %s model ignores %s (settings of other model families)",
                    title_of(family), ", ".join(changed))


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

    INPUTS = (
        Input("session", SESSION, tooltip="A session from New Session or from another Add Annotation Frame."),
        Input("frames", FRAMES_INPUT, tooltip="The shot's frames (the annotated frame is taken at frame_index), or "
              "just the annotated frame itself."),
        Input("mask", "MASK", tooltip="The object's mask on that frame (1 = object). A batch with one mask per "
              "frame is accepted: the one at frame_index is used."),
        Input("frame_index", "INT", 0, "Clip frame the mask belongs to (0 = first frame of the shot).",
              0, MAX_FRAME_INDEX, 1),
        Input("object_id", "INT", 1, "Which object this mask is (1, 2, ...): one id per object, kept across "
              "keyframes.", 1, MAX_OBJECT_ID, 1),
    )

    @classmethod
    def INPUT_TYPES(cls):
        return input_types(cls.INPUTS)

    @takes_declared(INPUTS)
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
