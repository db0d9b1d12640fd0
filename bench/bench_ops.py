"""Cost of each mask op per 1080p (1920x1080) frame: the torch kernels (before) beside the CPU
libraries (after), and the GPU when CUDA exists, in one run.

    python bench/bench_ops.py [--frames 2] [--repeats 3] [--threads N] [--size 1920x1080] [--network]

Columns (ms per frame: best wall time of ``--repeats`` after one warm-up, and in parentheses the
best process CPU time, summed over threads, which other load on a shared machine disturbs less):
* torch CPU: the whole-tensor torch kernels on the CPU (what every op ran before);
* OpenCV / SciPy: the library kernels (only for ops that have them);
* kept: the path the ops take on a CPU tensor now (fastest installed), and its speed-up;
* GPU: inputs on the CPU, work on CUDA in budget chunks, results back on the CPU (as the nodes
  run), when CUDA exists.
Masks are soft-edged blobs with specks and a hole, the kind propagation hands over.
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from memvos_core import ops  # noqa: E402
from memvos_core.runtime.frames import internal_size  # noqa: E402
from memvos_core.network.xmem import XMemNetwork  # noqa: E402
from memvos_core.ops import Compute, kernels  # noqa: E402


def scene(num_frames, height, width):
    gen = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(height).float(), torch.arange(width).float(), indexing="ij")
    frames = torch.rand(num_frames, height, width, 3, generator=gen) * 0.3 + 0.2
    masks = torch.zeros(num_frames, 2, height, width)
    s = height / 480
    for t in range(num_frames):
        for k, (cy, cx, r) in enumerate([(240 * s, (300 + 6 * t) * s, 110 * s), (200 * s, (620 - 4 * t) * s, 70 * s)]):
            angle = torch.atan2(yy - cy, xx - cx)
            dist = ((yy - cy) ** 2 + (xx - cx) ** 2).sqrt()
            masks[t, k] = (r + 8 * s * torch.sin(6 * angle) - dist + 0.5).clamp(0, 1)
            frames[t][masks[t, k] > 0.5] = torch.tensor([0.8, 0.3, 0.2]) if k == 0 else torch.tensor([0.2, 0.5, 0.8])
        specks = (torch.rand(1, 1, height // 8, width // 8, generator=gen) < 0.01).float()
        masks[t, 0] = torch.maximum(masks[t, 0], torch.nn.functional.interpolate(specks, size=(height, width))[0, 0])
        hy, hx = int(230 * s), int(295 * s)
        masks[t, 0, hy:hy + int(8 * s), hx:hx + int(10 * s)] = 0  # a hole
    labels = torch.where(masks[:, 0] >= 0.5, 1, 0) + torch.where((masks[:, 1] >= 0.5) & (masks[:, 0] < 0.5), 2, 0)
    return frames, masks, labels


def timed(fn, repeats, cuda=False):
    """Best wall time and best process CPU time over ``repeats`` runs after one warm-up, seconds."""
    def run():
        if cuda:
            torch.cuda.synchronize()
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start, time.process_time() - cpu
    run()
    runs = [run() for _ in range(repeats)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", default="1920x1080", help="WIDTHxHEIGHT of the frames")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--network", action="store_true", help="also time the candidate key encoder (slow on CPU)")
    parser.add_argument("--only", default="", help="comma-separated substrings: run only ops whose name has one")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))
    n = args.frames
    frames, masks, labels = scene(n, height, width)
    one = masks[:, 0]
    gen = torch.Generator().manual_seed(1)
    internal = internal_size(height, width, 480)
    grid = (-(-internal[0] // 16), -(-internal[1] // 16))  # the key grid of the 480-side internal size
    keys = torch.randn(n, 64, *grid, generator=gen)
    shrink = 1 + torch.rand(n, 1, *grid, generator=gen)
    select = torch.rand(n, 64, *grid, generator=gen)
    background = torch.rand(1, 720, 1280, 3, generator=gen)
    chain = ops.RefineSteps(binarize=True, fill_holes=True, remove_islands_px=100, grow_px=3, feather_px=2.0)

    # name, objects, fn(compute), has library kernels
    cases = [
        ("threshold", 2, lambda c: ops.threshold(masks, compute=c), False),
        ("fill_holes", 1, lambda c: ops.fill_holes(one, compute=c), True),
        ("fill_holes", 2, lambda c: ops.fill_holes(masks, compute=c), True),
        ("remove_islands (<100 px, 8-conn)", 1, lambda c: ops.remove_islands(one, 100, compute=c), True),
        ("remove_islands (<100 px, 8-conn)", 2, lambda c: ops.remove_islands(masks, 100, compute=c), True),
        ("grow_shrink +5", 1, lambda c: ops.grow_shrink(one, 5, compute=c), True),
        ("grow_shrink -5", 1, lambda c: ops.grow_shrink(one, -5, compute=c), True),
        ("grow_shrink +20", 1, lambda c: ops.grow_shrink(one, 20, compute=c), True),
        ("grow_shrink +5 (hard mask)", 1, lambda c: ops.grow_shrink((one >= 0.5).float(), 5, compute=c), True),
        ("feather 8", 1, lambda c: ops.feather(one, 8, compute=c), False),
        ("refine_edges r4", 2, lambda c: ops.refine_edges(frames, masks, compute=c), False),
        ("stabilize r2", 2, lambda c: ops.stabilize(frames, masks, compute=c), False),
        ("Refine chain (bin, holes, islands, grow 3, feather 2)", 2,
         lambda c: ops.refine_masks(masks, chain, compute=c), True),
        ("overlay (outline 2)", 2, lambda c: ops.overlay(frames, labels, compute=c), True),
        ("overlay + id labels", 2, lambda c: ops.overlay(frames, labels, draw_ids=True, compute=c), True),
        ("matte rgba", 1, lambda c: ops.matte(frames, one, compute=c), False),
        ("replace_background 720p image", 2, lambda c: ops.replace_background(frames, masks, background, compute=c),
         False),
        ("inpaint_prep grow 8 feather 4", 2, lambda c: ops.inpaint_prep(frames, masks, compute=c).mask, True),
        ("frame_signals", 2, lambda c: ops.frame_signals(masks, compute=c), False),
        (f"select_candidates k=3 ({grid[0]}x{grid[1]} keys)", 2,
         lambda c: ops.select_annotation_candidates(keys, shrink, select, masks, k=3,
                                                    device=None if c is None else c.device), False),
    ]
    if args.network:
        net = XMemNetwork().eval()

        def encode(c):
            device = "cpu" if c is None else c.device
            return ops.compute_candidate_keys(net.to(device), frames, 480, device=device, store_device="cpu")
        cases.append(("compute_candidate_keys (XMem, 480)", 0, encode, False))
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        cases = [c for c in cases if any(w in c[0] for w in wanted)]

    libraries = [b for b in ("opencv", "scipy") if b in kernels.available()]
    cuda = torch.cuda.is_available()
    print(f"{width}x{height}, {n} frames, best of {args.repeats}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads; CPU libraries: {', '.join(libraries) or 'none'}"
          + (f"; GPU {torch.cuda.get_device_name()}" if cuda else "; no GPU"))
    print()
    heads = ["op", "objects", "torch CPU ms", "OpenCV ms", "SciPy ms", "kept: path", "ms", "speed-up"]
    heads += ["GPU ms"] if cuda else []
    print("| " + " | ".join(heads) + " |")
    print("|" + "|".join(["---"] + ["---:"] * (len(heads) - 1)) + "|")
    def per_frame(times):
        return tuple(t / n * 1000 for t in times)

    def cell(times):
        return f"{times[0]:.1f} ({times[1]:.1f})"

    for name, objects, fn, has_library in cases:
        with kernels.use_backend("torch"):
            before = per_frame(timed(lambda: fn(None), args.repeats))
        cells = {"torch": before}
        if has_library:
            for backend in libraries:
                with kernels.use_backend(backend):
                    cells[backend] = per_frame(timed(lambda: fn(None), args.repeats))
        # what the ops run by default: the library, or torch where it measured faster (a soft
        # mask grown by a large disc)
        after = per_frame(timed(lambda: fn(None), args.repeats)) if has_library else before
        kept = min(cells, key=lambda k: abs(cells[k][0] - after[0]))  # the path whose time it has
        row = [name, str(objects or "-"), cell(before),
               cell(cells["opencv"]) if "opencv" in cells else "-",
               cell(cells["scipy"]) if "scipy" in cells else "-",
               kept, cell(after), f"{before[0] / after[0]:.1f}x ({before[1] / max(after[1], 1e-9):.1f}x)"]
        if cuda:
            compute = Compute(device="cuda", output_device="cpu")
            row.append(f"{per_frame(timed(lambda: fn(compute), args.repeats, cuda=True))[0]:.1f}")
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
