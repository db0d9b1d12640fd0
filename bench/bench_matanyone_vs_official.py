"""Our MatAnyone propagation beside the official MatAnyone inference: same machine, same generated
weights, same frames, one run; and the official API's host memory per frame.

    python bench/bench_matanyone_vs_official.py --official /path/to/MatAnyone-checkout
        [--frames 6] [--size 480 854] [--threads 2] [--official-autocast]
        [--memory-frames 4 12] [--json out.json]

Run it with a Python that has the official code's own requirements (hydra-core, omegaconf,
opencv, torchvision, huggingface_hub, imageio with ffmpeg) besides ours; the official package is
imported from ``--official`` (a checkout of pq-yang/MatAnyone); nothing of it is part of this
project. Both sides load the same generated weights (the fixture rule, ``synthetic_matanyone_
state_dict``) into the released single-object layout.

1. Time per frame (lockstep, as ``bench_vs_official.py``: each side in its own thread, the
   threads taking turns frame by frame, only the running side's wall and process CPU time
   counted). One object: a disc's mask on frame 0. The official runs its script's loop
   (``inference_matanyone.py`` / ``InferenceCore.process_video``): the mask closed with its 10 x 10
   ellipse, the mask step, 11 first-frame predictions (its 10 prepended copies of frame 0 plus
   frame 0), then one ``step`` per frame, the alpha copied to the host; fp32 without autocast
   (the parity fixtures' setting; ``--official-autocast`` adds its script's default, bf16
   autocast on the CPU, as a third side). Ours runs ``Session.propagate`` (what the nodes and the
   command line run) at internal size 480 (854x480 passes unresized; other sizes run unresized,
   like the official) with the official's memory
   settings (no long-term memory, 5 frames, memory every 5, top-k 30). Frame 0 (mask, closing and
   warm-up on both sides) is reported on its own; ms/frame is the mean over the other frames.
   Agreement: max and mean |alpha ours - alpha official| over all frames.
2. Host memory of the official API (``--memory-frames N1 N2``): ``InferenceCore.process_video``
   over a folder of N1, then N2 generated 854x480 frames, each in a fresh process; the peak RSS
   difference per frame is its growth (it holds every frame as float32 and every output until the
   end). For ours at 1k and 5k frames see ``bench_long_shot.py --family matanyone``.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_vs_official import clocks, make_clip, run_in_lockstep  # noqa: E402
from host_memory import peak_rss_mib  # noqa: E402
from memvos_core.config import MemoryConfig  # noqa: E402
from memvos_core.families.matanyone.synthetic import synthetic_matanyone_state_dict  # noqa: E402
from memvos_core.runtime.model import load_model  # noqa: E402
from memvos_core.session import Session  # noqa: E402
from memvos_core.session.blend import QUANT  # noqa: E402

MIB = 1024 * 1024
N_WARMUP = 10  # the official script's prepended copies of frame 0


# ------------------------------------------------------------------------------ official
def load_official(path):
    """The official package from a checkout: (network class, core class, closing functions, config)."""
    path = os.path.abspath(path)
    config_dir = os.path.join(path, "matanyone", "config")
    if not os.path.isfile(os.path.join(path, "matanyone", "inference", "inference_core.py")):
        raise SystemExit(f"--official {path}: not a MatAnyone checkout (no matanyone/inference/inference_core.py)")
    sys.path.insert(0, path)
    from hydra import compose, initialize_config_dir
    from matanyone.inference.inference_core import InferenceCore
    from matanyone.model.matanyone import MatAnyone
    from matanyone.utils.inference_utils import gen_dilate, gen_erosion
    with initialize_config_dir(version_base="1.3.2", config_dir=config_dir, job_name="bench"):
        # Its encoders would start from downloaded ImageNet weights that the checkpoint then
        # overwrites: its own switch skips the download (no network here; same result).
        cfg = compose(config_name="eval_matanyone_config", overrides=["+model.pretrained_resnet=false"])
    return MatAnyone, InferenceCore, (gen_dilate, gen_erosion), cfg


def official_network(official, state_dict):
    MatAnyone, _, _, cfg = official
    network = MatAnyone(cfg, single_object=True).eval()
    network.load_weights({k: v.clone() for k, v in state_dict.items()})
    return network


def official_work(official, state_dict, frames, mask0, autocast):
    """The script's loop; returns the alphas (``[H,W]`` float32 on the host)."""
    _, InferenceCore, (gen_dilate, gen_erosion), cfg = official
    network = official_network(official, state_dict)

    def work(runner):
        core = InferenceCore(network, cfg=cfg, device="cpu")
        mask = (mask0.numpy() * 255).astype(np.uint8)
        mask = torch.from_numpy(gen_erosion(gen_dilate(mask, 10, 10), 10, 10)).float()
        out = []
        with torch.amp.autocast("cpu", enabled=autocast):
            for t, frame in enumerate(frames):
                image = frame.permute(2, 0, 1).float().div(255)
                if t == 0:
                    core.step(image, mask, objects=[1])
                    for _ in range(N_WARMUP + 1):
                        prob = core.step(image, first_frame_pred=True)
                else:
                    prob = core.step(image)
                alpha = core.output_prob_to_mask(prob).float().cpu()
                stopped = clocks()
                out.append(alpha)
                runner.frame_done(stopped)
        return out
    return work


