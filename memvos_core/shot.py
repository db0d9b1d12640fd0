"""One shot through a model: the library API every front end calls (the command line, the batch,
the nodes' propagation, benchmarks).

:class:`Shot` holds a session over a shot's frames: open it, add or replace keyframes, then
:meth:`Shot.propagate` yields each frame as soon as it is final (both directions blended where
asked; memory stays flat with shot length), or :meth:`Shot.propagate_to_folder` writes them with
checkpoints to resume after a crash or Ctrl-C; :meth:`Shot.propagate_again` is the correction
loop the Propagate node runs (after a keyframe fix only the affected span, each run resumable in
its own folder, :mod:`memvos_core.session.run_folder`); :meth:`Shot.save` / :meth:`Shot.resume`
keep the session. :func:`build_parser` declares a shot's options once (the command line's flags, the keys
of a batch's SHOTS.json); :func:`run` is what one such shot does, from options to masks on disk.
"""
import argparse
import os
import queue
import sys
import threading
from pathlib import Path

from .media_io.compositing import FOREGROUNDS
from .config import MEMORY_MODES, MemoryConfig, parse_setting
from .media_io.exr_writer import COMPRESSIONS as EXR_COMPRESSIONS
from .families import check_config, evaluation_config, titles
from .families.registry import FORMER_MEMORY_MODES, known_weights
from .session import DIRECTIONS, PropagationCancelled, Session
from .command.shot_inputs import check_args
from .weights import default_models_dir

USAGE = "python -m memvos_core"
FORMATS = ("png", "exr", "prores")


