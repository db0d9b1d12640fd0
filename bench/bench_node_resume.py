"""Time the Propagate node saves by resuming after a cancel, against starting over.

    python bench/bench_node_resume.py [--frames 60] [--size 32] [--at 0.5]

One synthetic shot (tests/comfy_stand_ins.tiny_clip, two objects, generated weights), the node
run three ways in ComfyUI stand-ins: uninterrupted; cancelled at ``--at`` of the work then queued
again (the second run resumes from the checkpoint in ComfyUI's temp folder); the same second run
when nothing is kept (what the node did before: it starts over). Prints the times side by side,
and checks the resumed masks equal the uninterrupted run's.
"""
import argparse
import importlib
import os
import shutil
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from comfy_stand_ins import ComfyStandIns, Interrupted, link_weights, tiny_clip  # noqa: E402
from pack_loader import pack_for_tests  # noqa: E402


def run(frames=60, size=32, at=0.5, height=96, width=160):
    root = tempfile.mkdtemp(prefix="memvos-bench-resume-")
    stand_ins = ComfyStandIns(root)
    old = {name: sys.modules.get(name) for name in stand_ins.modules}
    sys.modules.update(stand_ins.modules)
    try:
        pack = pack_for_tests()
        nodes = pack.NODE_CLASS_MAPPINGS
        synthetic = importlib.import_module(pack.__name__ + ".memvos_core.network.synthetic")
        weights = os.path.join(root, "synthetic.pth")
        torch.save(synthetic.synthetic_state_dict(), weights)
        link_weights(weights, os.path.join(stand_ins.dirs["models"], "memvos"))
        clip, masks = tiny_clip(num_frames=frames, height=height, width=width)
        model = nodes["MemVOSLoadModel"]().load("XMem.pth", "cpu", "fp32")[0]
        (session,) = nodes["MemVOSNewSession"]().create(model, internal_size=size)
        for object_id in (1, 2):
            (session,) = nodes["MemVOSAddAnnotation"]().add(session, clip, masks[object_id], 0, object_id)

        def propagate():
            started, cpu = time.perf_counter(), time.process_time()
            out = nodes["MemVOSPropagate"]().propagate(session, clip, "forward", 0, -1, 0, 24.0,
                                                       memvos_linked_outputs="")["result"]
            return out, (time.perf_counter() - started, time.process_time() - cpu)

        whole, t_whole = propagate()
        del whole  # its folder goes with it: the next run starts afresh
        stand_ins.checks, stand_ins.interrupt_after = 0, 2 * int(frames * at)
        started, cpu = time.perf_counter(), time.process_time()
        try:
            propagate()
        except Interrupted:
            pass
        t_cancelled = (time.perf_counter() - started, time.process_time() - cpu)
        stand_ins.interrupt_after = None
        resumed, t_resumed = propagate()
        fresh, t_fresh = propagate()  # the resumed results hold their folder: this one starts over
        same = torch.equal(resumed[1].chunk(0, frames), fresh[1].chunk(0, frames))
        return {"whole": t_whole, "cancelled": t_cancelled, "resumed": t_resumed, "fresh": t_fresh, "same": same}
    finally:
        for name, module in old.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        shutil.rmtree(root, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--size", type=int, default=32, help="internal size (shorter side) of the network")
    ap.add_argument("--at", type=float, default=0.5, help="fraction of the work done when cancel is pressed")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    r = run(args.frames, args.size, args.at)
    print(f"{'run':<34} {'wall s':>7} {'CPU s':>7}")
    for name, key in (("uninterrupted", "whole"), (f"cancelled at {args.at:.0%}", "cancelled"),
                      ("queued again: resumes", "resumed"), ("queued again: starts over (before)", "fresh")):
        print(f"{name:<34} {r[key][0]:>7.1f} {r[key][1]:>7.1f}")
    (wall, cpu), (fresh_wall, fresh_cpu) = r["resumed"], r["fresh"]
    print(f"time saved by resuming: {fresh_wall - wall:.1f} s wall ({1 - wall / fresh_wall:.0%}), "
          f"{fresh_cpu - cpu:.1f} s CPU ({1 - cpu / fresh_cpu:.0%}); resumed masks equal an uninterrupted "
          f"run's: {r['same']}; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
