"""Propagation speed and memory, variant by variant, with each variant's agreement with fp32.

    python bench/bench_propagation.py --device cpu --frames 30 [--threads 1] [--json out.json]
    python bench/bench_propagation.py --device cuda --frames 300 --json gpu.json
    python bench/bench_propagation.py --device cuda --long 10000      # FPS and memory at 1k/5k/10k
    python bench/bench_propagation.py --device cpu --long 500 --size 240 432   # the same, smaller

Every variant is the plain engine (fp32, dense readout, growing memory) with one change, plus
the device's default options (``EngineOptions.default_for``) in fp32 and in half precision.
Speed: frames per second over a moving-disc clip (``bench_engine.moving_clip``) at 854x480 for
1 and 3 objects, each frame's label map copied to the host as a session does; the first two
frames are warm-up. Memory: peak host RSS (VmHWM, reset per run) and peak device allocation.
Agreement, against the plain fp32 engine on every frame of the fixture clip upscaled to 480
short side (run A's first annotation), of a long synthetic clip and of the timed clips: the
label map must be identical on every pixel whose plain top-2 probability margin exceeds 0.05
(``bad px`` counts those that are not; ``differ`` is the share of all pixels that differ, all
of them near-ties when ``bad px`` is 0). Generated weights throughout.
"""
import argparse
import functools
import gc
import json
import os
import platform
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_engine import moving_clip  # noqa: E402
from host_memory import peak_rss_mib, reset_peak  # noqa: E402
from memvos_core import InferenceEngine, MemoryConfig, load_network  # noqa: E402
from memvos_core.config import MEMORY_MODES  # noqa: E402
from memvos_core.runtime.frames import normalize, resize_image, resize_mask  # noqa: E402
from memvos_core.network.synthetic import synthetic_state_dict  # noqa: E402
from memvos_core.runtime.perf import EngineOptions, FramesAhead  # noqa: E402

MARGIN = 0.05
WARMUP = 2
FIXTURE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "tests", "fixtures", "xmem_parity")


# ------------------------------------------------------------------------------ variants
def variants(device, requested=()):
    """(name, precision, options, reason it is skipped or None) for every variant."""
    cuda = torch.device(device).type == "cuda"
    plain = EngineOptions.plain()
    default = EngineOptions.default_for(device)
    half = "bf16" if not cuda or torch.cuda.is_bf16_supported() else "fp16"
    table = [
        ("plain", "fp32", plain, None),
        ("fp16", "fp16", plain, None if cuda else "CPU autocast has no fp16 (the engine runs fp32 there)"),
        ("bf16", "bf16", plain, None),
        ("channels_last", "fp32", plain.replace(channels_last=True), None),
        ("fuse", "fp32", plain.replace(fuse=True), None),
        ("key_batch4", "fp32", plain.replace(key_batch=4), None),
        ("prealloc", "fp32", plain.replace(preallocate=True), None),
        ("sparse", "fp32", plain.replace(sparse_readout=True), None),
        ("compile", "fp32", plain.replace(compile="default"),
         None if "compile" in requested else
         "torch.compile takes minutes to compile (CPU: ~50 s per network call, no faster than "
         "eager channels_last); ask for it with --variants compile"),
        ("cudagraphs", "fp32", plain.replace(compile="reduce-overhead"),
         None if cuda and "cudagraphs" in requested else
         "needs CUDA and minutes of compiling; ask for it with --variants cudagraphs"),
        ("default", "fp32", default, None),
        ("default_cl", "fp32", default.replace(channels_last=True),
         None if not default.channels_last else "the default already runs channels_last"),
        ("default_fuse", "fp32", default.replace(fuse=True), None if not default.fuse else "the default already fuses"),
        (f"default_{half}", half, default, None),
        ("default_fp16", "fp16", default, None if cuda and half != "fp16" else "same as above or no CUDA"),
    ]
    if requested:
        unknown = set(requested) - {name for name, *_ in table}
        if unknown:
            raise SystemExit(f"--variants: unknown {sorted(unknown)}; known: {[n for n, *_ in table]}")
        table = [row for row in table if row[0] in requested or row[0] == "plain"]
    return table


def describe(options):
    on = [k for k, v in options.to_dict().items() if v and not (k == "key_batch" and v == 1)]
    return ",".join(f"{k}={options.to_dict()[k]}" if k in ("key_batch", "compile") else k for k in on) or "-"


