"""Long shots from disk to disk: host memory over a whole run, backward vs forward time, and
chunk / resume equality. Prints tables.

    python bench/bench_long_shot.py [--frames 5000] [--pipeline-frames 1200] [--videos small,1080p]
                                    [--runs reader,pipeline] [--size 64] [--device cpu]
                                    [--only memory,direction,equality] [--work FOLDER]
                                    [--family xmem|cutie|matanyone|...]

Every run is what the command line does (``memvos_core.command.streaming.propagate_to_folder``): a
synthetic H.264 video with 2 moving discs (x264's default keyframe interval, 250) is decoded
frame by frame, masks are written as indexed PNGs as frames become final. ``--size`` is the
internal size (480 is XMem's; on a CPU use a small one and say so). Generated weights. Videos
are kept in ``--work`` (give the same folder to compare two versions on the same files).
``--family`` picks the registered family whose generated weights run (default: the first, XMem).

1. memory: per video of ``--videos`` (small 176x96, 480p 854x480, 1080p 1920x1080), host RSS
   (and device memory on CUDA) from the start on, at frames 100, 300, 1k, 1.2k, 5k (10k, 20k), the
   growth between marks (per frame too) and what the video reader holds; growth from frame 300
   to the last mark must stay under 64 MiB. Two runs: ``reader``, the video read in order over
   ``--frames`` frames with nothing else, then backwards over its last 300 (the reader's own
   share, fast); ``pipeline``, the CLI's run (``both``, one keyframe at frame 0) over
   ``--pipeline-frames`` frames (the network at ``--size``: slow on a CPU). Each run in a process
   of its own.
2. direction: 600 frames forward from a keyframe at 0 vs backward from a keyframe at 599 (decode,
   network, PNGs): time ratio (target <= 1.6x) and frames decoded.
3. equality: ``both`` over 240 frames with keyframes at 0 and 160: the masks of an uninterrupted
   run vs runs cancelled at several frames and resumed, and vs forward chunks through sessions.
"""
import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from memvos_core.media_io import media  # noqa: E402
from memvos_core.config import MemoryConfig  # noqa: E402
from memvos_core.runtime.model import load_model  # noqa: E402
from memvos_core.network.synthetic import synthetic_state_dict  # noqa: E402
from memvos_core.session import PropagationCancelled, Session  # noqa: E402
from memvos_core.command.streaming import propagate_to_folder  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from host_memory import rss_mib  # noqa: E402

WIDTH, HEIGHT = 854, 480   # the direction and equality benchmarks' video
MIB = 1024 * 1024
VIDEOS = {"small": (176, 96), "480p": (854, 480), "1080p": (1920, 1080)}  # width, height
MARKS = (100, 300, 1000, 1200, 5000, 10000, 20000)


_BACKGROUNDS = {}
DISCS = (((230, 60, 40), 3.0, 170), ((40, 200, 230), -2.0, 320))  # colour, px per frame, row (at 480 rows)
RADIUS = 60


def scene(t, width=WIDTH, height=HEIGHT):
    """Frame ``t`` (uint8 [H,W,3]) and its labels (uint8 [H,W], discs 1 and 2); the discs'
    geometry scales with the height (854x480 is the reference)."""
    s = height / 480
    radius = max(2, round(RADIUS * s))
    if (width, height) not in _BACKGROUNDS:
        yy, xx = np.mgrid[0:height, 0:width]
        base = np.empty((height, width, 3), np.uint8)
        base[..., 0] = (80 + 40 * np.sin(xx / (37.0 * s))).astype(np.uint8)
        base[..., 1] = (90 + 40 * np.cos(yy / (23.0 * s))).astype(np.uint8)
        base[..., 2] = 110
        r = np.arange(-radius, radius + 1)
        _BACKGROUNDS[width, height] = base, r[:, None] ** 2 + r[None, :] ** 2 < radius ** 2
    base, disc = _BACKGROUNDS[width, height]
    img = np.roll(base, t % width, axis=1)  # the background pans
    labels = np.zeros((height, width), np.uint8)
    for o, (colour, speed, cy) in enumerate(DISCS):
        cy = round(cy * s)
        cx = radius + math.floor(width * (0.3 + 0.4 * o) + speed * s * t) % (width - 2 * radius)
        box = (slice(cy - radius, cy + radius + 1), slice(cx - radius, cx + radius + 1))
        img[box][disc] = colour
        labels[box][disc] = o + 1
    return img, labels


def make_video(path, num_frames, width=WIDTH, height=HEIGHT):
    import av
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast"}
        for t in range(num_frames):
            img, _ = scene(t, width, height)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def session_for(model, frames, size, keys, width=WIDTH, height=HEIGHT):
    config = MemoryConfig()  # XMem's defaults (long-term memory on, 10,000 elements)
    s = Session(model, config, internal_size=size)
    for k in keys:
        s = s.add_label_map(k, frames[k], torch.from_numpy(scene(k, width, height)[1]))
    return s