class Shot:
    """A session over one shot's frames (``frames``: an IMAGE-like ``[T,H,W,3]``, or a lazy
    source with ``len``, indexing and ``stems`` such as the command line's frame folder).
    ``first_frame_index``: the shot index of ``frames[0]`` (a chunk of a longer shot);
    ``frames_key``: a digest of the frames when the caller has one (names :meth:`propagate_again`'s
    run folders; default :func:`~memvos_core.session.run_folder.frames_digest`, read once);
    ``record``: an earlier :meth:`propagate_again`'s record over the same frames, to continue from."""

    def __init__(self, session, frames, first_frame_index=0, frames_key=None, record=None):
        self.session = session
        self.frames = frames
        self.first = int(first_frame_index)
        self.frames_key = frames_key
        self.record = record
        self.result = None
        self.stale = []
        self.whole_because = None   # why the last propagate_again ran the whole range (None: spans)

    @classmethod
    def open(cls, model, frames, config=None, internal_size=480, antialias=False, tta_scales=(), tta_flip=False):
        return cls(Session(model, config or MemoryConfig(), internal_size, antialias, tuple(tta_scales),
                           bool(tta_flip)), frames)

    @classmethod
    def resume(cls, path, model, frames, config=None):
        """A shot whose session was saved with :meth:`save` (same model; ``config`` if given must
        equal the saved settings)."""
        return cls(Session.load(path, model, config), frames)

    def save(self, path, what=None):
        """``what``: the input that named ``path``, for the one-line error of a disk that refuses."""
        self.session.save(path, what=what)

    def add_keyframe(self, frame_index, labels, object_ids=None):
        """Annotate frame ``frame_index`` with a label map (uint8 ``[H,W]`` object ids); a
        keyframe already on that frame is replaced."""
        self.session = self.session.add_label_map(frame_index, self.frames[frame_index], labels, object_ids)
        return self

    def propagate(self, direction="both", start=None, end=None, progress=None, cancel=None):
        """Yield ``(frame index, probabilities)`` for each frame as soon as it is final (``[N+1,H,W]``
        at the source size over ``session.object_ids``, background first). Closing the generator
        early stops the propagation at the next frame; afterwards ``session`` holds the memory
        state to continue with and ``result`` the run's :class:`~memvos_core.session.PropagationResult`."""
        handed = queue.Queue(maxsize=2)   # a frame or two ahead of the consumer: memory stays flat
        stop = threading.Event()
        done = object()

        def should_cancel():
            return stop.is_set() or (cancel is not None and cancel())

        def on_final(index, result):
            handed.put((index, result.probabilities(index)))

        def work():
            try:
                self.session, self.result = self.session.propagate(
                    self.frames, 0, direction, start, end, progress, should_cancel, on_final=on_final, retain=False)
                handed.put(done)
            except BaseException as exc:  # handed to the consumer's thread
                handed.put(exc)

        worker = threading.Thread(target=work, name="memvos-shot", daemon=True)
        worker.start()
        try:
            while (item := handed.get()) is not done:
                if isinstance(item, BaseException):
                    if isinstance(item, PropagationCancelled) and stop.is_set():
                        return
                    raise item
                yield item
        finally:
            stop.set()
            while worker.is_alive():      # let a blocked put() through, then wait for the stop
                try:
                    handed.get(timeout=0.05)
                except queue.Empty:
                    pass
            worker.join()

    def propagate_again(self, direction="both", start=None, end=None, progress=None, cancel=None, rerun="span",
                        runs=None):
        """The correction loop: propagate and keep every frame's result (``result``) and what a
        later call needs (``record``); after keyframes change, ``rerun="span"`` runs only the frames
        the change affects (:mod:`memvos_core.session.span`: an approximation, the rest is kept byte
        for byte), ``"exact"`` the whole range. The first call, or one the span rule cannot serve
        (another range, settings or set of objects; ``whole_because`` says which), runs the whole
        range. ``stale``: the frame ranges kept from an earlier run. ``start``/``end``: shot
        indices, ``end`` excluded. The memory the session carries in (a chunk of a longer shot)
        is continued, but not the memory the last call returned.

        ``runs``: a :class:`~memvos_core.session.run_folder.RunFolders` where each run (whole or
        span) keeps its results, memory states and checkpoints in a folder named by its inputs, so
        that a cancelled run called again with the same inputs continues where it stopped, with the
        masks of an uncancelled run (``record.resumed_at``: the frames of work not done again).
        Without it, temporary stores. Returns the result."""
        from .session.run_folder import RunFolders, frames_digest, run_digest
        from .session.span import RERUN, propagate_recorded, propagate_spans, why_not_span
        if rerun not in RERUN:
            raise ShotError(f"rerun {rerun!r} is not one of {', '.join(RERUN)}")
        first, n = self.first, len(self.frames)
        lo = first if start is None else max(first, int(start))
        hi = first + n if end is None else min(first + n, int(end))
        record, base = self.record, self.session
        if record is not None and base.forward_state is record.out.forward_state \
                and base.backward_state is record.out.backward_state:
            base = base.replace(forward_state=None, backward_state=None)  # ours, not a chunk's: a whole shot
        self.whole_because = "exact" if rerun == "exact" else why_not_span(record, base, first, direction, lo, hi)
        span = self.whole_because is None
        runs = runs if runs is not None else RunFolders(None)
        key = None
        if runs.root is not None:
            if self.frames_key is None:
                self.frames_key = frames_digest(self.frames)
            key = run_digest(base, first, direction, lo, hi, self.frames_key, after=record.key if span else None)
            if span and record.key is None:
                key = None   # the run it corrects has no name: nothing to name this one after

        def work(store, checkpoint):
            if span:
                return propagate_spans(record, base, self.frames, progress, cancel, store, checkpoint, key)
            return propagate_recorded(base, self.frames, first, direction, lo, hi, progress, cancel, store,
                                      checkpoint, key)
        self.session, self.result, self.record = runs.run(key, work)
        self.stale = self.record.stale
        return self.result

    def propagate_to_folder(self, out, **options):
        """:func:`memvos_core.command.streaming.propagate_to_folder` for this shot (masks written as frames
        become final, checkpoints, ``resume``); returns the run's result."""
        from .command.streaming import propagate_to_folder
        self.session, self.result = propagate_to_folder(self.session, self.frames, out, **options)
        return self.result


class ShotError(Exception):
    """A shot option that cannot be used; the message names it and the fix."""


