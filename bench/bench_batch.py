"""Batch timing: the tests' three tiny shots through `python -m memvos_core batch`, with 1 and 2
workers, on the process pool and on Ray, side by side.

    python bench/bench_batch.py [--size 64] [--repeat 1] [--no-ray]

Each variant is one fresh command (worker start-up, weight loading and, for Ray, starting a
local instance included: what a user waits for), writing into an empty folder. Frames/s counts
output frames over the whole command's wall time. Prints the machine's core count and load
average before and after, because on a shared machine the numbers are only as quiet as it is.
"""
import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FRAMES_PER_SHOT = 8
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from batch_shots import make_shots, write_shots_json, write_weights  # noqa: E402


def run_variant(shots_json, out_root, workers, ray, omp_threads):
    cmd = [sys.executable, "-m", "memvos_core", "batch", str(shots_json), "--workers", str(workers), "--quiet"]
    if ray:
        cmd += ["--ray", "auto"]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = str(ROOT)
    if omp_threads:
        env["OMP_NUM_THREADS"] = str(omp_threads)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=out_root, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"batch failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return wall, proc.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=None, help="internal size for every shot (default: the tests' own)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per variant; the best is shown")
    ap.add_argument("--no-ray", action="store_true", help="only the process pool")
    args = ap.parse_args()
    have_ray = importlib.util.find_spec("ray") is not None and not args.no_ray
    if importlib.util.find_spec("ray") is None:
        print("ray not installed: process pool only (pip install ray)")

    cores = os.cpu_count() or 1
    # (path, workers, ray, OMP_NUM_THREADS): the pool gives a worker cores/workers threads unless
    # OMP_NUM_THREADS is set, Ray gives a 1-CPU task 1 thread; the 1-thread pool row separates
    # the effect of threads from that of running shots side by side.
    variants = [("process pool", 1, False, None), ("process pool", 1, False, 1), ("process pool", 2, False, None)]
    if have_ray:
        variants += [("ray", 1, True, None), ("ray", 2, True, None)]
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        tmp = Path(tmp)
        weights = write_weights(tmp)
        shots = make_shots(tmp, weights, frames_per_shot=FRAMES_PER_SHOT)
        if args.size is not None:
            shots = [{**s, "size": args.size} for s in shots]
        frames = FRAMES_PER_SHOT * len(shots)
        load_before = os.getloadavg()
        rows = []
        for n, (name, workers, on_ray, omp) in enumerate(variants):
            best = None
            for r in range(args.repeat):
                folder = tmp / f"variant{n}_{r}"
                folder.mkdir()
                for k in range(len(shots)):
                    os.symlink(tmp / f"shot{k}", folder / f"shot{k}")
                wall, _ = run_variant(write_shots_json(folder, shots), folder, workers, on_ray, omp)
                best = wall if best is None else min(best, wall)
            threads = 1 if on_ray else (omp or max(1, cores // workers))
            rows.append((name, workers, threads, best))
        load_after = os.getloadavg()

    print(f"machine: {cores} cores, load average before {load_before[0]:.1f}, after {load_after[0]:.1f}"
          f" | 3 shots, {frames} output frames, sizes {sorted({s['size'] for s in shots})}")
    print(f"{'path':<13} {'workers':>7} {'threads/worker':>14} {'wall s':>8} {'frames/s':>9} {'x first row':>11}")
    base = {}
    for name, workers, threads, wall in rows:
        base.setdefault(name, wall)
        print(f"{name:<13} {workers:>7} {threads:>14} {wall:>8.1f} {frames / wall:>9.2f} {base[name] / wall:>11.2f}")


if __name__ == "__main__":
    main()
