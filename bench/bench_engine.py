"""CPU/GPU time per frame of the propagation engine at 854x480 with generated weights.

    python bench/bench_engine.py [--frames 12] [--objects 1 2] [--device cpu]

Prints a table (and --json FILE writes the numbers). The first two frames are warm-up.
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from memvos_core import InferenceEngine, MemoryConfig, load_network  # noqa: E402
from memvos_core.runtime.frames import normalize  # noqa: E402
from memvos_core.network.synthetic import synthetic_state_dict  # noqa: E402


def moving_clip(num_frames, height, width, num_objects, seed=0):
    """Textured background with discs moving across it; yields (frame [3,H,W], mask [N,H,W])."""
    gen = torch.Generator().manual_seed(seed)
    background = torch.rand(3, height // 8, width // 8, generator=gen)
    background = torch.nn.functional.interpolate(background[None], size=(height, width), mode="bilinear")[0]
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    for t in range(num_frames):
        frame = background.clone()
        masks = []
        for o in range(num_objects):
            cx = (width * (0.2 + 0.25 * o) + 6 * t) % width
            cy = height * (0.3 + 0.3 * (o % 2))
            disc = ((xx - cx) ** 2 + (yy - cy) ** 2) < (height / 8) ** 2
            frame[:, disc] = torch.tensor([0.9, 0.2 + 0.3 * o, 0.1])[:, None]
            masks.append(disc.float())
        yield frame, torch.stack(masks)


def time_engine(net, config, device, precision, num_frames, num_objects, height, width, with_engine=False):
    """Steady seconds per frame (and the engine afterwards, ``with_engine``)."""
    engine = InferenceEngine(net, config, device=device, precision=precision)
    engine.set_num_objects(num_objects)
    times = []
    with torch.no_grad():
        for t, (frame, mask) in enumerate(moving_clip(num_frames, height, width, num_objects)):
            image = normalize(frame).to(device)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            if t == 0:
                engine.step(image, mask, list(range(1, num_objects + 1)))
            else:
                engine.step(image, end=t == num_frames - 1)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    steady = times[2:] if len(times) > 3 else times
    return (sum(steady) / len(steady), engine) if with_engine else sum(steady) / len(steady)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--objects", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--size", type=int, nargs=2, default=[480, 854], metavar=("H", "W"))
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    net = load_network(synthetic_state_dict()).to(args.device)
    config = MemoryConfig(memory_mode="evaluation")
    rows = []
    for n in args.objects:
        sec = time_engine(net, config, args.device, args.precision, args.frames, n, *args.size)
        rows.append({"device": args.device, "precision": args.precision, "objects": n,
                     "size": f"{args.size[1]}x{args.size[0]}", "ms_per_frame": sec * 1000, "fps": 1 / sec})
    print(f"{'device':8} {'precision':9} {'size':9} {'objects':>7} {'ms/frame':>9} {'fps':>6}")
    for r in rows:
        print(f"{r['device']:8} {r['precision']:9} {r['size']:9} {r['objects']:>7} {r['ms_per_frame']:>9.1f} {r['fps']:>6.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