def build_parser(description=None):
    """A shot's options, declared once: the command line's flags and the keys of SHOTS.json."""
    ap = argparse.ArgumentParser(prog=USAGE, description=description,
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
    compositing = ap.add_argument_group(
        "compositing formats", "besides the indexed PNGs (the 'png' format, always written)")
    compositing.add_argument("--format", nargs="+", default=["png"], choices=FORMATS, metavar="FORMAT",
                             help="also write: exr (half-float OpenEXR per frame in <out>/exr/<out name>.<frame>.exr: "
                                  "A = all objects, a layer obj<id>.A per object, R G B with --foreground; needs "
                                  "'pip install OpenEXR'), prores (<out>/<out name>.mov, ProRes 4444 with the "
                                  "matte as alpha, the source's frame rate and colour tags). Several may be given, "
                                  "e.g. --format png exr prores (default: png)")
    compositing.add_argument("--exr-compression", default="piz", choices=EXR_COMPRESSIONS,
                             help="piz (lossless, grainy pictures), zip (lossless, flat mattes), dwaa (lossy, "
                                  "small) or none (default: %(default)s)")
    compositing.add_argument("--foreground", default="none", choices=FOREGROUNDS,
                             help="the colour written with the matte in the EXR (R G B) and ProRes: the frame as "
                                  "is (straight), multiplied by the matte (premultiplied); 'clean' estimates the "
                                  "object's own colour at soft edges (no background tint) (default: none: ProRes "
                                  "shows the matte as grey)")
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
        raise ShotError(f"--device {choice}: CUDA is not available on this machine; use --device cpu")
    if choice == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ShotError("--device mps: MPS is not available on this machine; use --device cpu")
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
        raise ShotError(f"--weights {args.weights}: file not found")
    if not download:
        found = find_weights(args.weights, [args.models_dir])
        return None if found is None else Path(found)
    try:
        return Path(ensure_weights(args.weights, args.models_dir, progress=download_progress(args.quiet)))
    except WeightsError as exc:
        raise ShotError(f"{str(exc).rstrip('.')}. Offline? Pass --weights FILE with a checkpoint you have, or put "
                       f"{args.weights} into the models folder ($MEMVOS_MODELS_DIR or --models-dir; now "
                       f"{args.models_dir})") from None


def load_weights(args, device):
    from .runtime.model import load_model
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
    """One shot from options (:func:`build_parser`) to masks on disk; returns the result."""
    import torch
    shot_inputs = check_args(args)  # every input, before any weights are loaded or downloaded
    if not args.quiet:
        print(f"shot: {shot_inputs.describe()}", file=sys.stderr)
    frames = shot_inputs.frames
    parse_config(args)
    formats = set(args.format)
    if "exr" in formats:
        from .media_io.exr_writer import openexr
        openexr()  # a missing package is one line before the weights load
    colour = None
    if "prores" in formats:
        from .media_io.video_writer import colour_tags
        colour = colour_tags(args.frames) if os.path.isfile(args.frames) else None
    device = resolve_device(args.device)
    model = load_weights(args, device)
    config = make_config(args, len(frames), model.family)  # the family's own per-clip rules
    shot = Shot.open(model, frames, config, internal_size=args.size, tta_scales=args.tta_scales,
                     tta_flip=args.tta_flip)
    for i, labels in sorted(shot_inputs.keyframes.items()):
        shot.add_keyframe(i, labels)
    # the batch passes its own reporter (a callable with close()) instead of the bar
    bar = getattr(args, "progress", None) or make_progress(args.quiet)
    try:
        with torch.inference_mode():
            result = shot.propagate_to_folder(
                args.out, direction=args.direction, start=args.start, end=args.end, soft=args.soft,
                cache_dir=args.cache_dir, resume=args.resume, checkpoint_every=args.checkpoint_every,
                progress=bar, exr=args.exr_compression if "exr" in formats else None,
                prores="prores" in formats, foreground=args.foreground, colour=colour, device=device,
                log=None if args.quiet else (lambda text: print(text, file=sys.stderr)))
    except PropagationCancelled:
        raise KeyboardInterrupt from None  # reported by the command line: exit 130
    finally:
        bar.close()
    if args.save_session:
        shot.save(args.save_session, what="--save-session")
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
    from .media_io.media import MediaError
    from .network import CheckpointError
    from .session import SessionFileError
    from .weights import WeightsError
    return ShotError, MediaError, CheckpointError, WeightsError, SessionFileError, ValueError
