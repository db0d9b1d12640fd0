"""Masks out of a propagation: Get Masks (a frame range as MASK / IMAGE, at source or a chosen size)
and Save Masks (every frame streamed to disk: 16-bit PNGs named like the frames, and a video)."""
import os

import numpy as np
import torch

from . import comfy_env
from .common import MAX_FRAME_INDEX, check_frames, colour_labels, mask_to_image, parse_object_ids, \
    progress_and_cancel, to_output
from .folders import numbered_output, output_directory
from .frames_nodes import SHORT_SIDE, scaled_size
from .inputs import Input, input_types, takes_declared
from .linked_outputs import HIDDEN, wanted
from .mask_nodes import MASKS_INPUT, OBJECT_IDS, check_masks
from .mask_set import labels_of, union_of
from .propagate_node import frame_range
from .frame_source import FRAMES_INPUT
from ..memvos_core.media_io import media
from ..memvos_core.media_io.compositing import FOREGROUNDS, check_foreground, foreground_colour, rgba16
from ..memvos_core.media_io.exr_writer import COMPRESSIONS, ExrSequence, check_layer_name, openexr
from ..memvos_core.ops.inputs import resize_masks
from ..memvos_core.media_io.video_writer import EXTENSIONS, VideoWriter, colour_tags

CONTENTS = ("matte", "matte per object", "label map")
VIDEOS = ("mp4 (h264)", "mkv (ffv1, lossless)", "mov (prores 4444, alpha)", "none")
VIDEO_CODECS = {"mp4 (h264)": "h264", "mkv (ffv1, lossless)": "ffv1", "mov (prores 4444, alpha)": "prores"}
EXR_CHOICES = ("none",) + tuple(c for c in COMPRESSIONS if c != "none")
SAVE_CHUNK = 4  # frames materialised at source size at a time while saving


def _range(masks, start_frame, end_frame):
    return frame_range(masks.clip_start, masks.num_frames, start_frame, end_frame,
                       what=f"the masks' clip frames {masks.clip_start}..{masks.clip_end}: pick frames inside them")


class MemVOSGetMasks:
    DESCRIPTION = ("A range of frames of the masks as plain MASK and IMAGE batches, at the source size or "
                   "smaller, for any other node. On a long shot take the frames you need: the whole shot at "
                   "source size may not fit in memory (MemVOS Save Masks writes every frame to disk instead).")
    CATEGORY = "MemVOS/masks"
    FUNCTION = "get"
    RETURN_TYPES = ("MASK", "IMAGE", "IMAGE")
    RETURN_NAMES = ("mask", "mask_image", "label_map")
    LAZY_OUTPUTS = ("mask", "mask_image", "label_map")  # built only when connected (nodes/linked_outputs.py)
    OUTPUT_TOOLTIPS = ("Union of the chosen objects (1 = object).", "The same as a grey IMAGE (white = object).",
                       "Label map, each object in its DAVIS palette colour.")

    INPUTS = (
        MASKS_INPUT,
        OBJECT_IDS,
        Input("start_frame", "INT", 0, "First clip frame (earlier than the masks means their first).",
              0, MAX_FRAME_INDEX, 1),
        Input("end_frame", "INT", -1, "Last clip frame, included; -1 = the masks' last.", -1, MAX_FRAME_INDEX, 1),
        SHORT_SIDE,
    )

    @classmethod
    def INPUT_TYPES(cls):
        return input_types(cls.INPUTS, HIDDEN)

    @takes_declared(INPUTS)
    def get(self, masks, object_ids, start_frame, end_frame, short_side, memvos_linked_outputs=None):
        check_masks(masks)
        linked = memvos_linked_outputs
        ids = masks.select(parse_object_ids(object_ids))
        start, end = _range(masks, start_frame, end_frame)
        size = scaled_size(masks.frame_hw, short_side)
        unions, labels = [], []
        first, last = start - masks.clip_start, end - masks.clip_start + 1
        progress, cancel = progress_and_cancel(last - first)
        for t0 in range(first, last, SAVE_CHUNK):
            cancel()
            part = masks.chunk(t0, min(t0 + SAVE_CHUNK, last), ids)
            part = resize_masks(part, size)
            if wanted(linked, "mask") or wanted(linked, "mask_image"):
                unions.append(union_of(part))
            if wanted(linked, "label_map"):
                labels.append(labels_of(part, ids))
            progress(min(t0 + SAVE_CHUNK, last) - first, last - first)
        union = torch.cat(unions) if unions else None
        return (None if union is None or not wanted(linked, "mask") else to_output(union),
                None if union is None or not wanted(linked, "mask_image") else to_output(mask_to_image(union)),
                to_output(colour_labels(torch.cat(labels))) if labels else None)


