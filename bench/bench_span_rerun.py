"""Time one correction of a long shot: propagate again over the affected span vs the whole shot.

    python bench/bench_span_rerun.py [--frames 2000] [--every 200] [--size 32] [--threads 1] [--family xmem|toy]

A synthetic shot (tests/session_helpers.moving_discs, two objects, ``--size`` square frames),
XMem with generated weights at the frames' own size (``--family toy``: the test-only toy family,
whose step is a few microseconds: what is left is the session's own cost, results store and blend),
keyframes every ``--every`` frames,
``direction=both``. The shot is propagated once with what a span run needs kept
(``propagate_recorded``); then one keyframe between two others is fixed (object 1 moved, in the
middle of the shot, where a fix costs most) and the correction is timed two ways side by side in
this process: ``span`` (memvos_core/session/span.py: only the frames between the neighbouring
unchanged keyframes) and ``exact`` (the whole shot again). Prints wall and process CPU time, the
frames of work each did, and how many frames outside the span differ from the exact run's.

    python bench/bench_span_rerun.py --memory [--keyframes 5 20 40] [--every 10] [--size 64]

Host memory of what a run keeps for a later span run: each pass's memory state at each keyframe,
held in RAM (how the record kept them before, the ``ram`` side, emulated here) or written to the
run's folder and read back only when a span starts there (``disk``, what the record does now).
Each side and keyframe count runs in its own process (``--every`` frames between keyframes,
``keyframes`` memory mode, where every state holds every keyframe); prints the process's RSS with
the record alive, its peak, and the states' bytes.

    python bench/bench_span_rerun.py --preview [--frames 400] [--height 360] [--width 640] [--span 41]
                                     [--source ram|video] [--repeats 3]

The player's preview after a span run (nodes/preview.py, as Propagate writes it): the pages of a
``--frames`` shot (synthetic discs: uint8 frames in RAM, or with ``--source video`` an H.264 file
decoded as the node reads a Load Video source) written in full, then again after a span run that
re-computed ``--span`` frames mid-shot, two ways side by side: ``rendered-all`` (every page, as
before) and ``reused`` (the pages of kept frames taken over from the last preview, as now). Prints
wall and process CPU time (best of ``--repeats``), the pages rendered and the frames read.
"""
import argparse
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from memvos_core.network.synthetic import synthetic_state_dict  # noqa: E402
from memvos_core.runtime.model import load_model  # noqa: E402
from memvos_core.session import Session  # noqa: E402
from memvos_core.session.keyframe_states import KeyframeStates  # noqa: E402
from memvos_core.session.propagation import Propagation  # noqa: E402
from memvos_core.session.span import RunRecord, propagate_recorded, propagate_spans  # noqa: E402
from session_helpers import moving_discs, small_config  # noqa: E402
from host_memory import peak_rss_mib, rss_mib  # noqa: E402  (bench/ is the script's folder)


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def moved(labels, object_id=1, shift=2):
    out = labels.clone()
    one = out == object_id
    out[one] = 0
    out[torch.roll(one, shift, dims=1) & (out == 0)] = object_id
    return out


def load(family):
    if family == "toy":
        import toy_family
        from memvos_core.families import registry
        registry.register(toy_family.FAMILY)
        return load_model(synthetic_state_dict(family=toy_family.NAME))
    return load_model(synthetic_state_dict())


