"""Host memory of a long shot through the nodes: Load Video -> the pack's nodes -> Save Masks.

    python bench/bench_long_shot_nodes.py [--frames 2000] [--width 854 --height 480] [--size 64] [--graph refine]

A synthetic shot (two discs moving over a textured background) is encoded as an mp4 one frame at a
time, then an API prompt runs in the test suite's executor (ComfyUI's core nodes as stand-ins, its
cache rules, the pack's on-prompt hook): LoadVideo -> Load Model -> New Session -> 2 x (Load Image
(as Mask) -> Add Annotation Frame) -> Propagate -> Refine Masks -> Save Masks (16-bit PNGs + mp4), and
Composite (overlay preview) of the refined masks (``--graph propagate``: without Refine and
Composite). The process's RSS
is read at every progress tick (a frame of the running node); the table gives it at frame
milestones of Propagate and of Save Masks, with the growth since the first milestone, and a
thread samples the peak in between: per node (start, peak, end) and, at the highest sample, the
calls the prompt was in (how Refine's feather was found taking 2 GiB, twice its 1 GiB budget). ``--size`` is the network's internal size (the
shorter side): a CPU needs a small one; the source video keeps ``--width`` x ``--height``.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import torch
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

from bench_session_memory import state_bytes  # noqa: E402
from host_memory import rss_mib  # noqa: E402
from comfy_stand_ins import ComfyStandIns, link_weights  # noqa: E402
from pack_loader import pack_for_tests  # noqa: E402
from workflow_executor import Executor  # noqa: E402


def shot_frame(t, height, width):
    """uint8 ``[H,W,3]`` frame t and its label map (objects 1 and 2)."""
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), np.float32)
    img[..., 0] = 0.35 + 0.15 * np.sin(xx / 17.0 + t * 0.05)
    img[..., 1] = 0.40 + 0.15 * np.cos(yy / 13.0 - t * 0.03)
    img[..., 2] = 0.45
    labels = np.zeros((height, width), np.uint8)
    radius = height / 6
    for object_id, (cx, cy, colour) in {1: (width * 0.3 + 40 * np.sin(t / 50), height * 0.45, (0.9, 0.3, 0.1)),
                                        2: (width * 0.7 - 40 * np.sin(t / 40), height * 0.55, (0.1, 0.4, 0.9))}.items():
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 < radius ** 2
        img[disc] = colour
        labels[disc] = object_id
    return (img * 255).round().astype(np.uint8), labels


def write_shot(pack, folder, frames, height, width, fps):
    """The shot as input/bench_shot.mp4 and the frame-0 masks as PNGs (what an artist paints)."""
    VideoWriter = pack.memvos_core.media_io.video_writer.VideoWriter
    path = os.path.join(folder, "bench_shot.mp4")
    with VideoWriter(path, fps, "h264", {"preset": "ultrafast"}) as writer:
        for t in range(frames):
            writer.write(shot_frame(t, height, width)[0])
    labels = shot_frame(0, height, width)[1]
    for object_id in (1, 2):
        Image.fromarray(((labels == object_id) * 255).astype(np.uint8)).save(
            os.path.join(folder, f"bench_mask_obj{object_id}.png"))
    return path


REFINE = {"temporal_radius": 1, "binarize": False, "threshold": 0.5, "fill_holes": True, "remove_islands_px": 0,
          "grow_px": 2, "edge_radius": 0, "feather_px": 1.0, "max_hole_px": 0, "edge_eps": 0.001,
          "temporal_color_sigma": 0.05}
COMPOSITE = {"mode": "overlay", "object_ids": "", "opacity": 0.5, "outline_px": 2, "draw_ids": False,
             "background_color": "#00ff00", "grow_px": 8, "feather_px": 4.0, "preview_fps": 24.0}
# stage name -> node id in the prompt
STAGES = {"propagate": (("Propagate", "8"), ("Save Masks", "9")),
          "refine": (("Propagate", "8"), ("Refine", "10"), ("Save Masks", "9"), ("Composite", "11"))}


def prompt(size, prefix, max_long_term=10000, graph="refine"):
    """The API prompt; ``graph="refine"`` adds Refine Masks (its masks to Save Masks) and Composite
    (overlay preview of the refined masks, no output connected)."""
    nodes = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": "bench_shot.mp4"}},
        "2": {"class_type": "MemVOSLoadModel", "inputs": {"weights": "XMem.pth", "device": "cpu", "precision": "fp32"}},
        "3": {"class_type": "MemVOSNewSession", "inputs": {
            "model": ["2", 0], "memory_mode": "keyframes", "internal_size": size, "mem_every": 5, "top_k": 30,
            "enable_long_term": True, "deep_update_every": -1, "min_mid_term_frames": 5, "max_mid_term_frames": 10,
            "num_prototypes": 128, "max_long_term_elements": max_long_term, "long_term_count_usage": True,
            "antialias": False, "tta_flip": False, "tta_scales": ""}},
        "4": {"class_type": "LoadImageMask", "inputs": {"image": "bench_mask_obj1.png", "channel": "red"}},
        "5": {"class_type": "MemVOSAddAnnotation", "inputs": {"session": ["3", 0], "frames": ["1", 0], "mask": ["4", 0],
                                                              "frame_index": 0, "object_id": 1}},
        "6": {"class_type": "LoadImageMask", "inputs": {"image": "bench_mask_obj2.png", "channel": "red"}},
        "7": {"class_type": "MemVOSAddAnnotation", "inputs": {"session": ["5", 0], "frames": ["1", 0], "mask": ["6", 0],
                                                              "frame_index": 0, "object_id": 2}},
        "8": {"class_type": "MemVOSPropagate", "inputs": {
            "session": ["7", 0], "frames": ["1", 0], "direction": "forward", "start_frame": 0, "end_frame": -1,
            "first_frame_index": 0, "preview_fps": 24.0, "rerun": "span"}},
        "9": {"class_type": "MemVOSSaveMasks", "inputs": {
            "masks": ["8", 1], "filename_prefix": prefix, "content": "matte", "object_ids": "",
            "png_sequence": True, "video": "mp4 (h264)", "fps": 0.0}},
    }
    if graph == "refine":
        nodes["10"] = {"class_type": "MemVOSRefine", "inputs": {"masks": ["8", 1], "frames": ["1", 0], **REFINE}}
        nodes["11"] = {"class_type": "MemVOSComposite", "inputs": {"frames": ["1", 0], "masks": ["10", 0], **COMPOSITE}}
        nodes["9"]["inputs"]["masks"] = ["10", 0]
    return nodes


def held_bytes(result):
    """Bytes of tensors a propagation result keeps in RAM (the per-frame results, unless the core
    keeps them on disk)."""
    total = 0
    for value in vars(result).values():
        if isinstance(value, dict):
            total += sum(t.numel() * t.element_size() for t in value.values() if torch.is_tensor(t))
    return total


class ProgressLog(list):
    """Stands in for the stand-ins' progress list: every progress tick (a frame of the running
    node) also records the time, the node and the process's RSS."""

    def __init__(self, executor, echo_every=0):
        super().__init__()
        self.executor, self.samples, self.echo_every = executor, [], echo_every

    def append(self, item):
        super().append(item)
        node = self.executor.executed[-1] if self.executor.executed else None
        self.samples.append((time.perf_counter(), node, item[0], item[1], rss_mib()))
        if self.echo_every and item[0] % self.echo_every == 0:
            print(f"  node {node}: frame {item[0]}/{item[1]}, RSS {self.samples[-1][4]:.0f} MiB", flush=True)


