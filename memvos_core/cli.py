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
from .families import check_config, evaluation_config
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
                    help="checkpoint path, or a known name (XMem.pth, XMem-s012.pth, cutie-base-mega.pth, "
                         "cutie-small-mega.pth) downloaded into --models-dir on first use; the model family "
                         "(XMem or Cutie) is read from the file (default: %(default)s)")
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
                    help="xmem: XMem's schedule (annotations enter working memory; with Cutie: its evaluation "
                         "schedule); xmem++: every annotation in permanent memory first (default)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="memory setting under XMem's name (Cutie-only ones under Cutie's), repeatable: "
                         f"{', '.join(n for n in MemoryConfig.names() if n != 'memory_mode')}")
    ap.add_argument("--tta-flip", action="store_true",
                    help="test-time augmentation: also segment the mirrored shot and average")
    ap.add_argument("--tta-scales", type=float, nargs="+", default=[], metavar="S",
                    help="test-time augmentation: internal scales to average, e.g. 1.0 0.75 1.25")
    ap.add_argument("--soft", action="store_true",
                    help="also write 16-bit probability PNGs to <out>/soft/<object id>/<frame>.png")
    ap.add_argument("--save-session", metavar="FILE", help="save the session (.safetensors) to continue later")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
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


def make_config(args, num_frames, family="xmem"):
    config = parse_config(args)
    explicit_usage = any(t.split("=", 1)[0].strip() == "enable_long_term_count_usage" for t in args.set)
    if not explicit_usage:
        config = evaluation_config(family, config, num_frames)  # what the family's eval script does per video
    check_config(family, config)
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
    parse_config(args)
    device = resolve_device(args.device)
    model = load_weights(args, device)
    config = make_config(args, len(frames), model.family)  # the family's own per-clip rules
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
    with torch.inference_mode():
        session, result = session.propagate(frames, direction=args.direction, start=args.start,
                                            end=args.end, progress=bar)
    bar.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for i in result.frame_indices:
        prob = result.probabilities(i)
        stem = frames.stems[i]
        media.save_label_png(media_labels(prob, result.object_ids), out / f"{stem}.png")
        if args.soft:
            for j, o in enumerate(result.object_ids):
                folder = out / "soft" / str(o)
                folder.mkdir(parents=True, exist_ok=True)
                media.save_soft_png(prob[j + 1], folder / f"{stem}.png")
    if args.save_session:
        session.save(args.save_session)
    return result


def media_labels(prob, object_ids):
    from .session.result import probabilities_to_labels
    return probabilities_to_labels(prob, object_ids)


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