def _to_u16(plane):
    return (plane.clamp(0, 1) * 65535).round().to(torch.int32).numpy().astype(np.uint16)


def parse_layer_names(text, ids):
    """``"1=hero, 2=car"`` -> {object id: EXR layer name}; objects not named are ``obj<id>``."""
    names = {o: f"obj{o}" for o in ids}
    for item in filter(None, (part.strip() for part in str(text or "").split(","))):
        key, sep, name = item.partition("=")
        try:
            obj = int(key)
        except ValueError:
            obj = None
        if not sep or obj not in names:
            raise ValueError(f"layer_names: {item!r} is not 'id=name' for one of the objects {list(ids)}: "
                             "write e.g. '1=hero, 2=car'")
        names[obj] = check_layer_name(name)
    if len(set(names.values())) != len(names):
        raise ValueError(f"layer_names gives two objects the same name ({names}): give each its own")
    return names


class _Outputs:
    """The files of one Save Masks run: PNG folders, EXR frames and videos, each written
    atomically; on failure the finished PNGs and EXRs stay, every temporary file and unfinished
    video goes."""

    def __init__(self, folder, stem, ids, content, png, video, fps, exr="none", layer_names=None,
                 foreground="none", colour=None, device=None):
        self.folder, self.stem, self.content, self.device = folder, stem, content, device
        self.foreground, self.layer_names = foreground, layer_names or {o: f"obj{o}" for o in ids}
        self.sequences = [None] if content != "matte per object" else list(ids)
        self.png_dirs, self.videos, self.exr = {}, {}, None
        for key in self.sequences:
            suffix = "" if key is None else f"_obj{key}"
            if png:
                self.png_dirs[key] = os.path.join(folder, stem, f"obj{key}") if key is not None \
                    else os.path.join(folder, stem)
            if video != "none":
                codec = VIDEO_CODECS[video]
                path = os.path.join(folder, f"{stem}{suffix}{EXTENSIONS[codec]}")
                self.videos[key] = VideoWriter(path, fps, codec, colour=colour)
        if exr != "none":
            self.exr = ExrSequence(os.path.join(folder, f"{stem}_exr"), stem, exr)
        for path in self.png_dirs.values():
            os.makedirs(path, exist_ok=True)
        self.written = 0

    def frame(self, stem, planes, labels, number=0, part=None, ids=(), rgb=None):
        """One frame: ``planes`` {key: float [H,W]} (mattes) or ``labels`` uint8 [H,W] (label
        map); ``part`` float [N,H,W] the objects' mattes (EXR layers), ``rgb`` the frame (for the
        foreground), ``number`` the clip index (EXR file numbers)."""
        union = union_of(part[None])[0] if part is not None else None
        colour = foreground_colour(rgb, union, self.foreground, self.device) if rgb is not None else None
        if self.exr is not None:
            self.exr.write(number, {self.layer_names[o]: part[j].numpy() for j, o in enumerate(ids)},
                           union.numpy(), None if colour is None else colour.numpy())
        for key in self.sequences:
            if self.content == "label map":
                if key in self.png_dirs:
                    media.save_label_png(labels, os.path.join(self.png_dirs[key], f"{stem}.png"))
                if key in self.videos:
                    rgb_labels = colour_labels(labels)
                    if self.videos[key].codec == "prores":
                        self.videos[key].write(rgba16(rgb_labels, (labels > 0).float()))
                    else:
                        self.videos[key].write((rgb_labels * 255).round().to(torch.uint8).numpy())
                continue
            plane = planes[key]
            if key in self.png_dirs:
                media.save_soft_png(plane, os.path.join(self.png_dirs[key], f"{stem}.png"))
            if key in self.videos:
                writer = self.videos[key]
                if writer.codec == "prores":
                    # per object: the shared foreground colour under that object's own matte
                    own = colour if colour is None or key is None or not self.foreground.endswith("premultiplied") \
                        else colour * (plane / union.clamp_min(1e-6)).clamp(0, 1).unsqueeze(-1)
                    writer.write(rgba16(own, plane))
                    continue
                u16 = _to_u16(plane)
                writer.write(u16 if writer.codec == "ffv1" else (u16 >> 8).astype(np.uint8))
        self.written += 1

    def finish(self):
        return [writer.close() for writer in self.videos.values()]

    def abort(self):
        for writer in self.videos.values():
            writer.abort()
        if self.exr is not None:
            self.exr.abort()
        for path in self.png_dirs.values():
            for name in os.listdir(path):
                if name.endswith(".part"):
                    os.remove(os.path.join(path, name))


