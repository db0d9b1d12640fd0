"""Click latency of the keyframe editor's click tool: the pack's /memvos/click handler end to end
(prompt check, SAM 2.1 image path, candidate PNGs, JSON), on the CPU, SAM 2.1 tiny with generated
weights at the released image size 1024.

    python bench/bench_click.py [--threads 2] [--repeat 3]

Per frame size: the first click on a frame (the frame's embedding + decoding), the first click
on a frame the editor prepared (``prepare=1``, asked when the click tool meets the frame: the
click finds the embedding cached), a later lone click (three candidates) and a later click set
(3 points + a box, one mask), both on the cached embedding. Weights: the SAM 2.1 parity fixture's rule (tests/fixtures/sam2_parity), saved into a
temporary models folder as the route would find them. Numbers depend on the machine's load.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]  # run as a script: bench/ alone is on the path

from sam2_fixture import generated_state  # noqa: E402  (imports memvos_core)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=3, help="frames (first clicks) and later clicks per size")
    ap.add_argument("--sizes", nargs="+", default=["854x480", "1920x1080"])
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    models = tempfile.mkdtemp(prefix="memvos_bench_click_")
    os.environ["MEMVOS_MODELS_DIR"] = models  # the route's model folder outside ComfyUI
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in generated_state().items()},
              os.path.join(models, "sam2.1_hiera_tiny.safetensors"))
    from pack_loader import pack_for_tests
    pack = pack_for_tests()
    routes, click_masks = pack.nodes.routes, pack.nodes.click_masks

    class Holder:  # stands in for the Keyframes node's output session (no SAM 2.1 model in it)
        model = None

    rows = []
    for size in args.sizes:
        w, h = (int(v) for v in size.split("x"))
        frames = torch.rand(2 * args.repeat + 1, h, w, 3)
        holder = Holder()
        token = routes.publish_shot(frames, holder)

        def timed(frame, prompt):
            t0, c0 = time.perf_counter(), time.process_time()
            query = {"token": token, "frame": str(frame)}
            query.update({"prepare": "1"} if prompt is None else {"prompt": json.dumps(prompt)})
            status, _, body = click_masks.click_response(query)
            assert status == 200, body
            return (time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000

        def prepared_first_click(frame, prompt):
            timed(frame, None)  # the editor's prepare, while the artist looks at the frame
            return timed(frame, prompt)

        lone = {"points": [[w * 0.4, h * 0.5, 1]]}
        several = {"points": [[w * 0.4, h * 0.5, 1], [w * 0.45, h * 0.55, 1], [w * 0.3, h * 0.3, 0]],
                   "box": [w * 0.2, h * 0.2, w * 0.7, h * 0.8]}
        timed(0, lone)  # loads the network once (not a click's cost)
        first = [timed(t, lone) for t in range(1, args.repeat + 1)]
        prepared = [prepared_first_click(t, lone) for t in range(args.repeat + 1, 2 * args.repeat + 1)]
        later_one = [timed(0, lone) for _ in range(args.repeat)]
        later_many = [timed(0, several) for _ in range(args.repeat)]
        median = lambda runs: tuple(statistics.median(r[i] for r in runs) for i in (0, 1))  # noqa: E731
        rows.append((size, median(first), median(prepared), median(later_one), median(later_many)))
        del frames, holder
    print(f"click latency, /memvos/click handler, SAM 2.1 tiny (generated weights), image size 1024, CPU, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    print("wall ms / process CPU ms (CPU time of all threads: what the click costs whatever the load)")
    print(f"{'frame':>10} | {'first click (embed+decode)':>27} | {'first click, frame prepared':>27} | "
          f"{'later lone click (3 masks)':>27} | {'later 3 points + box':>21}")
    cell = lambda v: f"{v[0]:.0f} / {v[1]:.0f}"  # noqa: E731
    for size, a, p, b, c in rows:
        print(f"{size:>10} | {cell(a):>27} | {cell(p):>27} | {cell(b):>27} | {cell(c):>21}")


if __name__ == "__main__":
    main()