# ------------------------------------------------------------------------------- clips
def synthetic_clip(num_frames, height, width, num_objects):
    """Normalised frames (host) and the first frame's mask."""
    frames, first = [], None
    for t, (frame, mask) in enumerate(moving_clip(num_frames, height, width, num_objects)):
        frames.append(normalize(frame))
        first = mask if t == 0 else first
    return frames, first


def fixture_clip(short_side=480):
    """The parity fixture's 16 frames upscaled to ``short_side``, with run A's annotation."""
    import numpy as np
    from PIL import Image
    names = sorted(os.listdir(os.path.join(FIXTURE, "clip", "frames")))
    frames = []
    for name in names:
        rgb = np.array(Image.open(os.path.join(FIXTURE, "clip", "frames", name)).convert("RGB"))
        img = normalize(torch.from_numpy(rgb).permute(2, 0, 1).float().div(255))
        h, w = img.shape[-2:]
        size = (short_side, int(short_side * w / h)) if h <= w else (int(short_side * h / w), short_side)
        frames.append(resize_image(img, size))
    idx = torch.from_numpy(np.array(Image.open(os.path.join(FIXTURE, "run_A", "annotations", "00000.png"))))
    labels = sorted(set(idx.unique().tolist()) - {0})
    mask = torch.stack([(idx == label).float() for label in labels])
    return frames, resize_mask(mask, frames[0].shape[-2:])


# ------------------------------------------------------------------------------ running
@functools.lru_cache(maxsize=1)
def weights():
    """The generated XMem weights every run loads (made once per process)."""
    return synthetic_state_dict()


def network(device, channels_last, _cache={}):
    """One network per layout and device, shared by the variants (channels_last converts the
    network it is given, so the NHWC variants get their own)."""
    key = (str(device), bool(channels_last))
    if key not in _cache:
        _cache[key] = load_network(weights()).to(device)
    return _cache[key]


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def reset_peaks(device):
    """Start a fresh peak: freed heap handed back to the system first, so one run's leftovers do
    not count in the next run's peak. Returns the host RSS the run starts from (MiB)."""
    gc.collect()
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    reset_peak()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    return peaks(device)[0]


def peaks(device):
    host = peak_rss_mib()
    dev = torch.cuda.max_memory_allocated(device) / 2**20 if torch.device(device).type == "cuda" else None
    return host, dev


def propagate(engine, frame_of, num_frames, first_mask):
    """Frame 0 annotated with ``first_mask``, the rest propagated (as a session does: XMem++
    puts the annotation in permanent memory first; key encoding batched ahead when the options
    ask for it). Yields (t, labels uint8 host, seconds, prob on the device)."""
    n = first_mask.shape[0]
    ahead = FramesAhead(engine, lambda i: frame_of(i).to(engine.device), range(num_frames))
    with torch.inference_mode():
        for t in range(num_frames):
            sync(engine.device)
            start = time.perf_counter()
            image, feats = ahead.take(t)
            if t == 0:
                if engine.config.memory_mode == "keyframes":
                    engine.add_permanent(image, first_mask)
                prob = engine.step(image, first_mask, list(range(1, n + 1)),
                                   write_memory=engine.config.memory_mode != "keyframes", feats=feats)
            else:
                prob = engine.step(image, feats=feats)
            labels = prob.argmax(0).to(torch.uint8).cpu()
            yield t, labels, time.perf_counter() - start, prob


def make_engine(net, config, device, precision, options, num_objects):
    engine = InferenceEngine(net, config, device, precision, options)
    engine.set_num_objects(num_objects)
    return engine


def clear_pixels(prob):
    """Where the top-2 probability margin exceeds MARGIN (host bool map)."""
    top2 = prob.float().topk(2, dim=0).values
    return ((top2[0] - top2[1]) > MARGIN).cpu()


def run_clip(net, config, device, precision, options, frames, first_mask, keep_clear=False):
    """Labels (and, with ``keep_clear``, the clear-margin maps) of every frame, and times."""
    engine = make_engine(net, config, device, precision, options, first_mask.shape[0])
    labels, clear, times = [], [], []
    for _, lab, sec, prob in propagate(engine, frames.__getitem__, len(frames), first_mask):
        labels.append(lab)
        times.append(sec)
        if keep_clear:
            clear.append(clear_pixels(prob))
    return labels, clear, times


