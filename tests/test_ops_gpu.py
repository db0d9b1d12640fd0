"""The ops on a CUDA GPU: same results as the CPU paths, results handed back where asked, and
the working memory of a chunk within its budget at source size. Runs only where CUDA exists."""
import pytest
import torch

from memvos_core.ops import (Compute, RefineSteps, compute_candidate_keys, fill_holes, frame_signals, grow_shrink,
                             inpaint_prep, overlay, refine_edges, refine_masks, remove_islands, replace_background,
                             select_annotation_candidates, stabilize)
from memvos_core.ops import kernels

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
MiB = 1 << 20


def scene(frames=4, objects=2, height=72, width=128, seed=0):
    gen = torch.Generator().manual_seed(seed)
    masks = (torch.rand(frames, objects, height, width, generator=gen) > 0.45).float()
    masks[:, 0, 10:40, 10:60] = 1.0
    masks[:, 0, 20:25, 20:30] = 0.0
    return torch.rand(frames, height, width, 3, generator=gen), masks


def test_torch_kernels_on_the_gpu_match_the_cpu_libraries():
    _, masks = scene()
    planes = masks.reshape(-1, *masks.shape[-2:])
    fg = planes >= 0.5
    for connectivity in (4, 8):
        assert torch.equal(kernels.small_regions(fg.cuda(), 5, connectivity).cpu(), kernels.small_regions(fg, 5, connectivity))
    assert torch.equal(kernels.holes((~fg).cuda(), 30).cpu(), kernels.holes(~fg, 30))
    soft = torch.rand(3, 50, 70)
    for radius in (1, 4, 15):
        assert torch.equal(kernels.disc_dilate(soft.cuda(), radius).cpu(), kernels.disc_dilate(soft, radius))
        assert torch.equal(kernels.disc_erode(soft.cuda(), radius).cpu(), kernels.disc_erode(soft, radius))


OPS = {
    "fill_holes": (lambda f, m, c: fill_holes(m, compute=c), 0.0),
    "remove_islands": (lambda f, m, c: remove_islands(m, 6, compute=c), 0.0),
    "grow_shrink": (lambda f, m, c: grow_shrink(m, 5, compute=c), 0.0),
    "refine_edges": (lambda f, m, c: refine_edges(f, m, compute=c), 1e-4),
    "stabilize": (lambda f, m, c: stabilize(f, m, radius=1, compute=c), 1e-5),
    "overlay": (lambda f, m, c: overlay(f, m, outline_px=2, compute=c), 1e-5),
    "replace_background": (lambda f, m, c: replace_background(f, m, (0, 1, 0), compute=c), 1e-6),
    "inpaint_prep": (lambda f, m, c: inpaint_prep(f, m, compute=c).mask, 1e-5),
    "refine_masks": (lambda f, m, c: refine_masks(m, RefineSteps(temporal_radius=1, fill_holes=True, remove_islands_px=4,
                                                                 grow_px=-2, edge_radius=3, feather_px=2.0), f,
                                                  compute=c), 1e-4),
}


@pytest.mark.parametrize("name", OPS)
def test_ops_compute_on_the_gpu_and_hand_back_on_the_cpu(name):
    frames, masks = scene()
    op, tolerance = OPS[name]
    cpu = op(frames, masks, None)
    gpu = op(frames, masks, Compute(device="cuda", output_device="cpu"))
    assert gpu.device.type == "cpu"
    assert torch.allclose(gpu, cpu, atol=tolerance, rtol=0), (name, float((gpu - cpu).abs().max()))


@pytest.mark.parametrize("name", ["fill_holes", "remove_islands", "grow_shrink", "refine_edges", "stabilize", "overlay",
                                  "inpaint_prep", "refine_masks"])
def test_a_chunk_at_1080p_stays_within_the_budget(name):
    """Inputs and outputs stay on the CPU, so every byte the GPU allocates is the op's working
    set: its peak must stay within the budget it was given (with a 1.5x margin for the
    allocator's rounding), at 1080p, where a fixed frame count would not."""
    frames, masks = scene(frames=6, objects=2, height=1080, width=1920)
    budget = 2048 * MiB  # 2-3 frames a chunk: an estimate too low by half would overshoot
    op, _ = OPS[name]
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    op(frames, masks, Compute(device="cuda", output_device="cpu", budget_bytes=budget))
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    assert peak <= 1.5 * budget, f"{name}: peak {peak / MiB:.0f} MiB for a {budget / MiB:.0f} MiB budget"


def test_signals_and_candidate_selection_on_the_gpu(xmem_net):
    frames, masks = scene(frames=6, height=64, width=96)
    assert frame_signals(masks, compute=Compute(device="cuda")) == frame_signals(masks)
    net = xmem_net.cuda().eval()
    keys = compute_candidate_keys(net, frames, 64, device="cuda", store_device="auto")
    assert all(k.device.type == "cuda" for k in keys), "a short clip's keys fit the budget: they stay on the GPU"
    on_cpu = compute_candidate_keys(net, frames, 64, device="cuda", store_device="auto", budget_bytes=1)
    assert all(k.device.type == "cpu" for k in on_cpu)
    picks = select_annotation_candidates(*keys, masks, k=3, return_scores=True)
    streamed = select_annotation_candidates(*on_cpu, masks, k=3, return_scores=True, device="cuda", budget_bytes=1)
    reference = select_annotation_candidates(*[k.cpu() for k in keys], masks, k=3, return_scores=True)
    assert [j for j, _ in picks] == [j for j, _ in streamed] == [j for j, _ in reference]
    xmem_net.cpu()
