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
import argparse
import os
import sys
from pathlib import Path

from .config import MEMORY_MODES, MemoryConfig, parse_setting
from .families import check_config, evaluation_config, titles
from .families.registry import FORMER_MEMORY_MODES, known_weights
from .session import DIRECTIONS, Session
from .shot_inputs import check_args
from .weights import default_models_dir



class CLIError(Exception):
    pass


def build_parser():
    ap = argparse.ArgumentParser(prog="python -m memvos_core", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", required=True,
                    help="the shot: a folder of frame images (sorted by name, all of one size) or a video "
                         "file (.mp4, .mov, .mkv, ...; needs PyAV). Required")
    ap.add_argument("--masks", required=True,
                    help="folder of keyframe masks named like the frames they annotate: indexed PNGs (index = "
                         "object id), black-and-white PNGs or JPEGs (one object: pixels >= 128), or flat-colour "
                         "PNGs (one object per colour; see 'Mask files' below). Required")
    ap.add_argument("--out", required=True,
                    help="output folder: one indexed PNG per frame, DAVIS palette, named like the frame. Required")
    known = list(known_weights())
    ap.add_argument("--weights", default=known[0],
                    help=f"checkpoint file, or a known name ({', '.join(known)}) looked up in --models-dir and "
                         f"downloaded there on first use; the model family ({titles()}) is read from the file "
                         "(default: %(default)s)")
    ap.add_argument("--models-dir", default=default_models_dir(),
                    help="where named weights are kept and downloaded to (default: $MEMVOS_MODELS_DIR, "
                         "else ~/.cache/memvos/models; here %(default)s)")
    ap.add_argument("--device", default="auto",
                    help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps (default: auto)")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"],
                    help="fp16/bf16 run under autocast on GPUs, faster with a small loss (default: fp32)")
    ap.add_argument("--size", type=int, default=480,
                    help="shorter side of the frames inside the network, in pixels (16 or more); -1 keeps the "
                         "native resolution (default: 480, as the released models)")
    ap.add_argument("--direction", default="both", choices=DIRECTIONS,
                    help="forward, backward, or both blended by the distance to the keyframes (default: both)")
    ap.add_argument("--start", type=int, default=None,
                    help="first frame (0-based) to propagate over (default: 0, the first frame)")
    ap.add_argument("--end", type=int, default=None,
                    help="frame after the last one to propagate over (default: the number of frames)")
    ap.add_argument("--memory", default="keyframes", choices=(*MEMORY_MODES, *FORMER_MEMORY_MODES),
                    help="keyframes: every keyframe in permanent memory first; evaluation: the model family's "
                         "evaluation schedule, annotations enter working memory; xmem++ and xmem are their former "
                         "names (default: keyframes)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a memory setting, repeatable (the README's settings table says which family reads which): "
                         f"{', '.join(n for n in MemoryConfig.names() if n != 'memory_mode')} (default: the "
                         "model's own values)")
    ap.add_argument("--tta-flip", action="store_true",
                    help="test-time augmentation: also segment the mirrored shot and average (default: off)")
    ap.add_argument("--tta-scales", type=float, nargs="+", default=[], metavar="S",
                    help="test-time augmentation: internal scales to average, e.g. 1.0 0.75 1.25, each "
                         "0.25..4 (default: none)")
    ap.add_argument("--soft", action="store_true",
                    help="also write 16-bit probability PNGs to <out>/soft/<object id>/<frame>.png (default: off)")
    ap.add_argument("--save-session", metavar="FILE",
                    help="also save the session (.safetensors) to continue later (default: not saved)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars or shot summary (default: off)")
    long_shots = ap.add_argument_group(
        "long shots", "masks are written as soon as each frame is final; Ctrl-C stops at the next frame and "
                      "keeps every finished one")
    long_shots.add_argument("--resume", action="store_true",
                            help="continue an interrupted run from its last checkpoint (same inputs and options); "
                                 "without one, start from the first frame (default: off)")
    long_shots.add_argument("--cache-dir", metavar="DIR",
                            help="the run's working files: checkpoints of the memory state and backward results "
                                 "waiting for the forward pass (default: <out>/.memvos-cache; removed at the end)")
    long_shots.add_argument("--checkpoint-every", type=int, default=250, metavar="N",
                            help="save a checkpoint every N frames, and at least every minute (default: 250; "
                                 "0: only when interrupted)")
    return ap


def resolve_device(choice):
    import torch
    if choice == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise CLIError(f"--device {choice}: CUDA is not available on this machine; use --device cpu")
    if choice == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise CLIError("--device mps: MPS is not available on this machine; use --device cpu")
    return choice


