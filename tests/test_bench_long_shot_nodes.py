"""The long-shot node benchmark, small: a generated video through Load Video -> the pack's nodes ->
Save Masks in the in-test executor, with host memory sampled (bench/bench_long_shot_nodes.py)."""
import importlib.util
import os

import numpy as np
from PIL import Image

from pack_loader import REPO_ROOT


def _bench():
    spec = importlib.util.spec_from_file_location("memvos_bench_long_shot_nodes",
                                                  os.path.join(REPO_ROOT, "bench", "bench_long_shot_nodes.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_few_frames_through_the_nodes_to_disk(tmp_path, synthetic_weights_file):
    bench = _bench()
    frames = 8
    result = bench.run(frames=frames, height=72, width=128, size=32, step=4, keep=str(tmp_path), quiet=True,
                       weights_file=str(synthetic_weights_file))
    stages = [(stage, frame) for stage, frame, *_ in result["rows"]]
    assert all((stage, frames) in stages for stage in ("Propagate", "Refine", "Save Masks", "Composite")), stages
    assert all(rss > 0 for _, _, rss, _, _ in result["rows"])
    _, masks, union, label_map = result["outputs"]["8"]
    assert union is None and label_map is None, "Propagate built no full-size output nobody connected"
    assert result["outputs"]["10"][1] is None and result["outputs"]["11"] == (None, None, None), \
        "Refine and Composite built no batch nobody connected"
    assert result["start_rss"] <= result["peak"] and result["end_rss"] > 0
    started = [name for _node, name, rss in result["starts"] if rss > 0]
    assert {"MemVOSLoadModel", "MemVOSNewSession", "MemVOSPropagate"} <= set(started), started
    assert started.index("MemVOSLoadModel") < started.index("MemVOSPropagate"), "in the order they ran"
    (folder,) = result["outputs"]["9"]
    written = os.path.join(result["dirs"]["output"], folder)
    assert sorted(os.listdir(written)) == [f"{t:05d}.png" for t in range(frames)]
    assert os.path.isfile(written + ".mp4")
    first = np.asarray(Image.open(os.path.join(written, "00000.png"))) > 32767
    painted = np.asarray(Image.open(os.path.join(result["dirs"]["input"], "bench_mask_obj1.png"))) > 127
    assert np.array_equal(first & painted, painted), "the keyframe's object is in the saved matte"
    assert masks.fps == 24.0 and masks.num_frames == frames
