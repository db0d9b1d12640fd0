"""SAM 2.1 tiny behind our engine beside Meta's official video predictor: same generated weights
(the SAM 2.1 parity fixture's rule), same JPEG frames, one run. Prints one table.

    python bench/bench_sam2_vs_official.py --official-python /work/venv-h20/bin/python \
        --official-src /path/to/sam2-checkout [--frames 6] [--objects 1 2] [--threads 2] \
        [--long 1000 5000] [--long-size 128] [--only speed,memory] [--json out.json]

* speed: CPU ms per frame at 854x480 (wall and process CPU time; the first two frames, the
  keyframe and one warm-up, do not count), 1 and 2 objects, image size 1024 as released. Ours:
  ``Session.propagate`` as the CLI runs it (keyframes mode, internal size 480, so 854x480 frames
  enter unresized). Official: ``build_sam2_video_predictor`` on the CPU with its defaults,
  ``init_state`` on the JPEG folder (frame loading not counted), ``add_new_mask`` on frame 0 per
  object, ``propagate_in_video``; its hole filling needs its CUDA extension and is skipped, as
  on any CPU.
* memory: our host RSS (and the state our engine holds) after 1k and 5k frames at a small image
  size (frames made on the fly, results not kept); the official state's growth per frame from a
  short run at the same image size: summed bytes of every tensor in its ``inference_state``
  (and its RSS) after 10 and 20 frames.

The official side runs in a process of its own, with its own Python (``--official-python``:
torch, torchvision, hydra-core, iopath; the checkout on its path). Nothing of it is part of this
project; this file's ``official`` mode imports only torch, the checkout and the fixture's
weight rule.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from host_memory import rss_mib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "sam2_parity")
CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
HEIGHT, WIDTH = 480, 854
WARMUP = 2


def clocks():
    return time.perf_counter(), time.process_time()


def per_frame(stamps):
    """Mean (wall, CPU) milliseconds per frame over the frames after the warm-up; ``stamps`` are
    :func:`clocks` at the start and after every frame."""
    steady = stamps[WARMUP:]
    n = len(steady) - 1
    return ((steady[-1][0] - steady[0][0]) / n * 1000, (steady[-1][1] - steady[0][1]) / n * 1000)


def generated_state():
    sys.path.insert(0, FIXTURE)
    import weights_rule
    return weights_rule.generate_state_dict(weights_rule.load_specs(os.path.join(FIXTURE, "keys.json")))


def disc_clip(num_frames, height, width, seed=0):
    """uint8 ``[H,W,3]`` frames with two discs moving over a texture, and frame 0's label map."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(3, height // 8, width // 8, generator=gen)
    base = torch.nn.functional.interpolate(base[None], size=(height, width), mode="bilinear")[0]
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    frames, labels0 = [], torch.zeros(height, width, dtype=torch.uint8)
    for t in range(num_frames):
        frame = base.clone()
        for o in range(2):
            disc = ((xx - (width * (0.2 + 0.25 * o) + 6 * t) % width) ** 2
                    + (yy - height * (0.3 + 0.3 * o)) ** 2) < (height / 8) ** 2
            frame[:, disc] = torch.tensor([0.9, 0.2 + 0.3 * o, 0.1])[:, None]
            if t == 0:
                labels0[disc] = o + 1
        frames.append((frame * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous())
    return frames, labels0


# ----------------------------------------------------------------------------- official side
def tensor_bytes(obj, seen=None):
    """Bytes of every distinct tensor storage reachable from ``obj`` (dicts, lists, tuples)."""
    seen = set() if seen is None else seen
    if isinstance(obj, torch.Tensor):
        storage = obj.untyped_storage()
        key = (storage.data_ptr(), obj.device.type)
        if key in seen:
            return 0
        seen.add(key)
        return storage.nbytes()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple, set)):
        return sum(tensor_bytes(v, seen) for v in obj)
    return 0


