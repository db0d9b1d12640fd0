"""Refine Masks and Composite on a long shot: the refined masks go to disk a chunk at a time, the
composite is made a chunk at a time for its preview, and no IMAGE/MASK batch is built unless a
node is connected to it, so the host's memory stays flat whatever the shot's length."""
import ctypes
import os
import sys
import threading
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from pack_loader import REPO_ROOT, pack_for_tests

sys.path.insert(0, os.path.join(REPO_ROOT, "bench"))
from host_memory import peak_rss_mib, reset_peak, rss_mib  # noqa: E402  (the benchmarks' reader of /proc)

PACK = pack_for_tests()
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # what is measured runs on one thread
NODES = PACK.NODE_CLASS_MAPPINGS
FRAMES, SHORT, HW = 240, 40, (96, 128)
# RSS through the graph on the whole shot may exceed that on its first SHORT frames by at most
# this: what the nodes hold must not grow with the shot. A built output would: the composite image
# alone takes 96 x 128 x 3 float32 = 144 KiB a frame, 29 MiB over the 200 frames more.
BOUND_MIB = 8
# Above an op's working budget at the peak: the inputs of the chunk being worked on, the stored
# masks' reader, the preview's page (small here) and the interpreter's own allocations.
PEAK_SLACK_MIB = 8
PEAK_BUDGET_MIB = 48  # ~40 frames a chunk: what an op holds, not the interpreter, makes the peak


class Peak(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.stop = rss_mib(), threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_mib())
            self.stop.wait(0.005)


class DrawnMasks:
    """Stands in for a propagation's result: two discs moving, soft edged, made on demand."""

    object_ids = (1, 2)

    def probabilities(self, index, ids=None):
        yy, xx = torch.meshgrid(torch.arange(HW[0]).float(), torch.arange(HW[1]).float(), indexing="ij")
        planes = []
        for i in ids or self.object_ids:
            cx, cy = (30 + 0.2 * index, 45) if i == 1 else (95 - 0.2 * index, 55)
            planes.append(((20 - ((xx - cx) ** 2 + (yy - cy) ** 2).sqrt()) / 3).clamp(0, 1))
        planes = torch.stack(planes)
        return torch.cat([(1 - planes.amax(0, keepdim=True)), planes])


@pytest.fixture(scope="module")
def shot(comfy):
    """A folder of frames (read in any order without decoding more than asked) and its masks."""
    folder = os.path.join(comfy.dirs["input"], "long")
    os.makedirs(folder)
    ramp = np.linspace(0, 255, HW[1], dtype=np.float32)[None, :, None]
    for t in range(FRAMES):
        Image.fromarray(np.broadcast_to((ramp + t) % 256, (*HW, 3)).astype(np.uint8)).save(
            os.path.join(folder, f"sh010_{t:04d}.png"), compress_level=1)
    (source, count, _fps) = NODES["MemVOSLoadFrames"]().load(folder, 24.0)
    masks = PACK.nodes.mask_set.MaskSet((1, 2), 0, count, HW, 0, count, result=DrawnMasks(),
                                        keyframes=({"frame": 0, "objects": [1, 2]},))
    return source, masks