# ----------------------------------------------------------------------------------- ours
def ours_work(state_dict, frames, mask0, internal_size):
    model = load_model(dict(state_dict), device="cpu", precision="fp32")
    config = MemoryConfig(memory_mode="xmem", top_k=30, mem_every=5, stagger_updates=5, enable_long_term=False,
                          max_mem_frames=5)

    def work(runner):
        session = Session(model, config, internal_size=internal_size)
        session = session.add_label_map(0, frames[0], mask0.to(torch.uint8))
        _, result = session.propagate(frames, direction="forward", progress=lambda done, total: runner.frame_done())
        # The stored alpha (unresized here), not ``probabilities``: at source size a keyframe's
        # frame shows its mask as painted, and the official's frame 0 is its warmed-up alpha.
        return [result.internal(t)[0].float() / QUANT for t in result.frame_indices]
    return work


# ---------------------------------------------------------------------------------- time
def bench_time(official, state_dict, args):
    torch.set_num_threads(args.threads)
    frames, labels0 = make_clip(args.frames, *args.size, 1)
    mask0 = (labels0 == 1).float()
    works = {"official fp32": official_work(official, state_dict, frames, mask0, False),
             "ours fp32": ours_work(state_dict, frames, mask0, min(args.size))}
    if args.official_autocast:
        works["official bf16 autocast"] = official_work(official, state_dict, frames, mask0, True)
    runners = run_in_lockstep(works)
    reference = runners["official fp32"].result
    rows = {}
    for name, r in runners.items():
        diff = torch.stack([(a - b).abs() for a, b in zip(r.result, reference)])
        rows[name] = {"first_frame_s": r.times[0], "first_frame_cpu_s": r.cpu_times[0],
                      "ms_per_frame": 1000 * sum(r.times[1:]) / len(r.times[1:]),
                      "cpu_ms_per_frame": 1000 * sum(r.cpu_times[1:]) / len(r.cpu_times[1:]),
                      "frames": len(r.times), "max_dalpha": float(diff.max()), "mean_dalpha": float(diff.mean())}
    base = rows["official fp32"]
    print(f"\n1. {args.size[1]}x{args.size[0]}, 1 object, {args.frames} frames, {args.threads} torch threads "
          "(frame 0 = mask + warm-up; ms/frame over frames 1..)")
    print("| side | frame 0 s (CPU s) | ms/frame | CPU ms/frame | CPU vs official fp32 | max / mean |Δalpha| vs "
          "official fp32 |")
    print("|---|---|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['first_frame_s']:.1f} ({row['first_frame_cpu_s']:.1f}) | {row['ms_per_frame']:.0f} | "
              f"{row['cpu_ms_per_frame']:.0f} | {base['cpu_ms_per_frame'] / row['cpu_ms_per_frame']:.2f}x | "
              f"{row['max_dalpha']:.1e} / {row['mean_dalpha']:.1e} |", flush=True)
    return rows


