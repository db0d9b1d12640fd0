"""Long shots from disk to disk: host memory over a whole run, backward vs forward time, and
chunk / resume equality. Prints tables.

    python bench/bench_long_shot.py [--frames 10000] [--size 64] [--device cpu] [--only memory,direction,equality]

Every run is what the command line does (``memvos_core.command.streaming.propagate_to_folder``): a
synthetic 854x480 H.264 video with 2 moving discs (x264's default keyframe interval, 250) is
decoded frame by frame, masks are written as indexed PNGs as frames become final. ``--size`` is
the internal size (480 is XMem's; on a CPU use a small one and say so). Generated weights.

1. memory: one run over ``--frames`` frames (``both``, one keyframe at frame 0), host RSS (and
   device memory on CUDA) at frames 1k, 2k, 5k, 10k; growth after the first 1k must stay under
   64 MiB.
2. direction: 600 frames forward from a keyframe at 0 vs backward from a keyframe at 599 (decode,
   network, PNGs): time ratio (target <= 1.6x) and frames decoded.
3. equality: ``both`` over 240 frames with keyframes at 0 and 160: the masks of an uninterrupted
   run vs runs cancelled at several frames and resumed, and vs forward chunks through sessions.
"""
import argparse
import os
import shutil
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
from bench_session_memory import rss_mib  # noqa: E402

WIDTH, HEIGHT = 854, 480
MIB = 1024 * 1024


_BACKGROUND = {}
DISCS = (((230, 60, 40), 3.0, 170), ((40, 200, 230), -2.0, 320))  # colour, px per frame, row
RADIUS = 60


def scene(t):
    """Frame ``t`` (uint8 [H,W,3]) and its labels (uint8 [H,W], discs 1 and 2)."""
    if "img" not in _BACKGROUND:
        yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
        base = np.empty((HEIGHT, WIDTH, 3), np.uint8)
        base[..., 0] = (80 + 40 * np.sin(xx / 37.0)).astype(np.uint8)
        base[..., 1] = (90 + 40 * np.cos(yy / 23.0)).astype(np.uint8)
        base[..., 2] = 110
        _BACKGROUND["img"] = base
        r = np.arange(-RADIUS, RADIUS + 1)
        _BACKGROUND["disc"] = r[:, None] ** 2 + r[None, :] ** 2 < RADIUS ** 2
    img = np.roll(_BACKGROUND["img"], t % WIDTH, axis=1)  # the background pans
    labels = np.zeros((HEIGHT, WIDTH), np.uint8)
    disc = _BACKGROUND["disc"]
    for o, (colour, speed, cy) in enumerate(DISCS):
        cx = int(RADIUS + (WIDTH * (0.3 + 0.4 * o) + speed * t) % (WIDTH - 2 * RADIUS))
        box = (slice(cy - RADIUS, cy + RADIUS + 1), slice(cx - RADIUS, cx + RADIUS + 1))
        img[box][disc] = colour
        labels[box][disc] = o + 1
    return img, labels


def make_video(path, num_frames):
    import av
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast"}
        for t in range(num_frames):
            img, _ = scene(t)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def session_for(model, frames, size, keys):
    config = MemoryConfig()  # XMem's defaults (long-term memory on, 10,000 elements)
    s = Session(model, config, internal_size=size)
    for k in keys:
        s = s.add_label_map(k, frames[k], torch.from_numpy(scene(k)[1]))
    return s


def cuda_mib(device):
    if torch.device(device).type != "cuda":
        return None
    return torch.cuda.max_memory_allocated() / MIB


# ------------------------------------------------------------------ 1. memory
def bench_memory(model, args, work):
    video = work / f"shot_{args.frames}.mp4"
    if not video.exists():
        print(f"encoding a {args.frames}-frame {WIDTH}x{HEIGHT} video ...", flush=True)
        make_video(video, args.frames)
    marks = [m for m in (1000, 2000, 5000, 10000, 20000) if m <= args.frames]
    rows, start = [], time.perf_counter()

    def progress(done, total):
        if done in marks:
            rows.append((done, rss_mib(), cuda_mib(args.device), time.perf_counter() - start))
            print(f"  frame {done}: RSS {rows[-1][1]:.1f} MiB", flush=True)

    with media.open_frames(video) as frames:
        s = session_for(model, frames, args.size, [0])
        with torch.inference_mode():
            propagate_to_folder(s, frames, work / "memory_out", direction="both", progress=progress)
    print(f"\n1. Host memory, one run over {args.frames} frames ({WIDTH}x{HEIGHT} video, internal size "
          f"{args.size}, both, keyframe at 0, {args.device})")
    print("| frame | RSS MiB | growth since 1k | device MiB (peak) | s/1k frames |")
    print("|---|---|---|---|---|")
    previous_t, previous_n = 0.0, 0
    for n, rss, dev, t in rows:
        rate = (t - previous_t) / (n - previous_n) * 1000
        previous_t, previous_n = t, n
        print(f"| {n} | {rss:.1f} | {rss - rows[0][1]:+.1f} | {'-' if dev is None else f'{dev:.0f}'} | {rate:.0f} |")
    growth = rows[-1][1] - rows[0][1]
    print(f"RSS growth after the first 1k frames: {growth:+.1f} MiB -> {'PASS' if growth <= 64 else 'FAIL'} (<= 64)")
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
    ap.add_argument("--frames", type=int, default=10000)
    ap.add_argument("--size", type=int, default=64, help="internal size (XMem: 480)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2, help="runs of each direction (best counts)")
    ap.add_argument("--only", default="memory,direction,equality")
    ap.add_argument("--work", default=None, help="folder for the videos and outputs (default: a temp folder)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="memvos-long-"))
    work.mkdir(parents=True, exist_ok=True)
    model = load_model(synthetic_state_dict(), device=args.device)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; torch threads {args.threads}; "
          f"work folder {work}")
    only = args.only.split(",")
    if "memory" in only:
        bench_memory(model, args, work)
    if "direction" in only:
        bench_direction(model, args, work)
    if "equality" in only:
        bench_equality(model, args, work)


if __name__ == "__main__":
    main()
