"""Our propagation beside the official XMem inference: same machine, same generated weights,
same frames, one run.

    python bench/bench_vs_official.py --official /path/to/XMem-checkout [--frames 45]
        [--objects 1 2] [--threads 1 2] [--variants default plain bf16] [--json out.json]

The official code is imported from ``--official`` (a checkout of hkchengrex/XMem); nothing of
it is part of this project. Its inference modules need only torch.

Ours runs the path the CLI runs with its default settings: ``Session.propagate`` over uint8
frames, annotation on frame 0, memory mode xmem++, internal size 480 (854x480 frames pass
through unresized), forward (the only pass with a keyframe on its side). Variants change the
engine options (``perf.engine_options``) or the precision. The official runs its evaluation
defaults (``eval.py``: top-k 30, memory every 5 frames, long-term memory on) in fp32 on the
CPU; its per-frame time is ``step`` plus the argmax copied to the host, as ``eval.py`` does.

Lockstep: every side runs in its own thread, and the threads take turns frame by frame, so a
change of load on a shared machine hits every side alike. Only the running side's time counts.

Agreement, against the official fp32 output: our label map must equal the official one on every
pixel whose official top-2 probability margin exceeds 0.05 (``bad px`` counts the pixels that
do not, over all frames); ``differ`` is the share of all pixels whose label differs (all of them
below that margin when ``bad px`` is 0). Clips stay under 46 frames by default: up to there
XMem's working memory (frame 0 kept in it) and XMem++'s (frame 0 in permanent memory) hold the
same frames, so the two memory schedules give the same masks; beyond it they consolidate at
different frames.
"""
import argparse
import contextlib
import io
import json
import os
import platform
import sys
import threading
import time
import types

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_engine import moving_clip  # noqa: E402
from bench_propagation import MARGIN, WARMUP, agreement  # noqa: E402
from memvos_core.config import MemoryConfig  # noqa: E402
from memvos_core.runtime.frames import normalize  # noqa: E402
from memvos_core.runtime.model import load_model  # noqa: E402
from memvos_core.network.synthetic import synthetic_state_dict  # noqa: E402
from memvos_core.runtime.perf import EngineOptions, engine_options  # noqa: E402
from memvos_core.session import Session  # noqa: E402


# ---------------------------------------------------------------------------- variants
def our_variants(names):
    """name -> (precision, options or None for the device default)."""
    plain = EngineOptions.plain()
    table = {
        "plain": ("fp32", plain),
        "sparse": ("fp32", plain.replace(sparse_readout=True, preallocate=True)),
        "+cl": ("fp32", plain.replace(sparse_readout=True, preallocate=True, channels_last=True)),
        "+fuse": ("fp32", plain.replace(sparse_readout=True, preallocate=True, fuse=True)),
        "+fuse+cl": ("fp32", plain.replace(sparse_readout=True, preallocate=True, fuse=True, channels_last=True)),
        "default": ("fp32", None),
        "bf16": ("bf16", None),
    }
    for name in names:
        if name not in table:
            raise SystemExit(f"--variants: unknown {name!r}; known: {', '.join(table)}")
    return {name: table[name] for name in names}