def _write_error(exc, prefix, outputs):
    done = outputs.written if outputs is not None else 0
    kept = f"; the {done} frames finished before are saved" if done else ""
    if getattr(exc, "errno", None) == 28:
        fix = "the disk is full: free some space or save elsewhere, and run again"
    else:
        fix = "choose a filename_prefix inside a folder you can write to"
    where = getattr(exc, "filename", None) or (outputs.folder if outputs is not None else output_directory())
    return ValueError(f"filename_prefix {prefix!r}: writing {where} failed ({getattr(exc, 'strerror', None) or exc}): "
                      f"{fix}{kept}")


class MemVOSSaveMasks:
    DESCRIPTION = ("Writes the masks of every frame into ComfyUI's output folder as they are read, in bounded "
                   "memory: a 16-bit PNG sequence named like the frames (matte = union of the chosen objects, one "
                   "sequence per object, or indexed label maps in the DAVIS palette) and a video. For compositing: "
                   "a half-float OpenEXR sequence (one layer per object plus the combined alpha, optionally the "
                   "foreground colour) and ProRes 4444 with alpha, the foreground decontaminated at soft edges on "
                   "request. Each file appears complete or not at all; a cancelled run keeps the frames it "
                   "finished.")
    CATEGORY = "MemVOS/masks"
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("folder",)
    OUTPUT_TOOLTIPS = ("Where the PNG sequence went (or the video, without PNGs), relative to ComfyUI's output "
                       "folder.",)

    INPUTS = (
        MASKS_INPUT,
        Input("filename_prefix", "STRING", "memvos/masks", "Folder and name inside the output folder; a number is "
              "appended (memvos/masks_00001/ and memvos/masks_00001.mp4)."),
        Input("content", list(CONTENTS), "matte", "matte: the chosen objects together, white = object. matte per "
              "object: one sequence (and video) per object. label map: object ids as an indexed PNG (DAVIS "
              "palette)."),
        OBJECT_IDS,
        Input("png_sequence", "BOOLEAN", True, "Write a PNG per frame (16-bit grey for mattes), named like the "
              "source frames."),
        Input("video", list(VIDEOS), "mp4 (h264)", "Also write a video: mp4 (h264, 8-bit, for review and editing "
              "apps), mkv (ffv1, lossless 16-bit mattes) or mov (ProRes 4444: the foreground as RGB, or the matte "
              "as grey, with the matte as alpha, for editing and compositing apps); none = no video."),
        Input("fps", "FLOAT", 0.0, "Video frame rate; 0 = the frames' own (VIDEO or Load Frames), 24 for an IMAGE "
              "batch.", 0.0, 1000.0, 0.01),
        Input("exr", list(EXR_CHOICES), "none", "Also write an OpenEXR sequence (half float, <name>.<frame>.exr, "
              "frame numbers = clip indices): A = the chosen objects together, a layer <name>.A per object, R G B = "
              "the foreground when one is chosen. The value is the compression: piz (lossless, grainy pictures), "
              "zip (lossless, flat mattes), dwaa (lossy, small); none = no EXR. Needs 'pip install OpenEXR'.",
              optional=True),
        Input("foreground", list(FOREGROUNDS), "none", "Colour written with the matte in the EXR and the ProRes "
              "(needs frames): the frame as is (straight) or multiplied by the matte (premultiplied, what EXR "
              "compositing expects); clean = the object's own colour estimated at soft edges, without the old "
              "background's tint.", optional=True),
        Input("layer_names", "STRING", "", "EXR layer names, like '1=hero, 2=car'; objects not named are obj<id>.",
              optional=True),
        Input("frames", FRAMES_INPUT, tooltip="The frames the masks belong to: the foreground colour, and the "
              "colour tags of a video source for ProRes.", optional=True),
    )

    @classmethod
    def INPUT_TYPES(cls):
        return input_types(cls.INPUTS)

    @takes_declared(INPUTS)
    def save(self, masks, filename_prefix, content, object_ids, png_sequence, video, fps, exr, foreground,
             layer_names, frames):
        check_masks(masks)
        if exr not in EXR_CHOICES:
            raise ValueError(f"exr {exr!r} is not one of {', '.join(EXR_CHOICES)}")
        check_foreground(foreground)
        if foreground != "none" and frames is None:
            raise ValueError(f"foreground is {foreground!r} but frames is not connected: connect the frames the "
                             "masks were propagated over, or set foreground to none")
        if content not in CONTENTS:
            raise ValueError(f"content {content!r} is not one of {', '.join(CONTENTS)}")
        if video not in VIDEOS:
            raise ValueError(f"video {video!r} is not one of {', '.join(VIDEOS)}")
        if not png_sequence and video == "none" and exr == "none":
            raise ValueError("png_sequence is off and video and exr are 'none': nothing to save; turn one of them on")
        ids = masks.select(parse_object_ids(object_ids))
        if not ids and content != "label map":
            raise ValueError("object_ids selects no object: these masks hold none to save")
        names = parse_layer_names(layer_names, ids)
        clip = masks.aligned_frames(check_frames(frames)) if frames is not None else None
        if exr != "none":
            openexr()  # a missing package is one line before any file is made
        source = getattr(getattr(clip, "source", None), "path", None) if video.startswith("mov") else None
        colour = colour_tags(source) if source else None
        with_colour = foreground != "none"
        rate = float(fps) if float(fps) > 0 else float(masks.fps or 24.0)
        folder, stem = numbered_output(filename_prefix)
        total = masks.num_frames
        progress, cancel = progress_and_cancel(total)
        outputs = None
        try:
            # the clean foreground is estimated on ComfyUI's compute device
            outputs = _Outputs(folder, stem, ids, content, bool(png_sequence), video, rate, exr, names,
                               foreground, colour, comfy_env.get_torch_device() if with_colour else None)
            for t0, t1 in masks.chunks(SAVE_CHUNK):
                part = masks.chunk(t0, t1, ids)
                rgb = clip[t0:t1] if with_colour else None
                for k in range(t1 - t0):
                    cancel()
                    t = t0 + k
                    labels = labels_of(part[k:k + 1], ids)[0] if content == "label map" else None
                    if content == "matte":
                        planes = {None: union_of(part[k:k + 1])[0]}
                    else:
                        planes = {o: part[k, j] for j, o in enumerate(ids)}
                    outputs.frame(masks.frame_stem(t), planes, labels, masks.clip_start + t, part[k], ids,
                                  None if rgb is None else rgb[k])
                    progress(t + 1, total)
            videos = outputs.finish()
        except OSError as exc:
            if outputs is not None:
                outputs.abort()
            raise _write_error(exc, filename_prefix, outputs) from None
        except BaseException:
            if outputs is not None:
                outputs.abort()
            raise
        return self._report(folder, stem, bool(png_sequence), videos, total,
                            outputs.exr.folder if outputs.exr is not None else None)

    @staticmethod
    def _report(folder, stem, png, videos, total, exr_folder=None):
        root = output_directory()
        subfolder = os.path.relpath(folder, root).replace(os.sep, "/")
        subfolder = "" if subfolder == "." else subfolder
        target = os.path.join(folder, stem) if png else videos[0] if videos else exr_folder
        relative = os.path.relpath(target, root).replace(os.sep, "/")
        ui = {"text": [f"{total} frames -> {relative}"]}
        playable = [v for v in videos if v.endswith(".mp4")]
        if playable:
            ui["images"] = [{"filename": os.path.basename(v), "subfolder": subfolder, "type": "output"}
                            for v in playable]
            ui["animated"] = (True,)
        return {"ui": ui, "result": (relative,)}


NODE_CLASS_MAPPINGS = {"MemVOSGetMasks": MemVOSGetMasks, "MemVOSSaveMasks": MemVOSSaveMasks}
NODE_DISPLAY_NAME_MAPPINGS = {"MemVOSGetMasks": "MemVOS Get Masks", "MemVOSSaveMasks": "MemVOS Save Masks"}
