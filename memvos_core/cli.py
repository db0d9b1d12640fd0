"""Batch rotoscoping outside ComfyUI: ``python -m memvos_core --frames F --masks M --out O``.

Masks are PNGs named like the frames they annotate (indexed palette PNGs, or 0/255 for one
object); the output is one indexed PNG per frame with the DAVIS palette whose indices are the
annotation's object ids.
"""
import argparse
import os
import sys
from pathlib import Path

from .config import MEMORY_MODES, MemoryConfig, parse_setting
from .session import DIRECTIONS, Session
from .weights import default_models_dir



class CLIError(Exception):
    pass


def build_parser():
    ap = argparse.ArgumentParser(prog="python -m memvos_core", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", required=True, help="folder of frame images, or a video file")
    ap.add_argument("--masks", required=True, help="folder of annotation PNGs named like their frames")
    ap.add_argument("--out", required=True, help="output folder (one indexed PNG per frame)")
    ap.add_argument("--weights", default="XMem.pth",
                    help="checkpoint path, or a known name (XMem.pth, XMem-s012.pth) downloaded into "
                         "--models-dir on first use (default: %(default)s)")
    ap.add_argument("--models-dir", default=default_models_dir(),
                    help="where named weights live (default: $MEMVOS_MODELS_DIR or %(default)s)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"],
                    help="fp16/bf16 use autocast on GPUs (default: fp32)")
    ap.add_argument("--size", type=int, default=480,
                    help="shorter side inside the network; -1 keeps the native resolution (default: 480)")
    ap.add_argument("--direction", default="both", choices=DIRECTIONS, help="(default: both)")
    ap.add_argument("--start", type=int, default=None, help="first frame to propagate over")
    ap.add_argument("--end", type=int, default=None, help="frame after the last one to propagate over")
    ap.add_argument("--memory", default="xmem++", choices=MEMORY_MODES,
                    help="xmem: XMem's schedule (annotations enter working memory); xmem++: every "
                         "annotation in permanent memory (default)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help=f"memory setting under XMem's name, repeatable: {', '.join(MemoryConfig.names()[:-1])}")
    ap.add_argument("--tta-flip", action="store_true",
                    help="test-time augmentation: also segment the mirrored shot and average")
    ap.add_argument("--tta-scales", type=float, nargs="+", default=[], metavar="S",
                    help="test-time augmentation: internal scales to average, e.g. 1.0 0.75 1.25")
    ap.add_argument("--soft", action="store_true",
                    help="also write 16-bit probability PNGs to <out>/soft/<object id>/<frame>.png")
    ap.add_argument("--save-session", metavar="FILE", help="save the session (.safetensors) to continue later")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    long_shots = ap.add_argument_group(
        "long shots", "masks are written as soon as each frame is final; Ctrl-C stops at the next frame and "
                      "keeps every finished one")
    long_shots.add_argument("--resume", action="store_true",
                            help="continue an interrupted run from its last checkpoint (same inputs and options); "
                                 "without one, start from the first frame")
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


def make_config(args, num_frames):
    config = MemoryConfig(memory_mode=args.memory)
    for text in args.set:
        config = parse_setting(config, text)
    explicit_usage = any(t.split("=", 1)[0].strip() == "enable_long_term_count_usage" for t in args.set)
    if args.memory == "xmem" and not explicit_usage:
        config = config.with_usage_rule(num_frames)  # what XMem's eval.py does per video
    return config


def load_weights(args, device):
    from .model import load_model
    from .weights import ensure_weights
    path = Path(args.weights)
    if not path.is_file():
        if os.sep in args.weights or "/" in args.weights:
            raise CLIError(f"--weights {args.weights}: file not found")
        path = ensure_weights(args.weights, args.models_dir, progress=None)
    return load_model(str(path), device=device, precision=args.precision, name=Path(path).name)


def run(args):
    import torch
    from . import media
    frames = media.open_frames(args.frames)
    annotations = media.match_annotations(args.masks, frames.stems)
    config = make_config(args, len(frames))
    device = resolve_device(args.device)
    model = load_weights(args, device)
    session = Session(model, config, internal_size=args.size, tta_scales=tuple(args.tta_scales),
                      tta_flip=args.tta_flip)
    for i, path in sorted(annotations.items()):
        labels = media.read_annotation(path)
        image = frames[i]
        if tuple(labels.shape) != tuple(image.shape[:2]):
            raise CLIError(f"mask {path.name} is {labels.shape[1]}x{labels.shape[0]} but frame "
                           f"{frames.stems[i]} is {image.shape[1]}x{image.shape[0]}: masks must match their frames")
        if not labels.any():
            raise CLIError(f"mask {path.name} is empty: draw the object, or remove the file")
        if (labels == 255).any():
            raise CLIError(f"mask {path.name} uses index 255, DAVIS's 'void' label, not an object: "
                           "paint those pixels with 0 (background) or an object index 1..254")
        session = session.add_label_map(i, image, labels)
    bar = make_progress(args.quiet)
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


def main(argv=None):
    args = build_parser().parse_args(argv)
    from .media import MediaError
    from .network import CheckpointError
    from .session import SessionFileError
    try:
        from .weights import WeightsError
    except ImportError:  # pragma: no cover
        WeightsError = CLIError
    try:
        run(args)
    except (CLIError, MediaError, CheckpointError, WeightsError, SessionFileError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return 130
    return 0
