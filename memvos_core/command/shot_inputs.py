"""Every input of one shot checked before any weights are loaded or downloaded.

``check_shot_inputs(frames, masks, size, start, end)`` is the check for one shot (the command
line calls it through :func:`check_args`; a batch calls it per shot). A problem is a
:class:`ShotInputError` whose message is one line naming the input and the fix; nothing is
loaded, downloaded or written before all inputs passed.
"""
import os
from dataclasses import dataclass, field
from pathlib import Path


from ..media_io import media
from .output_paths import clash, describe_clash
from ..media_io.annotations import AnnotationError, hex_colour, match_annotations, read_shot_masks

TTA_SCALE_RANGE = (0.25, 4.0)


class ShotInputError(AnnotationError):
    """A bad input of a shot (frames, masks, settings); the message says which and what to do."""


@dataclass(frozen=True, eq=False)
class ShotInputs:
    """A checked shot: ``frames`` (read lazily), their size, and the keyframes' label maps."""

    frames: object
    frame_size: tuple                                # (height, width)
    keyframes: dict                                  # {frame position: uint8 [H,W] object ids}
    mask_files: dict                                 # {frame position: Path}
    colours: dict = field(default_factory=dict)      # {object id: 0xRRGGBB} of colour masks

    @property
    def object_ids(self):
        ids = set()
        for labels in self.keyframes.values():
            ids.update(int(v) for v in labels.unique().tolist() if v)
        return sorted(ids)

    def describe(self):
        h, w = self.frame_size
        frames = ", ".join(self.frames.stems[i] for i in sorted(self.keyframes))
        text = (f"{len(self.frames)} frames of {w}x{h}; keyframes {frames}; "
                f"objects {', '.join(map(str, self.object_ids))}")
        if self.colours:
            text += " (colours: " + ", ".join(f"{i} = {hex_colour(c)}" for i, c in sorted(self.colours.items())) + ")"
        return text


def check_internal_size(size, name="--size"):
    """The network's input size: a shorter side in pixels, or -1 for the native size."""
    try:
        size = int(size)
    except (TypeError, ValueError):
        raise ShotInputError(f"{name} {size!r} is not a whole number: give the shorter side in pixels "
                             "(e.g. 480), or -1 for the native resolution") from None
    if size == -1 or size >= 16:
        return size
    raise ShotInputError(f"{name} {size}: give the shorter side inside the network in pixels (16 or more, "
                         "480 by default), or -1 for the native resolution")


def check_frame_sizes(frames):
    """All frames of the shot have one size: ``(height, width)``, or a ShotInputError naming an
    odd frame. A folder's images are measured from their headers (no decoding); a video has one
    size for the whole stream."""
    paths = getattr(frames, "paths", None)
    if not paths:
        first = frames[0]
        return tuple(first.shape[:2])
    sizes = {}
    for path in paths:
        try:
            with media.open_image(path, "frame") as img:
                sizes[path] = (img.height, img.width)
        except media.MediaError as exc:
            raise ShotInputError(f"{exc}; or remove it from the shot") from None
        except OSError as exc:
            raise ShotInputError(f"frame {path} could not be read ({exc}): replace or remove it") from None
    first = paths[0]
    odd = [p for p in paths if sizes[p] != sizes[first]]
    if odd:
        (h, w), (oh, ow) = sizes[first], sizes[odd[0]]
        more = f" (and {len(odd) - 1} more)" if len(odd) > 1 else ""
        raise ShotInputError(
            f"frame {odd[0].name} is {ow}x{oh} but {first.name} is {w}x{h}{more}: all frames of a shot must have "
            f"one size; resize the odd frames to {w}x{h} or split the shot")
    return sizes[first]


def check_frame_range(start, end, num_frames):
    """``--start``/``--end`` inside the shot, start before end."""
    lo = 0 if start is None else int(start)
    hi = num_frames if end is None else int(end)
    if not 0 <= lo < num_frames:
        raise ShotInputError(f"--start {start}: the shot has frames 0..{num_frames - 1}; give a start in that range")
    if not lo < hi <= num_frames:
        raise ShotInputError(f"--end {end}: give a frame after --start ({lo}) and at most {num_frames} "
                             "(the frame after the last one propagated)")
    return lo, hi


