"""Everything a lent GPU should measure, in one command, in under 8 minutes.

    bash bench/gpu_all.sh [--official PATH-TO-XMEM-CHECKOUT] [--json gpu.json]
    python bench/gpu_all.py --device cpu --quick      # dry run with tiny sizes (tests/test_gpu_all.py)

Prints, section by section, each with its time allowance (``--budget`` seconds in all):

1. tests: the tests that need CUDA (those skipped without it), run with pytest;
2. variants: every engine variant side by side at 854x480 with 1 and 3 objects: FPS, x plain,
   peak device memory, agreement with plain fp32 (labels identical on every pixel whose top-2
   margin exceeds 0.05); variants the allowance leaves no time for are listed as skipped;
3. official (with ``--official``): the official XMem inference beside our CLI path with 1 and 3
   objects, in fp32 and in its default CUDA autocast (fp16), and our labels against its fp32;
4. long run: 1 object, default options, FPS and peak device memory at 1k, 5k and 10k frames.
   At 480p when the FPS measured in section 2 fits 10k frames into the allowance, otherwise at
   240x432 (a quarter of the pixels; long-term memory still fills at the same frame, because
   it is bounded in prototypes, 128 per consolidation); stopped early, saying so, when time is up;
5. summary: FPS at 480p for 1 and 3 objects, and the fastest variant that agrees, which is what
   ``EngineOptions.default_for('cuda')`` should be set to.

torch.compile / CUDA-graph variants take minutes to compile and are left out here
(``bench_propagation.py --variants compile cudagraphs`` runs them).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import bench_propagation as bp  # noqa: E402
import bench_vs_official as vo  # noqa: E402
from memvos_core.runtime.model import load_model  # noqa: E402
from memvos_core.runtime.perf import EngineOptions, engine_options  # noqa: E402

FULL = {"size": [480, 854], "frames": 60, "objects": [1, 3], "agree_frames": 150, "fixture_side": 480,
        "long": 10000, "long_small": [240, 432], "official_frames": 45}
QUICK = {"size": [64, 112], "frames": 4, "objects": [1, 2], "agree_frames": 6, "fixture_side": 0,
         "long": 20, "long_small": [48, 80], "official_frames": 4, "variants": ["plain", "fuse", "default"]}
SHARES = {"tests": 0.08, "variants": 0.42, "official": 0.12, "long": 0.38}   # of --budget


def section(title, allowance):
    print(f"\n=== {title} (allowance {allowance:.0f} s)", flush=True)
    return time.perf_counter()


def cuda_only_tests(tests_dir):
    """pytest node ids of the tests marked to be skipped without CUDA."""
    ids = []
    marker = re.compile(r"@pytest\.mark\.skipif\(\s*not torch\.cuda\.is_available\(\)")
    for name in sorted(os.listdir(tests_dir)):
        if not (name.startswith("test_") and name.endswith(".py")):
            continue
        lines = open(os.path.join(tests_dir, name), encoding="utf-8").read().splitlines()
        if any(line.startswith("pytestmark") and "cuda.is_available()" in line for line in lines):
            ids.append(name)  # the whole module needs CUDA
            continue
        for i, line in enumerate(lines):
            if marker.search(line):
                for follow in lines[i + 1:i + 6]:
                    found = re.match(r"\s*def (test_\w+)", follow)
                    if found:
                        ids.append(f"{name}::{found.group(1)}")
                        break
    return ids


def run_tests(allowance):
    tests_dir = os.path.join(ROOT, "tests")
    ids = cuda_only_tests(tests_dir)
    print(f"{len(ids)} tests need CUDA: {' '.join(ids)}")
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", *ids], cwd=tests_dir,
                              capture_output=True, text=True, timeout=max(allowance, 30))
        tail = (done.stdout + done.stderr).strip().splitlines()[-12:]
        print("\n".join(tail))
        return {"ids": ids, "returncode": done.returncode, "tail": tail}
    except subprocess.TimeoutExpired:
        print(f"tests did not finish within {allowance:.0f} s")
        return {"ids": ids, "returncode": None, "tail": ["timeout"]}


def run_variants(plan, device, deadline):
    argv = ["--device", device, "--frames", str(plan["frames"]), "--objects", *map(str, plan["objects"]),
            "--size", *map(str, plan["size"]), "--agree-frames", str(plan["agree_frames"]),
            "--agree-size", *map(str, plan["size"]), "--fixture-side", str(plan["fixture_side"])]
    if plan.get("variants"):
        argv += ["--variants", *plan["variants"]]
    args = bp.build_parser().parse_args(argv)
    rows = bp.bench(args, deadline=deadline)
    best = bp.print_table(rows, args.objects)
    return rows, best


class Laps:
    """Per-frame times from callbacks: each lap ends at ``stopped`` (``vo.clocks()``) or now."""

    def __init__(self):
        self.times, self.last = [], time.perf_counter()

    def __call__(self, stopped=None):
        end = stopped[0] if stopped else time.perf_counter()
        self.times.append(end - self.last)
        self.last = time.perf_counter()

    def fps(self):
        steady = self.times[bp.WARMUP:] or self.times
        return len(steady) / sum(steady)


def run_official(path, plan, device, state_dict, deadline):
    classes = vo.load_official(path)
    network, config = vo.official_network(classes, state_dict, device)
    model = load_model(dict(state_dict), device=device)
    out = []
    print(f"{'objects':>7} {'side':24} {'fps':>8} {'vs official fp32':>16} {'bad px':>7} {'differ':>9}")
    for n in plan["objects"]:
        if time.perf_counter() > deadline:
            print(f"{n} objects: time budget spent, skipped")
            continue
        frames, labels0 = vo.make_clip(plan["official_frames"], *plan["size"], n)
        row = {"objects": n}
        with torch.inference_mode():
            laps = Laps()
            reference = vo.run_official(classes, network, config, frames, labels0, n, laps)
            row["official_fp32_fps"] = laps.fps()
            if torch.device(device).type == "cuda":
                laps_amp = Laps()
                amp = vo.run_official(classes, network, config, frames, labels0, n, laps_amp, amp=True)
                row["official_amp_fps"] = laps_amp.fps()
                row["official_amp_vs_fp32"] = bp.agreement(([lab for lab, _ in reference], [c for _, c in reference]),
                                                           [lab for lab, _ in amp])
            laps_ours = Laps()
            with engine_options(None):
                labels = vo.run_ours(model, frames, labels0, laps_ours)
            row["ours_fps"] = laps_ours.fps()
            row["ours_vs_fp32"] = bp.agreement(([lab for lab, _ in reference], [c for _, c in reference]), labels)
        base = row["official_fp32_fps"]
        print(f"{n:7} {'official fp32':24} {base:8.2f} {1.0:15.2f}x")
        if "official_amp_fps" in row:
            bad, differ = row["official_amp_vs_fp32"]
            print(f"{n:7} {'official amp (fp16)':24} {row['official_amp_fps']:8.2f} "
                  f"{row['official_amp_fps'] / base:15.2f}x {bad:7} {100 * differ:8.4f}%")
        bad, differ = row["ours_vs_fp32"]
        print(f"{n:7} {'ours (CLI path, default)':24} {row['ours_fps']:8.2f} {row['ours_fps'] / base:15.2f}x "
              f"{bad:7} {100 * differ:8.4f}%", flush=True)
        out.append(row)
    return out


def run_long(plan, device, fps_480, allowance):
    h, w = plan["size"]
    fits = fps_480 is not None and plan["long"] / fps_480 <= 0.8 * allowance
    if not fits:
        h, w = plan["long_small"]
        print(f"{plan['long']} frames at {plan['size'][0]}x{plan['size'][1]} would not fit in {allowance:.0f} s "
              f"(measured {fps_480 or float('nan'):.1f} fps): running at {h}x{w}")
    argv = ["--device", device, "--long", str(plan["long"]), "--size", str(h), str(w), "--variants", "default"]
    args = bp.build_parser().parse_args(argv)
    return bp.long_run(args, budget_s=allowance)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--official", help="path of an hkchengrex/XMem checkout: its FPS beside ours")
    ap.add_argument("--budget", type=float, default=420.0, help="seconds for all sections (default 420)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks that everything runs")
    ap.add_argument("--skip-tests", action="store_true", help="leave section 1 out")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here; for a dry run use --device cpu --quick")
    plan = dict(QUICK if args.quick else FULL)
    if torch.device(args.device).type == "cpu":
        torch.set_num_threads(1)  # several threads on a CPU others are using mostly wait for each other
    started = time.perf_counter()
    report = {"machine": bp.machine(args.device), "plan": plan, "budget_s": args.budget}
    print(f"machine: {report['machine']}", flush=True)
    allow = {k: v * args.budget for k, v in SHARES.items()}

    if not args.skip_tests:
        t0 = section("1. tests that need CUDA", allow["tests"])
        report["tests"] = run_tests(allow["tests"])
        print(f"[{time.perf_counter() - t0:.0f} s]")

    t0 = section(f"2. variants at {plan['size'][1]}x{plan['size'][0]}, {plan['frames']} frames", allow["variants"])
    rows, best = run_variants(plan, args.device, t0 + allow["variants"])
    report["variants"], report["fastest_passing"] = rows, best
    print(f"[{time.perf_counter() - t0:.0f} s]")
    default = next(r for r in rows if r["variant"] == "default")
    fps = {run["objects"]: run["fps"] for run in default.get("runs", [])}

    if args.official:
        t0 = section("3. official XMem beside ours", allow["official"])
        report["official"] = run_official(args.official, plan, args.device, bp.weights(),
                                          t0 + allow["official"])
        print(f"[{time.perf_counter() - t0:.0f} s]")

    t0 = section(f"4. long run, {plan['long']} frames, 1 object", allow["long"])
    remaining = max(30.0, args.budget - (time.perf_counter() - started))
    report["long"] = run_long(plan, args.device, fps.get(1), min(allow["long"], remaining))
    print(f"[{time.perf_counter() - t0:.0f} s]")

    section("5. summary", 0)
    for n, value in fps.items():
        print(f"default options, {plan['size'][1]}x{plan['size'][0]}, {n} object{'s' * (n > 1)}: {value:.2f} fps")
    chosen = next(r for r in rows if r["variant"] == best)
    print(f"fastest variant that agrees: {best} ({chosen['precision']}, "
          f"{bp.describe(EngineOptions(**chosen['options']))}): "
          + ", ".join(f"{run['objects']} obj {run['fps']:.2f} fps" for run in chosen["runs"]))
    print(f"-> EngineOptions.default_for('{torch.device(args.device).type}') should return "
          f"EngineOptions({', '.join(f'{k}={v!r}' for k, v in chosen['options'].items())})"
          + (f" with precision {chosen['precision']}" if chosen["precision"] != "fp32" else ""))
    total = time.perf_counter() - started
    print(f"total {total:.0f} s")
    report["total_s"] = total
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1, default=str)
    return report


if __name__ == "__main__":
    main()