# -------------------------------------------------------------------------------- memory
def official_memory_child(args):
    """One process: ``process_video`` over ``--memory-child`` frames; prints the peak RSS."""
    from PIL import Image
    official = load_official(args.official)
    _, InferenceCore, _, cfg = official
    n = args.memory_child
    state_dict = synthetic_matanyone_state_dict()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as work:
        frames, labels0 = make_clip(n, *args.size, 1)
        os.makedirs(os.path.join(work, "shot"))
        for t, frame in enumerate(frames):
            Image.fromarray(frame.numpy()).save(os.path.join(work, "shot", f"{t:05d}.png"))
        Image.fromarray((labels0.numpy() == 1).astype(np.uint8) * 255).save(os.path.join(work, "mask.png"))
        network = official_network(official, state_dict)
        del frames, state_dict
        before = peak_rss_mib()
        core = InferenceCore(network, cfg=cfg, device="cpu")
        with torch.inference_mode():
            core.process_video(os.path.join(work, "shot"), os.path.join(work, "mask.png"),
                               output_path=os.path.join(work, "out"), n_warmup=N_WARMUP)
        peak = peak_rss_mib()
    print(json.dumps({"frames": n, "peak_rss_mib": peak, "before_mib": before}))


def bench_official_memory(args):
    rows = []
    for n in args.memory_frames:
        cmd = [sys.executable, os.path.abspath(__file__), "--official", args.official, "--memory-child", str(n),
               "--size", *map(str, args.size), "--threads", str(args.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    (a, b) = rows[0], rows[-1]
    growth = (b["peak_rss_mib"] - a["peak_rss_mib"]) / (b["frames"] - a["frames"])
    print(f"\n2. Official InferenceCore.process_video, {args.size[1]}x{args.size[0]} frames from a folder, peak RSS")
    print("| frames | peak RSS MiB | before the video MiB |")
    print("|---|---|---|")
    for row in rows:
        print(f"| {row['frames']} | {row['peak_rss_mib']:.0f} | {row['before_mib']:.0f} |")
    print(f"growth: {growth:.1f} MiB per frame (-> {growth * 1000 / 1024:.1f} GiB at 1k frames, "
          f"{growth * 5000 / 1024:.1f} GiB at 5k)", flush=True)
    return {"rows": rows, "mib_per_frame": growth}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", required=True, help="path of a pq-yang/MatAnyone checkout")
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--size", type=int, nargs=2, default=[480, 854], metavar=("H", "W"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--official-autocast", action="store_true", help="also the official with bf16 autocast")
    ap.add_argument("--memory-frames", type=int, nargs="*", default=[4, 12],
                    help="official host memory: shot lengths (none: skip)")
    ap.add_argument("--only", default="time,memory")
    ap.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    if args.memory_child:
        return official_memory_child(args)
    info = {"torch": torch.__version__, "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "load_avg_start": os.getloadavg(), "threads": args.threads}
    print(f"machine: {info}", flush=True)
    results = {"machine": info}
    if "time" in args.only:
        state_dict = synthetic_matanyone_state_dict()
        with torch.inference_mode():
            results["time"] = bench_time(load_official(args.official), state_dict, args)
        print(f"load average after the timing: {os.getloadavg()}", flush=True)
    if "memory" in args.only and len(args.memory_frames) >= 2:
        results["official_memory"] = bench_official_memory(args)
    info["load_avg_end"] = os.getloadavg()
    print(f"load average at the end: {info['load_avg_end']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