# ------------------------------------------------------------------------------- clip
def make_clip(num_frames, height, width, num_objects):
    """uint8 ``[H,W,3]`` frames and frame 0's label map (object ids 1..n)."""
    frames, labels0 = [], None
    for t, (frame, masks) in enumerate(moving_clip(num_frames, height, width, num_objects)):
        frames.append((frame.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous())
        if t == 0:
            labels0 = torch.zeros(height, width, dtype=torch.uint8)
            for o in range(num_objects):
                labels0[masks[o] > 0.5] = o + 1
    return frames, labels0


# ---------------------------------------------------------------------------- lockstep
class Lockstep:
    """Turn-taking between runner threads: one runs a frame while the others wait."""

    def __init__(self, count):
        self.turn, self.count, self.finished = 0, count, set()
        self.cond = threading.Condition()

    def wait(self, k):
        with self.cond:
            self.cond.wait_for(lambda: self.turn == k)

    def pass_on(self, k, finished=False):
        with self.cond:
            if finished:
                self.finished.add(k)
            if len(self.finished) < self.count:
                nxt = (k + 1) % self.count
                while nxt in self.finished:
                    nxt = (nxt + 1) % self.count
                self.turn = nxt
            self.cond.notify_all()


def clocks():
    """(wall, process CPU) seconds. Only the side whose turn it is runs, so the process's CPU
    time over a frame is that side's: steadier than wall time when others load the machine."""
    return time.perf_counter(), time.process_time()


class Runner(threading.Thread):
    """Runs one side; ``frame_done()`` after each frame records its time and yields the turn."""

    def __init__(self, lockstep, k, work):
        super().__init__(daemon=True)
        self.lockstep, self.k, self.work = lockstep, k, work
        self.times, self.cpu_times, self.result, self.error = [], [], None, None

    def frame_done(self, stopped=None):
        """``stopped``: :func:`clocks` when the frame's work ended, if bookkeeping followed it."""
        wall, cpu = stopped or clocks()
        self.times.append(wall - self.started[0])
        self.cpu_times.append(cpu - self.started[1])
        self.lockstep.pass_on(self.k)
        self.lockstep.wait(self.k)
        self.started = clocks()

    def run(self):
        self.lockstep.wait(self.k)
        self.started = clocks()
        try:
            with torch.inference_mode():
                self.result = self.work(self)
        except BaseException as exc:  # reported by the main thread
            self.error = exc
        finally:
            self.lockstep.pass_on(self.k, finished=True)


def run_in_lockstep(works):
    """``{name: Runner}`` of ``works`` (``{name: work(runner)}``) run to the end taking turns frame
    by frame, in their order; the first side that failed is raised."""
    lockstep = Lockstep(len(works))
    runners = {name: Runner(lockstep, k, work) for k, (name, work) in enumerate(works.items())}
    for r in runners.values():
        r.start()
    for r in runners.values():
        r.join()
    for name, r in runners.items():
        if r.error is not None:
            raise RuntimeError(f"{name} failed") from r.error
    return runners


# ------------------------------------------------------------------------------ sides
def load_official(path):
    """The official InferenceCore and network classes from a checkout."""
    path = os.path.abspath(path)
    if not os.path.isfile(os.path.join(path, "inference", "inference_core.py")):
        raise SystemExit(f"--official {path}: not an XMem checkout (no inference/inference_core.py)")
    sys.path.insert(0, path)
    try:
        from inference.inference_core import InferenceCore
        from model import resnet
        from model.network import XMem
    finally:
        sys.path.remove(path)
    # Its encoders start from downloaded ImageNet weights that the checkpoint then overwrites:
    # skip the download (there is no network here, and the result is the same).
    resnet.model_zoo = types.SimpleNamespace(load_url=lambda *args, **kwargs: {})
    resnet.load_weights_add_extra_dim = lambda *args, **kwargs: None
    return XMem, InferenceCore


OFFICIAL_CONFIG = {"top_k": 30, "mem_every": 5, "deep_update_every": -1, "enable_long_term": True,
                   "max_mid_term_frames": 10, "min_mid_term_frames": 5, "num_prototypes": 128,
                   "max_long_term_elements": 10000}


def official_network(classes, state_dict, device="cpu"):
    """The official network with ``state_dict`` loaded, and its config (eval.py's defaults)."""
    XMem, _ = classes
    config = dict(OFFICIAL_CONFIG)
    with contextlib.redirect_stdout(io.StringIO()):
        network = XMem(config).eval()
        network.load_weights(dict(state_dict), init_as_zero_if_needed=True)
    return network.to(device), config


def run_official(classes, network, config, frames, labels0, num_objects, on_frame, amp=False):
    """eval.py's loop over uint8 ``frames``: ``on_frame(stopped)`` after each frame's labels
    reached the host (``stopped``: :func:`clocks` when its work ended). ``amp``: eval.py's default CUDA
    autocast (fp16); off, as its ``--benchmark`` does. Returns (labels, clear-margin maps)."""
    _, InferenceCore = classes
    device = next(network.parameters()).device
    config = dict(config)
    # eval.py's per-video rule: count long-term usage only when pruning can happen
    config["enable_long_term_count_usage"] = len(frames) / 5 * 128 >= 10000
    processor = InferenceCore(network, config)
    processor.set_all_labels(list(range(1, num_objects + 1)))
    out = []
    with torch.autocast(device.type, enabled=amp):
        for t, frame in enumerate(frames):
            image = normalize(frame.to(device).permute(2, 0, 1).float().div(255))
            if t == 0:
                mask = torch.stack([(labels0 == o).float() for o in range(1, num_objects + 1)]).to(device)
                prob = processor.step(image, mask, list(range(1, num_objects + 1)))
            else:
                prob = processor.step(image)
            labels = torch.max(prob, dim=0).indices.cpu()
            stopped = clocks()
            top2 = prob.float().topk(2, dim=0).values
            out.append((labels.to(torch.uint8), ((top2[0] - top2[1]) > MARGIN).cpu()))
            on_frame(stopped)
    return out


def official_work(classes, state_dict, frames, labels0, num_objects):
    network, config = official_network(classes, state_dict)

    def work(runner):
        return run_official(classes, network, config, frames, labels0, num_objects, runner.frame_done)
    return work


def run_ours(model, frames, labels0, on_frame):
    """The CLI's propagation over uint8 ``frames`` (frame 0 annotated); ``on_frame()`` after
    each frame. Returns the label maps."""
    # At 854x480 this is the CLI's default size (480); other sizes run unresized, like the official.
    session = Session(model, MemoryConfig(), internal_size=min(labels0.shape))
    session = session.add_label_map(0, frames[0], labels0)
    _, result = session.propagate(frames, direction="forward", progress=lambda done, total: on_frame())
    return [result.labels(i) for i in result.frame_indices]


def ours_work(state_dict, frames, labels0, precision, options):
    model = load_model(dict(state_dict), device="cpu", precision=precision)

    def work(runner):
        with engine_options(options):
            return run_ours(model, frames, labels0, runner.frame_done)
    return work


# ------------------------------------------------------------------------------ bench
def run_group(official, state_dict, variants, frames, labels0, num_objects):
    works = {}
    if official is not None:
        works["official"] = official_work(official, state_dict, frames, labels0, num_objects)
    for name, (precision, options) in variants.items():
        works[name] = ours_work(state_dict, frames, labels0, precision, options)
    runners = run_in_lockstep(works)
    rows = {}
    reference = runners["official"].result if official is not None else None
    for name, r in runners.items():
        steady = r.times[WARMUP:] or r.times
        steady_cpu = r.cpu_times[WARMUP:] or r.cpu_times
        row = {"ms_per_frame": 1000 * sum(steady) / len(steady),
               "cpu_ms_per_frame": 1000 * sum(steady_cpu) / len(steady_cpu), "frames": len(r.times)}
        if reference is not None and name != "official":
            bad, differ = agreement(([lab for lab, _ in reference], [c for _, c in reference]), r.result)
            row.update(bad_px=bad, differ_share=differ, agree=bad == 0)
        rows[name] = row
    if "official" in rows:
        for name, row in rows.items():
            row["speedup"] = rows["official"]["ms_per_frame"] / row["ms_per_frame"]
            row["cpu_speedup"] = rows["official"]["cpu_ms_per_frame"] / row["cpu_ms_per_frame"]
    return rows


def print_rows(threads, num_objects, rows):
    for name, row in rows.items():
        line = f"{threads:7} {num_objects:7}  {name:10} {row['ms_per_frame']:9.0f}"
        line += f" {row['speedup']:8.2f}x" if "speedup" in row else f" {'':9}"
        line += f" {row['cpu_ms_per_frame']:9.0f}"
        line += f" {row['cpu_speedup']:8.2f}x" if "cpu_speedup" in row else f" {'':9}"
        if "bad_px" in row:
            line += f" {row['bad_px']:7} {100 * row['differ_share']:8.4f}%  {'PASS' if row['agree'] else 'FAIL'}"
        print(line, flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", help="path of an hkchengrex/XMem checkout (omit: ours only)")
    ap.add_argument("--frames", type=int, default=45, help="clip length (default 45, see above)")
    ap.add_argument("--objects", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads, one table block each")
    ap.add_argument("--size", type=int, nargs=2, default=[480, 854], metavar=("H", "W"))
    ap.add_argument("--variants", nargs="+", default=["default", "plain"])
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    official = load_official(args.official) if args.official else None
    variants = our_variants(args.variants)
    state_dict = synthetic_state_dict()
    info = {"torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "load_avg_start": os.getloadavg(),
            "frames": args.frames, "size": args.size}
    print(f"machine: {info}", flush=True)
    print(f"{'threads':>7} {'objects':>7}  {'side':10} {'ms/frame':>9} {'vs off.':>9} {'CPU ms':>9} {'vs off.':>9}"
          f" {'bad px':>7} {'differ':>9}")
    results = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for n in args.objects:
            frames, labels0 = make_clip(args.frames, *args.size, n)
            rows = run_group(official, state_dict, variants, frames, labels0, n)
            print_rows(threads, n, rows)
            results.append({"threads": threads, "objects": n, "rows": rows, "load_avg": os.getloadavg()})
    info["load_avg_end"] = os.getloadavg()
    print(f"load average at the end: {info['load_avg_end']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "results": results}, f, indent=1)
    return results


if __name__ == "__main__":
    main()