def release_freed_memory_to_the_system():
    """glibc keeps freed blocks of a few MB in the process once its mmap threshold has risen, so
    RSS would count memory the nodes no longer hold; a fixed threshold makes RSS follow what is
    held (ComfyUI itself runs with glibc's defaults: the benchmark measures those)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-3, 256 * 1024)  # M_MMAP_THRESHOLD


def graph(refine_node, composite_node, source, masks):
    refined, union = refine_node.refine(masks, temporal_radius=1, grow_px=2, feather_px=1.0, frames=source,
                                        memvos_linked_outputs="")["result"]
    returned = composite_node.composite(source, refined, "overlay", preview_fps=24.0, memvos_linked_outputs="")
    saved = NODES["MemVOSSaveMasks"]().save(refined, "memvos/long", "matte", "", True, "none", 0.0)
    return refined, union, returned, saved


@pytest.fixture
def small_chunks(comfy, monkeypatch):
    """ComfyUI reports little free memory: the ops work within 16 MiB (a few frames a chunk)."""
    monkeypatch.setattr(comfy.modules["comfy.model_management"], "get_free_memory", lambda device=None: 0,
                        raising=False)
    monkeypatch.setattr(PACK.memvos_core.ops.chunking, "MIN_BUDGET", 16 * 2 ** 20)
    # The preview holds one page of tiles at a time (its bound, whatever the shot's length): pages
    # of 20 frames here, so that the short run already fills one.
    monkeypatch.setitem(PACK.nodes.preview.write_preview.__kwdefaults__, "page_px", 512)
    # Refine's player shows the matte a quarter of the source's size across, as a 720p shot's
    # (320 px): its pages then ask for many frames, which are worked at source size.
    matte_edges = PACK.memvos_core.ops.matte_edges
    monkeypatch.setattr(matte_edges.matte_preview_size, "__defaults__", (HW[1] // 4,))
    monkeypatch.setattr(matte_edges.matte_preview, "__defaults__", (HW[1] // 4, 8))


def peak_growth(run):
    start = rss_mib()
    peak = Peak()
    peak.start()
    try:
        out = run()
    finally:
        peak.stop.set()
        peak.join()
    return peak.peak - start, out


def test_refine_and_composite_on_a_long_shot_keep_host_memory_flat(comfy, shot, small_chunks):
    source, masks = shot
    refine, composite = NODES["MemVOSRefine"](), NODES["MemVOSComposite"]()
    release_freed_memory_to_the_system()
    graph(refine, composite, source, replace(masks, num_frames=4))  # libraries and buffers set up once
    short, _ = peak_growth(lambda: graph(refine, composite, source, replace(masks, num_frames=SHORT)))
    whole, (refined, union, returned, saved) = peak_growth(lambda: graph(refine, composite, source, masks))
    assert whole - short < BOUND_MIB, (f"RSS peak grew {whole:.0f} MiB over {FRAMES} frames, {short:.0f} MiB over "
                                       f"{SHORT}: Refine, Composite or Save Masks hold what grows with the shot")
    assert union is None and returned["result"] == (None, None, None), "no batch nobody connected is built"
    assert returned["ui"]["memvos_preview"], "the preview is written from the composite made a chunk at a time"
    assert len(os.listdir(os.path.join(comfy.dirs["output"], saved["result"][0]))) == FRAMES
    assert refined.dense is None and refined.stored is not None
    assert not torch.equal(refined.chunk(0, 1), masks.chunk(0, 1)), "the masks were refined"


def peak_rss_growth(run):
    """The highest RSS while ``run()`` runs, over RSS at its start, in MiB: the kernel's own
    high-water mark (reset through /proc/self/clear_refs, exact), else sampled every 5 ms."""
    if not reset_peak():
        return peak_growth(run)
    start = rss_mib()
    out = run()
    return peak_rss_mib() - start, out


def test_refine_and_composite_on_a_long_shot_peak_within_the_working_budget(comfy, shot, small_chunks, monkeypatch):
    """Each op's temporaries stay within its working budget (48 MiB here, 1 GiB on
    a CPU in ComfyUI): Refine's feather once took 72 bytes a pixel where it counted 16, and a
    600-frame 640x360 graph's Refine rose 2 GiB over its start, twice its 1 GiB budget; its
    preview pass, counting 28 bytes a source pixel, took about 70 (the frames and masks read as
    lists then stacked, the labels through a concatenated copy and int64 indices): a 720p shot's
    Refine rose 1,252 MiB."""
    source, masks = shot
    monkeypatch.setattr(PACK.memvos_core.ops.chunking, "MIN_BUDGET", PEAK_BUDGET_MIB * 2 ** 20)
    budget_mib = PEAK_BUDGET_MIB
    refine, composite = NODES["MemVOSRefine"](), NODES["MemVOSComposite"]()
    release_freed_memory_to_the_system()
    graph(refine, composite, source, replace(masks, num_frames=4))  # libraries and buffers set up once
    growth, (refined, *_rest) = peak_rss_growth(lambda: graph(refine, composite, source, masks))
    assert refined.num_frames == FRAMES
    assert growth < budget_mib + PEAK_SLACK_MIB, (
        f"RSS peaked {growth:.0f} MiB above its start over {FRAMES} frames with a {budget_mib:.0f} MiB working "
        f"budget: an op's temporaries exceed what it counts per frame")
