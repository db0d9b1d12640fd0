"""Masks To Keyframes: another run's masks become a session's keyframes, so a shot tracked with
one model (XMem, Cutie, painted keyframes) is matted with another (MatAnyone) in one graph."""
from .common import LOG, MASKS, SESSION, check_frames, progress_and_cancel
from .frame_source import FRAMES_INPUT
from .inputs import Input, input_types, takes_declared
from .mask_nodes import check_masks
from .session_nodes import check_session
from ..memvos_core.session.from_masks import keyframes_from_masks, parse_frame_list


class MemVOSMasksToKeyframes:
    DESCRIPTION = ("Turns masks from another run (Propagate, Select Objects, Refine Masks) into keyframes of a "
                   "session, typically a MatAnyone session (New Session on matanyone.pth): track with the model "
                   "best at tracking, then Propagate this session for learned soft alpha mattes. Object ids are "
                   "kept. Leave keyframes empty to use the frames the masks' own run was annotated on.")
    CATEGORY = "MemVOS/session"
    FUNCTION = "convert"
    RETURN_TYPES = (SESSION,)
    RETURN_NAMES = ("session",)
    OUTPUT_TOOLTIPS = ("The session with one keyframe per chosen frame, from the masks: connect it to Propagate.",)

    INPUTS = (
        Input("session", SESSION, tooltip="The session to add the keyframes to, e.g. New Session with a MatAnyone "
              "model (any family works)."),
        Input("masks", MASKS, tooltip="Masks of the shot from another run (Propagate, Select Objects, Refine "
              "Masks)."),
        Input("frames", FRAMES_INPUT, tooltip="The frames the masks were made from (the same shot)."),
        Input("keyframes", "STRING", "", "Clip frames to use as keyframes, e.g. '0, 40, 80'. Empty: the frames the "
              "masks' run was annotated on.", optional=True),
    )

    @classmethod
    def INPUT_TYPES(cls):
        return input_types(cls.INPUTS)

    @takes_declared(INPUTS)
    def convert(self, session, masks, frames, keyframes):
        check_session(session)
        masks = check_masks(masks)
        frames = masks.aligned_frames(check_frames(frames))
        chosen = parse_frame_list(keyframes, masks.clip_start, masks.clip_end)
        if chosen is None:
            chosen = sorted({k["frame"] for k in masks.keyframes if masks.clip_start <= k["frame"] <= masks.clip_end})
            if not chosen:
                raise ValueError("keyframes: the masks carry no keyframe inside their frames (they come from a "
                                 f"run over clip frames {masks.clip_start}..{masks.clip_end}); list the frames to use")

        def labels_at(i):
            t = i - masks.clip_start
            return masks.labels(t, t + 1)[0]

        out = keyframes_from_masks(session, lambda i: frames[i - masks.clip_start], labels_at, chosen,
                                   list(masks.object_ids), *progress_and_cancel(len(set(chosen))))
        LOG.info("MemVOS: masks of objects %s on frames %s became keyframes", list(masks.object_ids), chosen)
        return (out,)


NODE_CLASS_MAPPINGS = {"MemVOSMasksToKeyframes": MemVOSMasksToKeyframes}
NODE_DISPLAY_NAME_MAPPINGS = {"MemVOSMasksToKeyframes": "MemVOS Masks To Keyframes"}