def check_shot_inputs(frames, masks, size=480, start=None, end=None):
    """Check one shot: ``frames`` (a folder of images, a video file, or an opened frames object),
    ``masks`` (the folder of keyframe masks), ``size`` (internal size), ``start``/``end``
    (the range to propagate over). Returns :class:`ShotInputs` or raises :class:`ShotInputError`."""
    check_internal_size(size)
    if isinstance(frames, (str, os.PathLike)):
        try:
            frames = media.open_frames(frames)
        except media.MediaError as exc:
            raise ShotInputError(str(exc)) from None
    frame_size = check_frame_sizes(frames)
    check_frame_range(start, end, len(frames))
    try:
        files = match_annotations(masks, frames.stems)
        keyframes, colours = read_shot_masks(dict(sorted(files.items())))
    except ShotInputError:
        raise
    except AnnotationError as exc:
        raise ShotInputError(str(exc)) from None
    h, w = frame_size
    for i, labels in keyframes.items():
        if tuple(labels.shape) != (h, w):
            raise ShotInputError(
                f"mask {files[i].name} is {labels.shape[1]}x{labels.shape[0]} but frame {frames.stems[i]} is {w}x{h}: "
                f"masks must match their frames; resize the mask to {w}x{h} (nearest neighbour keeps the ids exact)")
    return ShotInputs(frames, frame_size, keyframes, files, colours)


def check_run_settings(out=None, weights=None, models_dir=None, save_session=None, tta_scales=()):
    """The command line's other inputs: output folder, weights name or file, session file, TTA scales."""
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise ShotInputError(f"--out {out}: this is a file; give a folder for the masks")
    if save_session is not None and Path(save_session).is_dir():
        raise ShotInputError(f"--save-session {save_session}: this is a folder; give a file name such as shot.safetensors")
    for scale in tta_scales or ():
        if not TTA_SCALE_RANGE[0] <= float(scale) <= TTA_SCALE_RANGE[1]:
            raise ShotInputError(f"--tta-scales {scale}: each scale must be between {TTA_SCALE_RANGE[0]} and "
                                 f"{TTA_SCALE_RANGE[1]} (1.0 is the internal size itself)")
    if weights is not None:
        check_weights_choice(weights, models_dir)


def check_weights_choice(weights, models_dir):
    """A weights file that exists, a file already in ``models_dir``, or a known name to download."""
    from ..weights import KNOWN_CHECKPOINTS
    text = os.fspath(weights)
    if Path(text).is_file():
        return
    if os.sep in text or "/" in text:
        raise ShotInputError(f"--weights {text}: file not found; give the path of an XMem checkpoint "
                             "(.pth or .safetensors)")
    if text in KNOWN_CHECKPOINTS or (models_dir is not None and (Path(models_dir) / text).is_file()):
        return
    raise ShotInputError(
        f"--weights {text}: no such file here or in {models_dir}, and not a known checkpoint "
        f"({', '.join(KNOWN_CHECKPOINTS)}); give the path of a checkpoint file, or one of those names")


def shot_outputs(args):
    """``{option: path}`` of what a run writes (None: not given)."""
    return {"--out": args.out, "--save-session": getattr(args, "save_session", None),
            "--cache-dir": getattr(args, "cache_dir", None)}


def shot_input_paths(args):
    """``{option: path}`` of what a run reads and must never write over."""
    weights = getattr(args, "weights", None)
    local = weights is not None and Path(weights).is_file()  # else a name looked up in --models-dir
    return {"--frames": args.frames, "--masks": args.masks, "--weights": weights if local else None}


def check_outputs_apart(args):
    """No output of the run lands in or over one of its inputs (see :mod:`.output_paths`)."""
    found = clash(shot_outputs(args), shot_input_paths(args))
    if found is not None:
        raise ShotInputError(describe_clash(found))


def check_args(args):
    """Everything the command line's ``args`` (an argparse Namespace) ask for, checked before
    any weights are touched: returns the checked shot."""
    check_outputs_apart(args)
    check_run_settings(out=args.out, weights=args.weights, models_dir=getattr(args, "models_dir", None),
                       save_session=getattr(args, "save_session", None), tta_scales=getattr(args, "tta_scales", ()))
    return check_shot_inputs(args.frames, args.masks, size=args.size, start=getattr(args, "start", None),
                             end=getattr(args, "end", None))