def parse_config(args):
    """The memory settings the command line gives (errors before any weights are loaded)."""
    config = MemoryConfig(memory_mode=args.memory)
    for text in args.set:
        config = parse_setting(config, text)
    return config


def make_config(args, num_frames, family):
    config = parse_config(args)
    explicit_usage = any(t.split("=", 1)[0].strip() == "enable_long_term_count_usage" for t in args.set)
    if not explicit_usage:
        config = evaluation_config(family, config, num_frames)  # what the family's eval script does per video
    check_config(family, config)
    return config


def weights_path(args, download=True):
    """The weights file ``--weights`` names: a path, or a known name in ``--models-dir``
    (downloaded there when ``download``; without it None while the file is absent)."""
    from .weights import WeightsError, ensure_weights, find_weights
    path = Path(args.weights)
    if path.is_file():
        return path
    if os.sep in args.weights or "/" in args.weights:
        raise CLIError(f"--weights {args.weights}: file not found")
    if not download:
        found = find_weights(args.weights, [args.models_dir])
        return None if found is None else Path(found)
    try:
        return Path(ensure_weights(args.weights, args.models_dir, progress=download_progress(args.quiet)))
    except WeightsError as exc:
        raise CLIError(f"{str(exc).rstrip('.')}. Offline? Pass --weights FILE with a checkpoint you have, or put "
                       f"{args.weights} into the models folder ($MEMVOS_MODELS_DIR or --models-dir; now "
                       f"{args.models_dir})") from None


def load_weights(args, device):
    from .model import load_model
    path = weights_path(args)
    return load_model(str(path), device=device, precision=args.precision, name=path.name)


def download_progress(quiet):
    """A byte progress bar for a weights download (None when quiet or without tqdm)."""
    if quiet:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    bar = {}

    def progress(done, total):
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, unit="B", unit_scale=True, desc="downloading weights")
        bar["bar"].update(done - bar["bar"].n)
        if total is not None and done >= total:
            bar["bar"].close()
    return progress


def run(args):
    import torch
    shot = check_args(args)  # every input, before any weights are loaded or downloaded
    if not args.quiet:
        print(f"shot: {shot.describe()}", file=sys.stderr)
    frames = shot.frames
    parse_config(args)
    device = resolve_device(args.device)
    model = load_weights(args, device)
    config = make_config(args, len(frames), model.family)  # the family's own per-clip rules
    session = Session(model, config, internal_size=args.size, tta_scales=tuple(args.tta_scales),
                      tta_flip=args.tta_flip)
    for i, labels in sorted(shot.keyframes.items()):
        session = session.add_label_map(i, frames[i], labels)
    # the batch command passes its own reporter (a callable with close()) instead of the bar
    bar = getattr(args, "progress", None) or make_progress(args.quiet)
    from .session import PropagationCancelled
    from .streaming import propagate_to_folder
    try:
        with torch.inference_mode():
            session, result = propagate_to_folder(
                session, frames, args.out, direction=args.direction, start=args.start, end=args.end,
                soft=args.soft, cache_dir=args.cache_dir, resume=args.resume,
                checkpoint_every=args.checkpoint_every, progress=bar,
                log=None if args.quiet else (lambda text: print(text, file=sys.stderr)))
    except PropagationCancelled:
        raise KeyboardInterrupt from None  # reported by main(): exit 130
    finally:
        bar.close()
    if args.save_session:
        session.save(args.save_session)
    return result


class make_progress:
    """A tqdm bar when available and wanted; a callable ``(done, total)``."""

    def __init__(self, quiet):
        self.bar = None
        self.quiet = quiet

    def __call__(self, done, total):
        if self.quiet:
            return
        if self.bar is None:
            try:
                from tqdm import tqdm
            except ImportError:
                self.quiet = True
                return
            self.bar = tqdm(total=total, unit="frame", desc="propagating")
        self.bar.update(done - self.bar.n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def user_errors():
    """The exceptions whose message is the whole story (bad input, missing weights): one line, no traceback."""
    from .media import MediaError
    from .network import CheckpointError
    from .session import SessionFileError
    from .weights import WeightsError
    return CLIError, MediaError, CheckpointError, WeightsError, SessionFileError, ValueError


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["batch"]:  # many shots; the flag-only form below stays the single-shot CLI
        from .batch.command import main as batch_main
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
    if args.save_session:
        text += f"; session saved to {Path(args.save_session).resolve()}"
    return text