def official(args):
    sys.path.insert(0, args.official_src)
    from sam2.build_sam import build_sam2_video_predictor
    torch.set_num_threads(args.threads)
    state = generated_state()
    labels0 = np.array(__import__("PIL.Image", fromlist=["Image"]).open(os.path.join(args.dir, "labels0.png")))
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "speed": {}, "growth": None}

    def predictor(extra):
        p = build_sam2_video_predictor(CONFIG, ckpt_path=None, device="cpu", hydra_overrides_extra=extra)
        p.load_state_dict(state, strict=True)
        return p.eval()

    if "speed" in args.only:
        p = predictor([])
        for n in args.objects:
            st = p.init_state(video_path=os.path.join(args.dir, "jpg"))
            stamps = [clocks()]
            for o in range(1, n + 1):
                p.add_new_mask(st, 0, o, labels0 == o)
            for _ in p.propagate_in_video(st, max_frame_num_to_track=args.frames - 1):
                stamps.append(clocks())
            out["speed"][str(n)] = per_frame(stamps)
            print(f"official, {n} object(s): {out['speed'][str(n)][0]:.0f} ms/frame wall", file=sys.stderr, flush=True)
            del st
        del p
    if "memory" in args.only:
        p = predictor([f"++model.image_size={args.long_size}"])
        st = p.init_state(video_path=os.path.join(args.dir, "jpg"))
        for o in (1, 2):
            p.add_new_mask(st, 0, o, labels0 == o)
        marks = {}
        for k, _ in enumerate(p.propagate_in_video(st, max_frame_num_to_track=20)):
            if k in (10, 20):
                marks[k] = (tensor_bytes(st), rss_mib(), tensor_bytes(st["images"]) if "images" in st else 0)
        out["growth"] = {"image_size": args.long_size, "num_frames": st["num_frames"], "marks": marks}
    json.dump(out, open(args.json, "w"))


# ---------------------------------------------------------------------------------- our side
class MadeFrames:
    """A long shot made frame by frame (nothing kept): the first frame moved a little each time."""

    def __init__(self, n, first):
        self.n, self.first = n, first

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i < 0 or i >= self.n:
            raise IndexError(i)
        return torch.roll(self.first, shifts=(i * 3) % self.first.shape[1], dims=1)


def ours_speed(model, frames, labels0, n, threads):
    from memvos_core.config import MemoryConfig
    from memvos_core.session import Session
    torch.set_num_threads(threads)
    s = Session(model, MemoryConfig(), internal_size=480)
    labels = labels0 * (labels0 <= n)
    s = s.add_label_map(0, frames[0], labels)
    stamps = [clocks()]
    s.propagate(frames, progress=lambda done, total: stamps.append(clocks()))
    return per_frame(stamps)