def agreement(reference, labels):
    """(bad pixels, share of pixels differing): ``reference`` = (labels, clear maps)."""
    ref_labels, clear = reference
    bad = differ = total = 0
    for a, b, c in zip(ref_labels, labels, clear):
        diff = a != b
        bad += int((diff & c).sum())
        differ += int(diff.sum())
        total += diff.numel()
    return bad, differ / max(total, 1)


# --------------------------------------------------------------------------------- modes
def bench(args, deadline=None):
    """Every variant over the timed clips (``args.objects``) and the agreement clips; variants
    not started by ``deadline`` (a ``time.perf_counter()`` value) are skipped, saying so."""
    config = MemoryConfig(memory_mode=args.mode)
    h, w = args.size
    timed = {n: synthetic_clip(args.frames, h, w, n) for n in args.objects}
    agree = {"long": synthetic_clip(args.agree_frames, *args.agree_size, 2)}
    if args.fixture_side:
        agree["fixture"] = fixture_clip(args.fixture_side)
    reference, rows = {}, []
    for name, precision, options, skip in variants(args.device, args.variants):
        if skip is None and deadline is not None and time.perf_counter() > deadline and name != "plain":
            skip = "time budget spent"
        row = {"variant": name, "precision": precision, "options": options.to_dict(), "skipped": skip}
        rows.append(row)
        if skip:
            print(f"[skip] {name}: {skip}", flush=True)
            continue
        net = network(args.device, options.channels_last)
        started = time.perf_counter()
        row["runs"], checks = [], {}
        clips = [(f"timed_{n}obj", n, frames, first, True) for n, (frames, first) in timed.items()]
        clips += [(key, first.shape[0], frames, first, False) for key, (frames, first) in agree.items()]
        for key, n, frames, first, is_timed in clips:
            base = reset_peaks(args.device) if is_timed else None
            first_run = key not in reference
            labels, clear, times = run_clip(net, config, args.device, precision, options, frames, first,
                                            keep_clear=first_run)
            if is_timed:
                host, dev = peaks(args.device)
                steady = times[WARMUP:] or times
                row["runs"].append({"objects": n, "fps": len(steady) / sum(steady), "warmup_s": sum(times[:WARMUP]),
                                    "start_host_mib": base, "peak_host_mib": host, "peak_device_mib": dev})
            if first_run:
                reference[key] = (labels, clear)
            checks[key] = agreement(reference[key], labels)
        row["bad_px"] = {k: v[0] for k, v in checks.items()}
        row["differ"] = {k: v[1] for k, v in checks.items()}
        row["pass"] = all(v[0] == 0 for v in checks.values())
        row["seconds"] = time.perf_counter() - started
        print(f"[done] {name}: {[round(r['fps'], 3) for r in row['runs']]} fps, bad px "
              f"{sum(row['bad_px'].values())} ({row['seconds']:.0f} s)", flush=True)
    return rows


def print_table(rows, objects):
    plain = next(r for r in rows if r["variant"] == "plain")
    base = {r["objects"]: r["fps"] for r in plain["runs"]}
    head = f"{'variant':14} {'prec':4} {'options':46}"
    for n in objects:
        head += f" {f'fps {n}obj':>9} {'x plain':>7}"
    head += f" {'host MiB (run)':>14} {'dev MiB':>7} {'bad px':>6} {'differ':>8} {'agree':>5}"
    print(head)
    for r in rows:
        if r["skipped"]:
            continue
        line = f"{r['variant']:14} {r['precision']:4} {describe(EngineOptions(**r['options'])):46}"
        for run in r["runs"]:
            line += f" {run['fps']:9.3f} {run['fps'] / base[run['objects']]:7.2f}"
        host = max(run["peak_host_mib"] for run in r["runs"])
        grown = max(run["peak_host_mib"] - run["start_host_mib"] for run in r["runs"])
        dev = [run["peak_device_mib"] for run in r["runs"] if run["peak_device_mib"] is not None]
        line += f" {host:6.0f} (+{grown:5.0f}) {max(dev) if dev else float('nan'):7.0f}"
        line += f" {sum(r['bad_px'].values()):6} {100 * max(r['differ'].values()):7.4f}% {'PASS' if r['pass'] else 'FAIL':>5}"
        print(line)
    passing = [r for r in rows if not r["skipped"] and r["pass"]]
    speed = {r["variant"]: min(run["fps"] / base[run["objects"]] for run in r["runs"]) for r in passing}
    best = max(speed, key=speed.get)
    print(f"fastest passing variant (by its worst speed-up over plain): {best} ({speed[best]:.2f}x)")
    return best


