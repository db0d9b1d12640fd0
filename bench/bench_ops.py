"""Cost of each mask op per 480p (854x480) frame.

    python bench/bench_ops.py [--frames 8] [--repeats 3] [--device cpu] [--threads N]

Each op runs once to warm up, then ``--repeats`` times over ``--frames`` frames; the table shows
the best wall time and the best process CPU time (summed over torch's threads) divided by the
number of frames. Other load on the machine only adds wall time; CPU time is steadier there.
Masks are two soft-edged blobs with a few specks and holes, the kind propagation hands over.
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from memvos_core import ops  # noqa: E402
from memvos_core.network import XMemNetwork  # noqa: E402

H, W = 480, 854


def scene(num_frames, device):
    gen = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing="ij")
    frames = torch.rand(num_frames, H, W, 3, generator=gen) * 0.3 + 0.2
    masks = torch.zeros(num_frames, 2, H, W)
    for t in range(num_frames):
        for k, (cy, cx, r) in enumerate([(240, 300 + 6 * t, 110), (200, 620 - 4 * t, 70)]):
            angle = torch.atan2(yy - cy, xx - cx)
            dist = ((yy - cy) ** 2 + (xx - cx) ** 2).sqrt()
            masks[t, k] = (r + 8 * torch.sin(6 * angle) - dist + 0.5).clamp(0, 1)
            frames[t][masks[t, k] > 0.5] = torch.tensor([0.8, 0.3, 0.2]) if k == 0 else torch.tensor([0.2, 0.5, 0.8])
        specks = (torch.rand(1, 1, H // 8, W // 8, generator=gen) < 0.01).float()
        masks[t, 0] = torch.maximum(masks[t, 0], torch.nn.functional.interpolate(specks, size=(H, W))[0, 0])
        masks[t, 0, 230:238, 295:305] = 0                      # a hole
    labels = torch.where(masks[:, 0] >= 0.5, 1, 0) + torch.where((masks[:, 1] >= 0.5) & (masks[:, 0] < 0.5), 2, 0)
    return frames.to(device), masks.to(device), labels.to(device)


def timed(fn, repeats, device):
    """Best wall time and best process CPU time (all threads) over ``repeats`` runs, seconds."""
    def run():
        if device.type == "cuda":
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - wall, time.process_time() - cpu
    run()
    runs = [run() for _ in range(repeats)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--skip-network", action="store_true", help="skip the key encoder (slow on CPU)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    n = args.frames
    frames, masks, labels = scene(n, device)
    one = masks[:, 0]
    gen = torch.Generator().manual_seed(1)
    # keys at the 480-side internal size: 480x864 padded -> a 30x54 grid
    keys = torch.randn(n, 64, 30, 54, generator=gen).to(device)
    shrink = (1 + torch.rand(n, 1, 30, 54, generator=gen)).to(device)
    select = torch.rand(n, 64, 30, 54, generator=gen).to(device)
    background = torch.rand(1, 720, 1280, 3, generator=gen).to(device)

    cases = [
        ("threshold", 2, lambda: ops.threshold(masks)),
        ("fill_holes", 1, lambda: ops.fill_holes(one)),
        ("fill_holes", 2, lambda: ops.fill_holes(masks)),
        ("remove_islands (<100 px)", 1, lambda: ops.remove_islands(one, 100)),
        ("remove_islands (<100 px)", 2, lambda: ops.remove_islands(masks, 100)),
        ("grow_shrink +5", 1, lambda: ops.grow_shrink(one, 5)),
        ("grow_shrink -5", 1, lambda: ops.grow_shrink(one, -5)),
        ("grow_shrink +20", 1, lambda: ops.grow_shrink(one, 20)),
        ("feather 8", 1, lambda: ops.feather(one, 8)),
        ("refine_edges r4", 1, lambda: ops.refine_edges(frames, one)),
        ("refine_edges r4", 2, lambda: ops.refine_edges(frames, masks)),
        ("stabilize r2", 1, lambda: ops.stabilize(frames, one)),
        ("stabilize r2", 2, lambda: ops.stabilize(frames, masks)),
        ("overlay (outline 2)", 2, lambda: ops.overlay(frames, labels)),
        ("overlay + id labels", 2, lambda: ops.overlay(frames, labels, draw_ids=True)),
        ("matte rgba", 1, lambda: ops.matte(frames, one)),
        ("replace_background colour", 2, lambda: ops.replace_background(frames, masks, (0, 1, 0))),
        ("replace_background 720p image", 2, lambda: ops.replace_background(frames, masks, background)),
        ("inpaint_prep grow 8 feather 4", 2, lambda: ops.inpaint_prep(frames, masks)),
        ("inpaint_prep + crop", 2, lambda: ops.inpaint_prep(frames, masks, crop=True)),
        ("frame_signals", 2, lambda: ops.frame_signals(masks)),
        ("frame_signals + backward", 2, lambda: ops.frame_signals(masks, backward_masks=masks)),
        ("select_candidates k=3 (30x54 keys)", 2,
         lambda: ops.select_annotation_candidates(keys, shrink, select, masks, k=3)),
    ]
    if not args.skip_network:
        net = XMemNetwork().eval().to(device)
        cases.append(("compute_candidate_keys (XMem, 480)", 0, lambda: ops.compute_candidate_keys(net, frames)))

    print(f"device {device}, torch threads {torch.get_num_threads()}, {n} frames of {W}x{H}, best of {args.repeats}")
    print()
    print("| op | objects | wall ms / frame | CPU ms / frame |")
    print("|---|---:|---:|---:|")
    for name, objects, fn in cases:
        wall, cpu = timed(fn, args.repeats, device)
        print(f"| {name} | {objects or '-'} | {wall / n * 1000:.1f} | {cpu / n * 1000:.1f} |", flush=True)


if __name__ == "__main__":
    main()
