"""XMem, Cutie base, Cutie small and MatAnyone side by side: time per frame at 854x480, generated weights.

    python bench/bench_families.py [--frames 12] [--objects 1 2] [--device cpu] [--threads N]

One run, the same clip and memory settings for every family (MemVOS defaults, ``xmem`` schedule:
one annotated first frame, then propagation). Prints a table with the machine's load, and the
size of the memory state each engine holds at the end (--json FILE writes the numbers). The
first two frames are warm-up; each case runs in several rounds in alternating order and its best
round counts.
"""
import argparse
import json
import os
import platform
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from bench_engine import time_engine  # noqa: E402
from memvos_core import MemoryConfig, load_network  # noqa: E402
from memvos_core.families import families  # noqa: E402
from memvos_core.network.synthetic import synthetic_state_dict  # noqa: E402

# Every registered family and variant ("XMem", "Cutie base", "Cutie small", ...).
FAMILIES = {f"{f.title} {v}" if v else f.title: (f.name, v) for f in families() for v in f.variants}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--objects", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--size", type=int, nargs=2, default=[480, 854], metavar=("H", "W"))
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    ap.add_argument("--repeats", type=int, default=2, help="rounds, alternating the order; best kept (default 2)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = MemoryConfig(memory_mode="evaluation")
    load_before = os.getloadavg()
    nets = {label: load_network(FAMILIES[label]()).to(args.device) for label in args.families}
    cases = [(label, n) for label in args.families for n in args.objects]
    best = {}
    # Rounds in alternating order, keeping each case's best: a shared machine's load changes
    # over a run, and a case measured only early or only late would carry that drift.
    for r in range(args.repeats):
        for label, n in (cases if r % 2 == 0 else cases[::-1]):
            sec, engine = time_engine(nets[label], config, args.device, args.precision, args.frames, n,
                                      *args.size, with_engine=True)
            tensors, _ = engine.state()   # keys, values, sensory state... held at the end
            mib = sum(t.numel() * t.element_size() for t in tensors.values()) / 2 ** 20
            if (label, n) not in best or sec < best[label, n][0]:
                best[label, n] = (sec, mib)
    rows = [{"model": label, "params_m": sum(p.numel() for p in nets[label].parameters()) / 1e6, "objects": n,
             "ms_per_frame": best[label, n][0] * 1000, "fps": 1 / best[label, n][0], "state_mib": best[label, n][1]}
            for label, n in cases]
    load_after = os.getloadavg()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {args.device}, {args.precision}, "
          f"{args.size[1]}x{args.size[0]}, {args.frames} frames (2 warm-up), best of {args.repeats} rounds; "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    print(f"| {'model':12} | {'params':>7} | {'objects':>7} | {'ms/frame':>9} | {'fps':>6} | {'state MiB':>9} |")
    print(f"|{'-' * 14}|{'-' * 9}|{'-' * 9}|{'-' * 11}|{'-' * 8}|{'-' * 11}|")
    for r in rows:
        print(f"| {r['model']:12} | {r['params_m']:6.1f}M | {r['objects']:>7} | {r['ms_per_frame']:>9.0f} | "
              f"{r['fps']:>6.2f} | {r['state_mib']:>9.1f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "load_average": [load_before, load_after], "threads": torch.get_num_threads(),
                       "device": args.device, "size": args.size, "frames": args.frames}, f, indent=1)


if __name__ == "__main__":
    main()