def cuda_mib(device):
    if torch.device(device).type != "cuda":
        return None
    return torch.cuda.max_memory_allocated() / MIB


# ------------------------------------------------------------------ 1. memory
def held_by_reader(frames):
    """Frames the video reader holds and their pixel bytes (decoded planes or arrays; a held
    ``av.VideoFrame`` also keeps decoder buffers these do not count)."""
    held = list(getattr(frames, "_held", {}).values())

    def nbytes(f):
        return sum(p.buffer_size for p in f.planes) if hasattr(f, "planes") else np.asarray(f).nbytes
    return len(held), sum(nbytes(f) for f in held)


def bench_memory(model, args, work, name, run):
    """``run`` "pipeline": the CLI's disk-to-disk run; "reader": the same frames read in the same
    order with nothing else (the reader's own share, fast enough for long videos)."""
    width, height = VIDEOS[name]
    video = work / f"shot_{name}_{args.frames}.mp4"
    if not video.exists():
        print(f"encoding a {args.frames}-frame {width}x{height} video ...", flush=True)
        make_video(video, args.frames, width, height)
    frames_n = args.frames if run == "reader" else min(args.frames, args.pipeline_frames)
    marks = [m for m in MARKS if m <= frames_n]
    rows, start = [], time.perf_counter()

    def measure(done):
        rows.append((done, rss_mib(), *held_by_reader(frames), cuda_mib(args.device), time.perf_counter() - start))

    def progress(done, total):
        if done in marks:
            measure(done)
            print(f"  frame {done}: RSS {rows[-1][1]:.1f} MiB", flush=True)

    backward = None
    with media.open_frames(video) as frames:
        if run == "pipeline":
            s = session_for(model, frames, args.size, [0], width, height)
            measure(0)
            with torch.inference_mode():
                propagate_to_folder(s, frames, work / "memory_out", direction="both", end=frames_n,
                                    progress=progress)
            what = f"the CLI's run (internal size {args.size}, both, keyframe at 0, {args.device})"
        else:
            frames[0]
            measure(0)
            for t in range(1, frames_n):
                frames[t]
                progress(t + 1, frames_n)
            # A backward pass over the last 300 frames: the reader holds its windows.
            most = 0
            for t in range(frames_n - 1, max(-1, frames_n - 301), -1):
                frames[t]
                most = max(most, held_by_reader(frames)[1])
            backward = (rss_mib(), most, frames.window)
            what = "the video read frame by frame in order, nothing else"
    print(f"\n1. Host memory over {frames_n} frames of a {width}x{height} H.264 video: {what}")
    print("| frame | RSS MiB | since previous | since frame 0 | KiB/frame since previous | frames held by the reader "
          "| held MiB | device MiB (peak) | s/1k frames |")
    print("|---|---|---|---|---|---|---|---|---|")
    previous = rows[0]
    for n, rss, held, held_bytes, dev, t in rows:
        step = rss - previous[1]
        per_frame = f"{step * 1024 / (n - previous[0]):+.1f}" if n > previous[0] else "-"
        rate = f"{(t - previous[5]) / (n - previous[0]) * 1000:.1f}" if n > previous[0] else "-"
        print(f"| {n} | {rss:.1f} | {step:+.1f} | {rss - rows[0][1]:+.1f} | {per_frame} | {held} | "
              f"{held_bytes / MIB:.1f} | {'-' if dev is None else f'{dev:.0f}'} | {rate} |")
        previous = (n, rss, held, held_bytes, dev, t)
    if backward:
        print(f"then backward over the last 300 frames (window {backward[2]} frames): RSS {backward[0]:.1f} MiB, "
              f"the reader held at most {backward[1] / MIB:.1f} MiB")
    first = next((r for r in rows if r[0] >= 300), rows[0])
    growth = rows[-1][1] - first[1]
    print(f"RSS growth from frame {first[0]} to frame {rows[-1][0]}: {growth:+.1f} MiB -> "
          f"{'PASS' if growth <= 64 else 'FAIL'} (<= 64)")
    shutil.rmtree(work / "memory_out", ignore_errors=True)


# --------------------------------------------------------------- 2. direction
def bench_direction(model, args, work, n=600):
    video = work / f"shot_{n}.mp4"
    if not video.exists():
        make_video(video, n)
    rows = {}
    # Alternated and repeated, best of each: the machine may be shared.
    for _ in range(args.repeat):
        for direction, key in (("forward", 0), ("backward", n - 1)):
            with media.open_frames(video) as frames:
                s = session_for(model, frames, args.size, [key])
                start = time.perf_counter()
                with torch.inference_mode():
                    propagate_to_folder(s, frames, work / f"dir_{direction}", direction=direction)
                t = time.perf_counter() - start
                if direction not in rows or t < rows[direction][1]:
                    rows[direction] = (direction, t, frames.decoded, frames.seeks)
            shutil.rmtree(work / f"dir_{direction}", ignore_errors=True)
    rows = [rows["forward"], rows["backward"]]
    forward_t = rows[0][1]
    print(f"\n2. Backward vs forward, {n} frames ({WIDTH}x{HEIGHT} H.264, keyframe interval 250, "
          f"internal size {args.size}, {args.device})")
    print(f"best of {args.repeat} alternated runs each")
    print("| direction | seconds | x forward | frames decoded | seeks |")
    print("|---|---|---|---|---|")
    for direction, t, decoded, seeks in rows:
        print(f"| {direction} | {t:.1f} | {t / forward_t:.2f} | {decoded} | {seeks} |")
    ratio = rows[1][1] / forward_t
    print(f"backward / forward: {ratio:.2f} -> {'PASS' if ratio <= 1.6 else 'FAIL'} (<= 1.6)")