class NodeStarts(list):
    """Stands in for the executor's list of executed nodes: records the RSS as each node starts
    (the previous one's end)."""

    def __init__(self):
        super().__init__()
        self.rss = []

    def append(self, node):
        super().append(node)
        self.rss.append((node, rss_mib()))


class PeakSampler(threading.Thread):
    """The highest RSS, sampled every ``period`` seconds (between ticks too: previews, encoding),
    overall and per running node (``executor.executed[-1]``), with each node's RSS when it started."""

    def __init__(self, executor=None, period=0.2):
        super().__init__(daemon=True)
        self.period, self.peak, self.stop = period, 0.0, threading.Event()
        self.executor, self.by_node, self.first = executor, {}, {}
        self.main, self.where = threading.main_thread().ident, []

    def run(self):
        while not self.stop.is_set():
            rss = rss_mib()
            if rss > self.peak:  # what the prompt's thread was doing at the highest RSS so far
                self.where = _stack(sys._current_frames().get(self.main))
            self.peak = max(self.peak, rss)
            executed = getattr(self.executor, "executed", None)
            if executed:
                self.first.setdefault(executed[-1], rss)
                self.by_node[executed[-1]] = max(self.by_node.get(executed[-1], 0.0), rss)
            self.stop.wait(self.period)


