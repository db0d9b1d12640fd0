"""Rotoscoping outside ComfyUI: python -m memvos_core --frames F --masks M --out O

Carries the objects of the keyframe masks through the shot and writes one indexed PNG per
frame (DAVIS palette) whose indices are the object ids. Every input is checked before the
weights are loaded or downloaded; a problem is one line naming the file and the fix (exit 2).

Mask files (named like the frame they annotate: 00042.png for 00042.jpg, or the same number):
  indexed PNG        the index is the object id (0 background; 255, DAVIS's void, is refused)
  black-and-white    one object, id 1: pixels >= 128 (a file of only 0 and 1: the 1s);
                     PNG, or JPEG (JPEG only black-and-white: a colour JPEG is refused)
  flat colours (PNG) black (or alpha < 128) is background, each other colour one object:
                     DAVIS palette colours keep their index; other colours get the smallest
                     free ids in order of first appearance (masks in frame order, pixels top
                     to bottom, left to right); anti-aliased edges are refused

Many shots at once, on this machine or a Ray cluster: python -m memvos_core batch SHOTS.json
(batch --help).
"""
import sys
from pathlib import Path

from .. import shot
from ..shot import ShotError, parse_config, run, user_errors  # noqa: F401 (the command line's API)


def build_parser():
    """The shot's options (:func:`memvos_core.shot.build_parser`) with this command's help."""
    return shot.build_parser(__doc__)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["batch"]:  # many shots; the flag-only form below stays the single-shot CLI
        from ..batch.command import main as batch_main
        return batch_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        result = run(args)
    except user_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return 130
    print(describe_outputs(args, result))
    return 0


def describe_outputs(args, result):
    """Where the run wrote what, in one line."""
    out = Path(args.out).resolve()
    count = len(result.frame_indices)
    text = f"wrote {count} mask{'s' if count != 1 else ''} to {out} (indexed PNGs, DAVIS palette)"
    if args.soft:
        text += f"; soft masks in {out / 'soft'}"
    if "exr" in args.format:
        text += f"; EXR frames in {out / 'exr'}"
    if "prores" in args.format:
        from .streaming import prores_path
        text += f"; ProRes 4444 video {prores_path(out)}"
    if args.save_session:
        text += f"; session saved to {Path(args.save_session).resolve()}"
    return text