def run(frames=2000, every=200, size=32, threads=1, family="xmem"):
    torch.set_num_threads(threads)
    model = load(family)
    clip, labels = moving_discs(num_frames=frames, height=size, width=size)
    keys = list(range(0, frames, every))
    session = Session(model, small_config("keyframes"), internal_size=-1)
    for k in keys:
        session = session.add_label_map(k, clip[k], labels[k], object_ids=[1, 2])
    (_, first, record), t0, c0 = timed(lambda: propagate_recorded(session, clip))
    print(f"first run: {t0:.1f} s wall, {c0:.1f} s CPU ({first_work(session, frames)} frames of work)", flush=True)
    fix = keys[len(keys) // 2] + every // 2          # a new keyframe between two, mid-shot
    fixed = session.add_label_map(fix, clip[fix], moved(labels[fix]), object_ids=[1, 2])
    steps = {"span": [0], "exact": [0]}
    (_, span_result, span_record), t_span, c_span = timed(
        lambda: propagate_spans(record, fixed, clip, progress=lambda d, t: steps["span"].__setitem__(0, t)))
    (_, exact_result, _), t_exact, c_exact = timed(
        lambda: propagate_recorded(fixed, clip, progress=lambda d, t: steps["exact"].__setitem__(0, t)))
    lo, hi = span_record.spans[0]
    outside = [i for i in range(frames) if not lo <= i < hi]
    far = compare(span_result, exact_result, outside)
    near = compare(span_result, exact_result, range(lo, hi))
    print(f"\nshot: {frames} frames {size}x{size}, keyframes every {every} ({len(keys)}), fix at frame {fix}, "
          f"span {lo}..{hi - 1}, {model.name} (generated weights), internal size {size}, {threads} thread(s)")
    print(f"{'correction':<10} {'frames of work':>15} {'wall s':>8} {'CPU s':>8}")
    print(f"{'span':<10} {steps['span'][0]:>15} {t_span:>8.2f} {c_span:>8.2f}")
    print(f"{'exact':<10} {steps['exact'][0]:>15} {t_exact:>8.2f} {c_exact:>8.2f}")
    print(f"speed-up: {t_exact / t_span:.1f}x wall, {c_exact / c_span:.1f}x CPU")
    for name, (frames_differ, count, worst, pixels) in (("outside the span (kept)", far), ("inside the span", near)):
        print(f"span vs exact, {name}: {frames_differ} of {count} frames differ; max |dp| {worst:.4f}; "
              f"label pixels that differ {100 * pixels:.3f} %")
    return {"span": (t_span, c_span), "exact": (t_exact, c_exact)}


def compare(a, b, frames):
    """(frames whose stored results differ, frames, max |probability difference|, fraction of
    label pixels that differ) between two results over ``frames``."""
    differ, worst, wrong, total = 0, 0.0, 0, 0
    for i in frames:
        pa, pb = a.internal(i), b.internal(i)
        if pa is None or pb is None:
            continue
        if not torch.equal(pa, pb):
            differ += 1
            worst = max(worst, (pa.float() - pb.float()).abs().max().item() / 65535)
            wrong += int((a.labels(i) != b.labels(i)).sum())
        total += a.source_hw[0] * a.source_hw[1]
    return differ, len(list(frames)), worst, wrong / max(1, total)


def first_work(session, frames):
    first, last = session.keyframes[0].frame_index, session.keyframes[-1].frame_index
    return (frames - first) + (last + 1)


class StatesInRam(KeyframeStates):
    """The ``ram`` side: every state kept in RAM, as the record held them before (its ``put``
    writes no file)."""

    def __init__(self):
        super().__init__(os.devnull)
        self.held = {}

    def put(self, name, frame, state, taken_with):
        self.held[(name, int(frame))] = state
        self._index[(name, int(frame))] = taken_with

    def get(self, key, default=None):
        return (self.held[key], self._index[key]) if key in self.held else default

    def bytes(self):
        return sum(t.numel() * t.element_size() for state in self.held.values() for t in state.tensors.values())


def memory_child(side, keyframes, every, size):
    """One side of ``--memory`` in this process: prints ``rss peak bytes`` (MiB, MiB, bytes)."""
    import gc
    torch.set_num_threads(1)
    model = load_model(synthetic_state_dict())
    frames = keyframes * every
    clip, labels = moving_discs(num_frames=frames, height=size, width=size)
    session = Session(model, small_config("keyframes"), internal_size=-1)
    for k in range(0, frames, every):
        session = session.add_label_map(k, clip[k], labels[k], object_ids=[1, 2])
    job = Propagation(session, clip, 0, "both", keep_states=StatesInRam() if side == "ram" else True)
    out, _ = job.run()
    record = RunRecord.of(job, out)
    gc.collect()
    states = record.states
    held = states.bytes() if side == "ram" else states.disk_bytes()
    print(f"{rss_mib():.1f} {peak_rss_mib():.1f} {held}", flush=True)


def memory_table(keyframe_counts, every, size):
    import subprocess
    print(f"\nstates a span run starts from: {every} frames between keyframes, {size}x{size} frames, "
          "XMem (generated weights), keyframes memory mode, both directions, 1 thread; one process per row")
    print(f"{'keyframes':>9} {'states':>7} {'side':<5} {'RSS MiB':>8} {'peak MiB':>9} {'states MiB':>11} {'wall s':>7}")
    for n in keyframe_counts:
        for side in ("ram", "disk"):
            started = time.perf_counter()
            line = subprocess.run([sys.executable, __file__, "--memory-child", side, str(n), "--every", str(every),
                                   "--size", str(size)], capture_output=True, text=True, check=True).stdout
            rss, peak, held = line.split()[-3:]
            print(f"{n:>9} {2 * n:>7} {side:<5} {float(rss):>8.1f} {float(peak):>9.1f} {int(held) / 2**20:>11.1f} "
                  f"{time.perf_counter() - started:>7.1f}", flush=True)


def preview_frames(pack_nodes, source, folder, frames, height, width):
    """``(frames, labels)``: uint8 frames in RAM (25 distinct, repeated), or an H.264 file read as
    Load Video's frames reach the node (nodes/frame_source.FrameClip: decoded when sliced)."""
    if source == "video":
        from bench_long_shot import make_video, scene
        path = os.path.join(folder, "shot.mp4")
        make_video(path, frames, width, height)
        labels = torch.stack([torch.from_numpy(scene(t, width, height)[1]) for t in range(frames)])
        return pack_nodes.frame_source.FrameClip(pack_nodes.frame_source.source_from_path(path)), labels
    block, block_labels = moving_discs(num_frames=25, height=height, width=width)
    reps = -(-frames // 25)
    clip = (block * 255).round().to(torch.uint8).repeat(reps, 1, 1, 1)[:frames]
    return clip, block_labels.repeat(reps, 1, 1)[:frames]


def preview_run(frames=400, height=360, width=640, span=41, repeats=3, threads=1, source="ram"):
    import tempfile
    from pack_loader import pack_for_tests
    pack_nodes = pack_for_tests().nodes  # the pack as ComfyUI imports it
    preview = pack_nodes.preview
    torch.set_num_threads(threads)
    lo = frames // 2 - span // 2
    changed = [(lo, lo + span)]
    counted = {"pages": 0, "frames": 0}
    write_page = preview._write_page

    def counting(out_dir, name, source, labels_, slot_of, page, *rest):
        counted["pages"] += 1
        counted["frames"] += page["count"]
        return write_page(out_dir, name, source, labels_, slot_of, page, *rest)
    preview._write_page = counting
    with tempfile.TemporaryDirectory() as folder:
        clip, labels = preview_frames(pack_nodes, source, folder, frames, height, width)
        write = (lambda **kw: preview.write_preview(folder, clip, labels, fps=24, object_ids=[1, 2],
                                                    stale=[(0, lo), (lo + span, frames)], **kw))
        last = write()
        pages = len(preview.read_manifest(folder, last)["pages"])
        times = {"rendered-all": [], "reused": []}
        counts = {}
        for _ in range(repeats):
            for side, kw in (("rendered-all", {}), ("reused", {"previous": last, "changed": changed})):
                counted.update(pages=0, frames=0)
                _, wall, cpu = timed(lambda: write(**kw))
                times[side].append((wall, cpu))
                counts[side] = dict(counted)
    preview._write_page = write_page
    what = "uint8, in RAM" if source == "ram" else "an H.264 file, decoded as read"
    print(f"\npreview after a span run: {frames} frames {width}x{height} ({what}), {pages} pages, span "
          f"{lo}..{lo + span - 1} ({span} frames), best of {repeats}, {threads} thread(s)")
    print(f"{'preview':<13} {'pages rendered':>15} {'frames read':>12} {'wall s':>8} {'CPU s':>8}")
    best = {}
    for side, runs in times.items():
        best[side] = min(runs)
        print(f"{side:<13} {counts[side]['pages']:>15} {counts[side]['frames']:>12} {best[side][0]:>8.2f} "
              f"{min(c for _, c in runs):>8.2f}")
    print(f"speed-up: {best['rendered-all'][0] / best['reused'][0]:.1f}x wall")
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, help="frames of the shot (default 2000; 400 with --preview)")
    ap.add_argument("--every", type=int, default=200)
    ap.add_argument("--size", type=int, default=32, help="frame side in pixels (the network runs at this size)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--family", default="xmem", choices=("xmem", "toy"))
    ap.add_argument("--memory", action="store_true", help="host memory of the kept states, in RAM vs on disk")
    ap.add_argument("--keyframes", type=int, nargs="+", default=[5, 20, 40], help="with --memory: keyframe counts")
    ap.add_argument("--preview", action="store_true", help="the preview after a span run: reused vs rendered-all")
    ap.add_argument("--height", type=int, default=360, help="with --preview: frame height")
    ap.add_argument("--width", type=int, default=640, help="with --preview: frame width")
    ap.add_argument("--span", type=int, default=41, help="with --preview: frames the span run computed again")
    ap.add_argument("--source", default="ram", choices=("ram", "video"),
                    help="with --preview: frames in RAM, or a video file decoded as the node reads Load Video's")
    ap.add_argument("--repeats", type=int, default=3, help="with --preview: runs of each side")
    ap.add_argument("--memory-child", nargs=2, metavar=("SIDE", "KEYFRAMES"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_child:
        return memory_child(args.memory_child[0], int(args.memory_child[1]), args.every, args.size)
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    if args.memory:
        memory_table(args.keyframes, args.every, args.size)
    elif args.preview:
        preview_run(args.frames or 400, args.height, args.width, args.span, args.repeats, args.threads,
                    args.source)
    else:
        run(args.frames or 2000, args.every, args.size, args.threads, args.family)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