# ---------------------------------------------------------------- 3. equality
def read_outputs(folder):
    return {p.name: np.array(Image.open(p)) for p in sorted(Path(folder).glob("*.png"))}


def bench_equality(model, args, work, n=240, keys=(0, 160)):
    video = work / f"shot_{n}.mp4"
    if not video.exists():
        make_video(video, n)
    rows = []
    with media.open_frames(video) as frames:
        s = session_for(model, frames, args.size, keys)
        with torch.inference_mode():
            propagate_to_folder(s, frames, work / "eq_whole", direction="both", checkpoint_every=25)
        whole = read_outputs(work / "eq_whole")
        # backward covers 160..0 (161 frames), forward 0..239: stops in both passes
        for stop in (40, 161, 300):
            out = work / f"eq_stop{stop}"
            count = [0]

            def cancel():
                count[0] += 1
                return count[0] > stop
            with torch.inference_mode():
                try:
                    propagate_to_folder(s, frames, out, direction="both", checkpoint_every=25, cancel=cancel)
                except PropagationCancelled:
                    pass
                written = len(list(out.glob("*.png")))
                propagate_to_folder(s, frames, out, direction="both", checkpoint_every=25, resume=True)
            got = read_outputs(out)
            same = got.keys() == whole.keys() and all(np.array_equal(got[k], whole[k]) for k in whole)
            rows.append((f"cancelled after {stop} frames of work ({written} masks on disk), resumed", same))
        # Forward chunks through sessions vs one forward pass (internal probabilities).
        s1 = session_for(model, frames, args.size, [0])
        with torch.inference_mode():
            _, one = s1.propagate(frames, direction="forward")
            chunked, state = {}, s1
            for lo in range(0, n, 60):
                state, part = state.propagate(frames, direction="forward", start=lo, end=min(n, lo + 60))
                for t in part.frame_indices:
                    chunked[t] = part.internal(t)
        same = all(torch.equal(chunked[t], one.internal(t)) for t in range(n))
        rows.append((f"forward in chunks of 60 through sessions vs one pass ({n} frames)", same))
    print(f"\n3. Equality with one uninterrupted run ({n} frames, both, keyframes {list(keys)}, internal size {args.size})")
    print("| run | masks identical |")
    print("|---|---|")
    for name, same in rows:
        print(f"| {name} | {'yes' if same else 'NO'} |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=5000, help="memory: frames the reader alone reads")
    ap.add_argument("--pipeline-frames", type=int, default=1200, help="memory: frames of the CLI's run")
    ap.add_argument("--runs", default="reader,pipeline", help="memory: reader (decoding only), pipeline (the CLI's run)")
    ap.add_argument("--videos", default="small,1080p", help=f"memory run: some of {','.join(VIDEOS)}")
    ap.add_argument("--size", type=int, default=64, help="internal size (XMem: 480)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2, help="runs of each direction (best counts)")
    ap.add_argument("--only", default="memory,direction,equality")
    ap.add_argument("--work", default=None, help="folder for the videos and outputs (default: a temp folder)")
    ap.add_argument("--family", default=None, help="a registered family id (default: the first registered)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="memvos-long-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; torch threads {args.threads}; "
          f"work folder {work}", flush=True)
    only = args.only.split(",")
    if "memory" in only:
        pairs = [(run, name) for run in args.runs.split(",") for name in args.videos.split(",")]
        if len(pairs) == 1:
            run, name = pairs[0]
            model = load_model(synthetic_state_dict(family=args.family), device=args.device) if run == "pipeline" else None
            bench_memory(model, args, work, name, run)
        else:
            # A process per run: memory one run freed stays resident and would hide the next one's growth.
            for run, name in pairs:
                subprocess.run([sys.executable, os.path.abspath(__file__), "--only", "memory", "--runs", run,
                                "--videos", name, "--frames", str(args.frames), "--pipeline-frames",
                                str(args.pipeline_frames), "--size", str(args.size), "--device", args.device,
                                "--threads", str(args.threads), "--work", str(work)]
                               + (["--family", args.family] if args.family else []), check=True)
    if "direction" in only or "equality" in only:
        model = load_model(synthetic_state_dict(family=args.family), device=args.device)
    if "direction" in only:
        bench_direction(model, args, work)
    if "equality" in only:
        bench_equality(model, args, work)

if __name__ == "__main__":
    main()
