"""SAM 2.1 (tiny, generated weights) behind the engine: CPU time per frame at 854x480 for 1 and 2
objects at the released image size, host memory held after N frames at a small image size (flat
with shot length: only keyframes and the last 15 frames are kept), and one click on a cached
frame (the image path).

    python bench/bench_sam2.py [--threads 1] [--frames 8] [--long 200 1000]

Weights: the SAM 2.1 parity fixture's rule (tests/fixtures/sam2_parity), no download needed.
Prints one table; numbers depend on the machine's load (printed with them).
"""
import argparse
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from bench_engine import time_engine  # noqa: E402
from memvos_core import MemoryConfig  # noqa: E402
from memvos_core.families.sam2.checkpoint import build_sam2  # noqa: E402
from memvos_core.families.sam2.image import embed_frame, predict  # noqa: E402
from sam2_fixture import generated_state  # noqa: E402


def held_bytes(engine):
    tensors, _ = engine.state()
    return sum(t.numel() * t.element_size() for t in tensors.values())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--objects", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--long", type=int, nargs="+", default=[100, 400], help="frames for the memory rows")
    ap.add_argument("--long-size", type=int, default=128, help="image size of the memory rows")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    state = generated_state()
    rows = []
    print(f"SAM 2.1 tiny, generated weights, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average at start {os.getloadavg()[0]:.1f}", flush=True)

    def row(name, value):
        rows.append((name, value))
        print(f"{name}: {value}", flush=True)

    net = build_sam2(state, "tiny", 1024)
    for n in args.objects:
        s = time_engine(net, MemoryConfig(), "cpu", "fp32", args.frames, n, 480, 854)
        row(f"time per frame, 854x480, {n} object(s), image size 1024", f"{s * 1000:.0f} ms")
    frame = (torch.rand(480, 854, 3) * 255).to(torch.uint8).numpy()
    t0 = time.perf_counter()
    emb = embed_frame(net, frame)
    row("image path: embed one 854x480 frame", f"{(time.perf_counter() - t0) * 1000:.0f} ms")
    t0 = time.perf_counter()
    for _ in range(5):
        predict(net, emb, [[400, 240]], [1])
    row("image path: one click on the cached frame", f"{(time.perf_counter() - t0) * 200:.0f} ms")
    for n in args.long:
        _, engine = time_engine(net, MemoryConfig(image_size=args.long_size), "cpu", "fp32", n, 2, 96, 160,
                                with_engine=True)
        row(f"state held after {n} frames, 2 objects, image size {args.long_size}",
            f"{held_bytes(engine) / 2**20:.2f} MiB")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
