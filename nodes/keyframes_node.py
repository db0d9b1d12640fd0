"""Keyframes: every keyframe of a shot in one node, painted in its editor (web/) or fed from inputs."""
from . import folders, routes
from .click_masks import PromptError, parse_prompt_list, prompt_layer
from .common import LOG, SESSION, check_frames
from .frame_source import FRAMES_INPUT
from .inputs import Input, input_types, takes_declared
from .keyframe_files import WIDGET, KeyframeError, check_files, fingerprint, parse_spec
from .keyframe_sources import (check_every_object_is_somewhere, label_map_layer, mask_layer, merge_layers,
                               misfit_message, misfits, painted_layer, session_layer)
from .messages import send_event, size_text
from .session_nodes import check_session

UI_KEY = "memvos_keyframes"
MISFIT_EVENT = "memvos.keyframes_misfit"


class MemVOSKeyframes:
    DESCRIPTION = (
        "Every keyframe of the shot in one node: open its editor to paint any number of objects on any frames "
        "(brush, eraser, fill, undo, zoom), or connect masks made by other nodes. Outputs the session to "
        "propagate. Each keyframe is an indexed PNG in input/memvos (pixel value = object id); the workflow "
        "keeps only their names. Run the node once (or the workflow) to show the shot in the editor. "
        "Clicks and boxes as JSON (prompts, or prompts_input from another node) become masks through SAM 2.1's "
        "image path, as the editor's click tool makes them. "
        "Precedence per frame and object: painted > prompts > mask input > label_map input > the incoming session.")
    CATEGORY = "MemVOS/session"
    FUNCTION = "build"
    OUTPUT_NODE = True  # it can run on its own: that loads the shot into the editor
    RETURN_TYPES = (SESSION,)
    RETURN_NAMES = ("session",)
    OUTPUT_TOOLTIPS = ("The session with every keyframe: connect it to Propagate.",)

    INPUTS = (
        Input("session", SESSION, tooltip="A session from New Session (model and memory settings), or one that "
              "already holds keyframes."),
        Input("frames", FRAMES_INPUT, tooltip="The whole shot (an IMAGE batch, a VIDEO or MemVOS Load Frames): "
              "keyframe numbers are positions in it (0 = first frame); only the keyframes' frames are read."),
        Input("keyframes", "STRING", "", "Written by the editor: the keyframe files (input/memvos/*.png) with their "
              "frame numbers and objects, and each object's name and colour. No pixels.",
              options={"multiline": True, "socketless": True}),
        Input("mask", "MASK", tooltip="Masks made elsewhere (e.g. a SAM-style segmenter): one object per mask, at "
              "mask_frames, as mask_object_ids.", optional=True),
        Input("mask_frames", "STRING", "0", "Frame of each mask of the mask batch, e.g. '0, 24' (one value = every "
              "mask).", optional=True),
        Input("mask_object_ids", "STRING", "1", "Object id (1..255) of each mask, e.g. '1, 2' (one value = every "
              "mask).", optional=True),
        Input("label_map", "IMAGE", tooltip="Label maps in DAVIS colours (several objects each), e.g. another "
              "Propagate's label_map.", optional=True),
        Input("label_map_frames", "STRING", "0", "Frame of each label map of the batch, e.g. '0, 24'.", optional=True),
        Input("prompts", "STRING", "", "Clicks and boxes per frame and object, made into masks by SAM 2.1 (any SAM "
              "2.1 file in models/memvos, whichever model propagates): a JSON list like "
              '[{"frame": 0, "object": 1, "points": [[120, 80, 1], [60, 40, 0]], "box": [10, 10, 200, 150]}] in '
              "frame pixels; label 1 adds, 0 subtracts.", optional=True, options={"multiline": True}),
        Input("prompts_input", "STRING", "", "The same JSON from another node (e.g. a points editor or a script); a "
              "(frame, object) must not be in both.", optional=True, options={"forceInput": True}),
    )

    @classmethod
    def INPUT_TYPES(cls):
        return input_types(cls.INPUTS, {"unique_id": "UNIQUE_ID"})

    @classmethod
    def VALIDATE_INPUTS(cls, keyframes=None, prompts=None):
        # Before anything runs: a broken list or a missing file is reported on the node at once.
        try:
            if keyframes is not None:
                check_files(parse_spec(keyframes), folders.input_directory())
            if prompts is not None:
                parse_prompt_list(prompts, "prompts")
        except (KeyframeError, PromptError) as exc:
            return str(exc)
        return True

    @classmethod
    def IS_CHANGED(cls, keyframes="", **_):
        # The workflow names the files; their contents are what counts (a file replaced in place too).
        return fingerprint(keyframes, folders.input_directory())

    @takes_declared(INPUTS)
    def build(self, session, frames, keyframes, mask, mask_frames, mask_object_ids, label_map, label_map_frames,
              prompts, prompts_input, unique_id=None):
        check_session(session)
        frames = check_frames(frames)
        spec = parse_spec(keyframes)
        num_frames, frame_hw = frames.shape[0], tuple(frames.shape[1:3])
        if session.frame_size is not None and tuple(session.frame_size) != frame_hw:
            h, w = session.frame_size
            raise ValueError(f"frames are {size_text(frame_hw)} but the session's keyframes are {size_text((h, w))}: "
                             "connect the same shot at the same size")
        found = misfits(spec, folders.input_directory(), frame_hw, num_frames)
        if found:  # the node's panel and editor offer to drop them (web/memvos_keyframes.js)
            message = misfit_message(found)
            send_event(MISFIT_EVENT, {"node": unique_id, "frames": [f for f, _, _ in found], "message": message})
            raise KeyframeError(f"{WIDGET}: {message}")
        layers = [("session", session_layer(session))]
        if label_map is not None:
            layers.append(("label_map", label_map_layer(label_map, label_map_frames, frame_hw, num_frames)))
        if mask is not None:
            layers.append(("mask", mask_layer(mask, mask_frames, mask_object_ids, frame_hw, num_frames)))
        clicked = prompt_layer(prompts, prompts_input, frames, session, frame_hw)
        if clicked:
            layers.append(("prompts", clicked))
        layers.append(("painted", painted_layer(spec, folders.input_directory(), frame_hw, num_frames)))
        merged = merge_layers(layers, frame_hw)
        check_every_object_is_somewhere(merged)

        result = session
        for frame, (labels, ids, sources) in sorted(merged.items()):
            if set(sources.values()) == {"session"}:
                continue  # already in the session as it came
            result = result.add_label_map(frame, frames[frame], labels, sorted(ids))
        if not result.keyframes:
            LOG.warning("MemVOS Keyframes: no keyframe yet: open the node's editor and paint the objects "
                        "on a frame, or connect a mask")
        summary = [{"frame": frame, "objects": sorted(ids), "sources": {str(o): s for o, s in sorted(src.items())}}
                   for frame, (_, ids, src) in sorted(merged.items())]
        entry = {"token": routes.publish_shot(frames, result), "num_frames": num_frames,
                 "width": frame_hw[1], "height": frame_hw[0], "keyframes": summary}
        return {"ui": {UI_KEY: [entry]}, "result": (result,)}


NODE_CLASS_MAPPINGS = {"MemVOSKeyframes": MemVOSKeyframes}
NODE_DISPLAY_NAME_MAPPINGS = {"MemVOSKeyframes": "MemVOS Keyframes"}