def ours_memory(model, first, marks, image_size, labels0):
    from memvos_core.config import MemoryConfig
    from memvos_core.session import Session
    s = Session(model, MemoryConfig(image_size=image_size), internal_size=-1)
    s = s.add_label_map(0, first, labels0)
    frames = MadeFrames(max(marks), first)
    seen, start = {}, [rss_mib(), time.perf_counter()]

    def on_final(index, result):
        if index + 1 in marks:
            seen[index + 1] = (rss_mib(), time.perf_counter() - start[1])
            print(f"ours: frame {index + 1}: RSS {seen[index + 1][0]:.1f} MiB", file=sys.stderr, flush=True)

    s2, _ = s.propagate(frames, on_final=on_final, retain=False)
    held = sum(t.numel() * t.element_size() for t in s2.forward_state.tensors.values())
    return start[0], seen, held


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", default="compare", choices=("compare", "official"))
    ap.add_argument("--official-python", default=sys.executable)
    ap.add_argument("--official-src", required=False)
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--objects", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--long", type=int, nargs="+", default=[1000, 5000])
    ap.add_argument("--long-size", type=int, default=128)
    ap.add_argument("--only", default="speed,memory")
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    if args.mode == "official":
        return official(args)
    if not args.official_src:
        ap.error("--official-src: a checkout of facebookresearch/sam2")
    sys.path.insert(0, ROOT)
    from PIL import Image
    from memvos_core.runtime.model import load_model

    load0 = os.getloadavg()[0]
    work = tempfile.mkdtemp(prefix="bench_sam2_")
    frames, labels0 = disc_clip(max(args.frames, 21), HEIGHT, WIDTH)
    os.makedirs(os.path.join(work, "jpg"))
    for t, f in enumerate(frames):
        Image.fromarray(f.numpy()).save(os.path.join(work, "jpg", f"{t:05d}.jpg"), quality=95)
    Image.fromarray(labels0.numpy()).save(os.path.join(work, "labels0.png"))
    # both sides read the same decoded JPEGs
    frames = [torch.from_numpy(np.array(Image.open(os.path.join(work, "jpg", f"{t:05d}.jpg")))) for t in range(args.frames)]
    result = {"machine": f"{os.cpu_count()} CPUs", "load_start": load0, "threads": args.threads}

    off_json = os.path.join(work, "official.json")
    cmd = [args.official_python, os.path.abspath(__file__), "--mode", "official", "--official-src", args.official_src,
           "--dir", work, "--json", off_json, "--frames", str(args.frames), "--threads", str(args.threads),
           "--long-size", str(args.long_size), "--only", args.only, "--objects", *map(str, args.objects)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": args.official_src})
    result["official"] = json.load(open(off_json))
    print(f"official side: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)

    model = load_model(generated_state(), name="sam2.1_hiera_tiny.pt")
    if "speed" in args.only:
        result["ours_speed"] = {}
        for n in args.objects:
            result["ours_speed"][str(n)] = ours_speed(model, frames, labels0, n, args.threads)
            print(f"ours, {n} object(s): {result['ours_speed'][str(n)][0]:.0f} ms/frame wall", file=sys.stderr, flush=True)
    if "memory" in args.only:
        small = torch.nn.functional.interpolate(frames[0].permute(2, 0, 1)[None].float(), size=(96, 160),
                                                mode="area")[0].round().to(torch.uint8).permute(1, 2, 0)
        small_labels = torch.nn.functional.interpolate(labels0[None, None].float(), size=(96, 160), mode="nearest")[0, 0]
        rss0, seen, held = ours_memory(model, small, set(args.long), args.long_size, small_labels.to(torch.uint8))
        result["ours_memory"] = {"rss_start": rss0, "marks": seen, "held_bytes": held, "frame_hw": [96, 160]}
    result["load_end"] = os.getloadavg()[0]
    if args.json:
        json.dump(result, open(args.json, "w"), indent=1)
    report(result, args)


def report(r, args):
    print(f"\nSAM 2.1 tiny, generated weights, CPU, {r['threads']} torch threads, {r['machine']}, load average "
          f"{r['load_start']:.1f} at the start, {r['load_end']:.1f} at the end")
    if "ours_speed" in r:
        print(f"\n| 854x480, image size 1024, frames {args.frames} (first {WARMUP} not counted) | ours wall ms/frame "
              "| ours CPU ms/frame | official wall ms/frame | official CPU ms/frame |")
        print("|---|---|---|---|---|")
        for n in args.objects:
            a, b = r["ours_speed"][str(n)], r["official"]["speed"][str(n)]
            print(f"| {n} object(s) | {a[0]:.0f} | {a[1]:.0f} | {b[0]:.0f} | {b[1]:.0f} |")
    if "ours_memory" in r:
        m = r["ours_memory"]
        print(f"\nours, 2 objects, image size {args.long_size}, {m['frame_hw'][1]}x{m['frame_hw'][0]} frames: "
              f"RSS {m['rss_start']:.0f} MiB before the run; engine state held at the end "
              f"{m['held_bytes'] / 2**20:.2f} MiB")
        print("| frames | RSS MiB | seconds |\n|---|---|---|")
        for k, (rss, sec) in sorted(m["marks"].items(), key=lambda kv: int(kv[0])):
            print(f"| {k} | {rss:.0f} | {sec:.0f} |")
        g = r["official"]["growth"]
        (b10, rss10, img10), (b20, rss20, _) = g["marks"]["10"], g["marks"]["20"]
        print(f"\nofficial, 2 objects, image size {g['image_size']}, a {g['num_frames']}-frame video: "
              f"inference_state tensors {b10 / 2**20:.1f} MiB after 10 frames, {b20 / 2**20:.1f} MiB after 20 "
              f"(of which the preloaded frames {img10 / 2**20:.1f} MiB): {(b20 - b10) / 10 / 1024:.0f} KiB per "
              f"tracked frame, plus {img10 / g['num_frames'] / 1024:.0f} KiB per frame of the video loaded "
              f"upfront; RSS {rss10:.0f} -> {rss20:.0f} MiB")


if __name__ == "__main__":
    main()