def _stack(frame, depth=8):
    """The innermost ``depth`` calls of ``frame`` in the pack's own files, as ``file:line function``."""
    calls = []
    while frame is not None and len(calls) < depth:
        code = frame.f_code
        if code.co_filename.startswith(ROOT) and "/bench/" not in code.co_filename:
            calls.append(f"{os.path.relpath(code.co_filename, ROOT)}:{frame.f_lineno} {code.co_name}")
        frame = frame.f_back
    return calls


def milestones(samples, node, total, step):
    """The first sample at or past each ``step`` frames of ``node`` (and its last one). A node
    whose bar counts the frames more than once (Refine: the refinement, then its preview) is
    sampled on its first count."""
    rows, wanted = [], list(range(step, total + 1, step)) or [total]
    if wanted[-1] != total:
        wanted.append(total)
    mine = [s for s in samples if s[1] == node and s[3] % total == 0]
    for frame in wanted:
        hit = next((s for s in mine if s[2] >= frame), None)
        if hit is not None:
            rows.append((frame, hit[4], hit[0]))
    return rows


def run(frames=2000, height=480, width=854, size=64, fps=24.0, step=250, keep=None, quiet=False, threads=1,
        max_long_term=10000, graph="refine", weights_file=None):
    """Run the bench; returns ``{"rows": [(stage, frame, rss, growth, s)], "outputs": ..., "dirs": ...}``.
    One torch thread by default: on a shared, busy CPU two threads spin against each other (a
    12-frame run took 79 s with 2 threads, 5 s with 1, at load 18 on 2 cores). ``weights_file``: the
    generated XMem weights already saved (default: made in a child process)."""
    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)
    root = keep or tempfile.mkdtemp(prefix="memvos-bench-")
    stand_ins = ComfyStandIns(root)
    old = {name: sys.modules.get(name) for name in stand_ins.modules}
    sys.modules.update(stand_ins.modules)
    try:
        pack = pack_for_tests()
        pack.nodes.linked_outputs.install(pack.NODE_CLASS_MAPPINGS)
        weights = weights_file or os.path.join(stand_ins.dirs["models"], "synthetic.pth")
        if weights_file is None:
            # Made in another process: weights made here stayed in this one's allocator, and the RSS
            # at the prompt's start was 280 to 470 MiB depending on what reused them.
            subprocess.run([sys.executable, "-c", "import sys, torch; sys.path.insert(0, sys.argv[1]); from "
                            "memvos_core.network.synthetic import synthetic_state_dict as s; "
                            "torch.save(s(), sys.argv[2])", ROOT, weights], check=True)
        link_weights(weights, os.path.join(stand_ins.dirs["models"], "memvos"))
        started = time.perf_counter()
        write_shot(pack, stand_ins.dirs["input"], frames, height, width, fps)
        if not quiet:
            print(f"shot: {frames} frames {width}x{height} mp4 written in {time.perf_counter() - started:.0f} s; "
                  f"internal size {size}; RSS {rss_mib():.0f} MiB", flush=True)
        executor = Executor(pack.NODE_CLASS_MAPPINGS, {})
        executor.executed = NodeStarts()
        stand_ins.progress = log = ProgressLog(executor, 0 if quiet else step)
        sampler = PeakSampler(executor)
        sampler.start()
        started, cpu_started = time.perf_counter(), time.process_time()
        start_rss = rss_mib()
        try:
            outputs, ui = executor.run(prompt(size, "bench/matte", max_long_term, graph))
        finally:
            sampler.stop.set()
            sampler.join()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        stage_rows = []  # (stage, RSS when it started, its peak, RSS at its last tick)
        for stage, node in STAGES[graph]:
            ticks = [s[4] for s in log.samples if s[1] == node]
            stage_rows.append((stage, sampler.first.get(node, ticks[0] if ticks else float("nan")),
                               max([sampler.by_node.get(node, 0.0), *ticks]), ticks[-1] if ticks else float("nan")))
        rows = []
        for stage, node in STAGES[graph]:
            found = milestones(log.samples, node, frames, step)
            base = found[0][1] if found else float("nan")
            rows += [(stage, frame, rss, rss - base, t - started) for frame, rss, t in found]
        classes = {node: spec["class_type"] for node, spec in prompt(size, "", max_long_term, graph).items()}
        starts = [(node, classes[node], rss) for node, rss in executor.executed.rss]
        session, masks = outputs["8"][0], outputs["8"][1]
        return {"rows": rows, "stages": stage_rows, "outputs": outputs, "ui": ui, "dirs": stand_ins.dirs, "elapsed": elapsed,
                "peak": max(sampler.peak, max(s[4] for s in log.samples)), "peak_where": sampler.where, "start_rss": start_rss,
                "end_rss": rss_mib(), "threads": threads, "cpu": cpu, "starts": starts,
                "result_bytes": held_bytes(masks.result), "state_bytes": state_bytes(session)}
    finally:
        torch.set_num_threads(threads_before)
        for name, module in old.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--width", type=int, default=854)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--size", type=int, default=64, help="internal size (shorter side) of the network")
    ap.add_argument("--step", type=int, default=250, help="frames between table rows")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--max-long-term", type=int, default=10000,
                    help="long-term memory size in elements (XMem's 10000 is ~6 frames at 480p; at a small "
                         "internal size it takes many more frames to fill, and the memory state grows until then)")
    ap.add_argument("--graph", choices=sorted(STAGES), default="refine",
                    help="refine: Propagate -> Refine Masks -> Save Masks and Composite (default); propagate: "
                         "Propagate -> Save Masks")
    args = ap.parse_args(argv)
    result = run(args.frames, args.height, args.width, args.size, step=args.step, threads=args.threads,
                 max_long_term=args.max_long_term, graph=args.graph)
    print(f"\n{'stage':<11} {'frame':>6} {'RSS MiB':>8} {'growth':>7} {'s':>7}")
    for stage, frame, rss, growth, t in result["rows"]:
        print(f"{stage:<11} {frame:>6} {rss:>8.1f} {growth:>+7.1f} {t:>7.0f}")
    print(f"\n{'stage':<11} {'start MiB':>9} {'peak MiB':>9} {'end MiB':>9}   (RSS while the node ran)")
    for stage, first, peak, last in result["stages"]:
        print(f"{stage:<11} {first:>9.1f} {peak:>9.1f} {last:>9.1f}")
    print("\nRSS as each node started (the previous one's end), MiB:\n  " + ", ".join(
        f"{name} {rss:.0f}" for _node, name, rss in result["starts"]))
    print(f"\nheld at the end: propagation results in RAM {result['result_bytes'] / 2**20:.1f} MiB, session memory "
          f"state {result['state_bytes'] / 2**20:.1f} MiB")
    print(f"RSS through the prompt: start {result['start_rss']:.1f} MiB, peak {result['peak']:.1f} MiB, end "
          f"{result['end_rss']:.1f} MiB (outputs still held, as ComfyUI's cache holds them)")
    print("at the sampled peak the prompt was in (innermost first):\n  " + "\n  ".join(result["peak_where"]))
    print(f"peak RSS {result['peak']:.1f} MiB; whole prompt {result['elapsed']:.0f} s "
          f"({args.frames / result['elapsed']:.1f} frames/s), process CPU {result['cpu']:.0f} s; "
          f"torch threads {result['threads']}; "
          f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
