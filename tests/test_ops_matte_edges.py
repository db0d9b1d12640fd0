"""Refine Matte controls, each measured on a synthetic matte: contrast, shift edge, reduce chatter,
motion blur along optical flow (OpenCV's DIS and the torch flow), and the Refine chain giving the
same mattes whatever the chunking."""
import math

import pytest
import torch
import torch.nn.functional as F

from memvos_core.ops import matte_edges
from memvos_core.ops.chunking import Compute
from memvos_core.ops.refine_chain import RefineSteps, refine_masks

H, W = 48, 64


def disc(cx, cy=24.0, radius=10.0, ramp=1.0):
    yy, xx = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing="ij")
    return ((radius - ((yy - cy) ** 2 + (xx - cx) ** 2).sqrt()) / ramp + 0.5).clamp(0, 1)


def textured(count, step, seed=0):
    """Frames of a smooth random texture sliding right by ``step`` pixels a frame."""
    g = torch.Generator().manual_seed(seed)
    texture = F.interpolate(torch.rand(1, 3, H // 4, (W + 64) // 4, generator=g), size=(H, W + 64),
                            mode="bicubic", align_corners=False).clamp(0, 1)
    return torch.stack([texture[0, :, :, 32 - step * t:32 - step * t + W].permute(1, 2, 0) for t in range(count)])


def soft_count(planes):
    return int(((planes > 0.01) & (planes < 0.99)).sum())


def test_contrast_steepens_the_edge_around_half():
    soft = disc(32, ramp=8.0)[None]
    assert torch.equal(matte_edges.contrast(soft, 0.0), soft)
    steeper = matte_edges.contrast(soft, 0.5)
    assert soft_count(steeper) < 0.6 * soft_count(soft)
    middle = (soft - 0.5).abs() < 1e-3
    assert torch.allclose(steeper[middle], soft[middle], atol=2e-3), "the 0.5 contour stays where it is"
    assert set(matte_edges.contrast(soft, 1.0).unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("pixels", [2.0, -2.0, 2.5, -3.5])
def test_shift_edge_moves_a_hard_edge_by_the_pixels_asked(pixels):
    hard = (disc(32, radius=12.0) >= 0.5).float()[None]
    shifted = matte_edges.shift_edge(hard, pixels)
    expected = math.pi * (12.0 + pixels) ** 2
    assert abs(float(shifted.sum()) - expected) < 0.08 * expected, (float(shifted.sum()), expected)
    assert float(matte_edges.shift_edge(hard, 0).sum()) == float(hard.sum())


def test_reduce_chatter_steadies_the_edge_and_leaves_the_rest_alone():
    """A still picture whose matte's edge jitters by a pixel from frame to frame."""
    count = 7
    frames = textured(1, 0).expand(count, -1, -1, -1)
    part = torch.stack([disc(32, radius=10.0 + (1.0 if t % 2 else -1.0)) for t in range(count)])[:, None]
    steady = matte_edges.reduce_chatter(part, frames, radius=2, strength=1.0)
    middle = slice(2, count - 2)
    before, after = part[middle].std(0), steady[middle].std(0)
    edge = before > 0.05
    assert after[edge].mean() < 0.4 * before[edge].mean(), (float(after[edge].mean()), float(before[edge].mean()))
    far = matte_edges.edge_band(part[:, 0]).amax(0) == 0
    assert far.sum() > H * W / 2 and torch.equal(steady[:, 0, far], part[:, 0, far]), \
        "pixels away from every edge are not touched"
    half = matte_edges.reduce_chatter(part, frames, radius=2, strength=0.5)
    assert torch.allclose(half, (part + steady) / 2, atol=1e-5), "strength blends linearly"


def test_reduce_chatter_leaves_a_moving_edge_where_it_is():
    count, step = 5, 4
    frames = textured(count, step)
    part = torch.stack([disc(20 + step * t) for t in range(count)])[:, None]
    kept = matte_edges.reduce_chatter(part, frames, radius=2, strength=1.0)
    assert (kept - part).abs().mean() < 0.1 * (part[1:] - part[:-1]).abs().mean()


@pytest.mark.parametrize("method", ["dis", "torch"])
def test_optical_flow_finds_the_motion(method):
    frames = textured(2, 3)
    flow = matte_edges.optical_flow(frames[:1], frames[1:], method)
    inner = flow[0, :, 8:-8, 8:-8]
    assert abs(float(inner[0].median()) - 3.0) < 0.5 and abs(float(inner[1].median())) < 0.5


@pytest.mark.parametrize("method, flow_side", [("dis", None), ("torch", None), ("dis", 32)])
def test_motion_blur_smears_along_the_motion_only(method, flow_side, monkeypatch):
    if flow_side:  # the flow measured on frames half the size, scaled back up
        monkeypatch.setattr(matte_edges, "FLOW_SIDE", flow_side)
    count, step = 3, 4
    frames = textured(count, step)
    part = torch.stack([disc(20 + step * t) for t in range(count)])[:, None]
    blurred = matte_edges.motion_blur(part, frames, shutter=1.0, method=method)
    row, column = blurred[1, 0, 24], blurred[1, 0, :, 20 + step]
    assert soft_count(row) >= soft_count(part[1, 0, 24]) + 4, "the edges across the motion soften by ~the step"
    assert soft_count(column) <= soft_count(part[1, 0, :, 20 + step]) + 2, "edges along the motion stay sharp"
    assert abs(float(blurred[1].sum() - part[1].sum())) < 0.05 * float(part[1].sum()), "coverage is kept"
    still = textured(count, 0)
    assert torch.allclose(matte_edges.motion_blur(part, still, 1.0, method=method), part), "no motion, no blur"


def test_refine_chain_gives_the_same_mattes_whatever_the_chunks():
    count, step = 6, 2
    frames = textured(count, step)
    masks = torch.stack([torch.stack([disc(16 + step * t, radius=8 + (t % 2)), disc(40, radius=6)])
                         for t in range(count)])
    steps = RefineSteps(temporal_radius=1, feather_px=1.5, contrast=0.3, shift_edge_px=-0.5,
                        chatter_strength=0.8, chatter_radius=2, motion_blur=0.5)
    assert steps.halo == 4 and steps.needs_frames
    whole = refine_masks(masks, steps, frames, compute=Compute(budget_bytes=1 << 40))
    chunked = refine_masks(masks, steps, frames, compute=Compute(budget_bytes=1))  # a frame per chunk
    assert torch.allclose(whole, chunked, atol=1e-5)
    assert not torch.allclose(whole, refine_masks(masks, RefineSteps(), frames)), "the controls did something"
    with pytest.raises(ValueError, match="frames are needed"):
        refine_masks(masks, RefineSteps(motion_blur=0.5))
    with pytest.raises(ValueError, match="contrast"):
        RefineSteps(contrast=1.5)


def test_matte_preview_shows_the_frames_through_the_matte_over_a_checkerboard():
    frames = torch.ones(2, H, W, 3)
    alpha = torch.stack([disc(32), torch.zeros(H, W)])
    preview = matte_edges.matte_preview(frames, alpha, max_side=32)
    assert preview.shape == (2, 24, 32, 3) and preview.dtype == torch.uint8
    assert int(preview[0, 12, 16, 0]) == 255 and set(preview[1].unique().tolist()) == {102, 153}