def long_run(args, budget_s=None):
    """One object over ``--long`` frames (a 100-frame clip played in a loop): FPS over each
    stretch and peak memory at 10%, 50% and 100% of the run. With ``budget_s`` a variant stops
    when its time is up and says how far it got."""
    h, w = args.size
    frames, first = synthetic_clip(100, h, w, 1)
    config = MemoryConfig(memory_mode=args.mode).with_usage_rule(args.long)
    checkpoints = sorted({max(1, args.long // 10), max(1, args.long // 2), args.long})
    out = []
    for name, precision, options, skip in variants(args.device, args.variants or ["default"]):
        if skip or (name == "plain" and "plain" not in args.variants):
            continue
        engine = make_engine(network(args.device, options.channels_last), config, args.device, precision, options, 1)
        reset_peaks(args.device)
        stretch, frames_in, points, began = 0.0, 0, [], time.perf_counter()
        for t, _, sec, _ in propagate(engine, lambda i: frames[i % len(frames)], args.long, first):
            if t >= WARMUP:
                stretch, frames_in = stretch + sec, frames_in + 1
            out_of_time = budget_s is not None and time.perf_counter() - began > budget_s
            if t + 1 in checkpoints or out_of_time:
                host, dev = peaks(args.device)
                points.append({"frame": t + 1, "fps": frames_in / stretch if stretch else float("nan"),
                               "peak_host_mib": host, "peak_device_mib": dev, **engine.memory.sizes()})
                p = points[-1]
                print(f"{name:12} {precision:4} {h}x{w} frame {t + 1:6}: {p['fps']:8.2f} fps  host peak {host:7.0f} MiB"
                      f"  device peak {dev if dev is not None else float('nan'):7.0f} MiB  memory {engine.memory.sizes()}"
                      + ("  (time budget spent: stopped here)" if out_of_time and t + 1 not in checkpoints else ""),
                      flush=True)
                stretch, frames_in = 0.0, 0
            if out_of_time:
                break
        out.append({"variant": name, "precision": precision, "options": options.to_dict(), "size": [h, w],
                    "points": points})
        del engine
        gc.collect()
    return out


def machine(device):
    info = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "load_avg": os.getloadavg()}
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def build_parser():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--frames", type=int, default=30, help="timed clip length (default 30)")
    ap.add_argument("--objects", type=int, nargs="+", default=[1, 3])
    ap.add_argument("--size", type=int, nargs=2, default=[480, 854], metavar=("H", "W"))
    ap.add_argument("--agree-frames", type=int, default=None,
                    help="long synthetic agreement clip length (default: 1000 on CUDA, 100 on CPU)")
    ap.add_argument("--agree-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                    help="its size (default: --size on CUDA, 240 432 on CPU)")
    ap.add_argument("--fixture-side", type=int, default=480,
                    help="fixture clip's short side (default 480; 0 leaves the fixture clip out)")
    ap.add_argument("--variants", nargs="*", default=[], help="only these (plain is always run)")
    ap.add_argument("--mode", default=MemoryConfig().memory_mode, choices=list(MEMORY_MODES))
    ap.add_argument("--long", type=int, default=0, help="long-run mode: this many frames, 1 object")
    ap.add_argument("--threads", type=int, default=0,
                    help="CPU threads (default: torch's); 1 is steadier on a machine others are using")
    ap.add_argument("--json")
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = torch.device(args.device).type == "cuda"
    if args.agree_frames is None:
        args.agree_frames = 1000 if cuda else 100
    if args.agree_size is None:
        args.agree_size = args.size if cuda else [240, 432]
    print(f"machine: {machine(args.device)}", flush=True)
    if args.long:
        result = {"machine": machine(args.device), "args": vars(args), "long": long_run(args)}
    else:
        rows = bench(args)
        best = print_table(rows, args.objects)
        result = {"machine": machine(args.device), "args": vars(args), "variants": rows, "fastest_passing": best}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
