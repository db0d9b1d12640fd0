"""Refinement ops on synthetic masks whose right answer is known."""
import math
from collections import deque

import pytest
import torch
import torch.nn.functional as F

from memvos_core.ops import feather, fill_holes, grow_shrink, refine_edges, remove_islands, threshold
from memvos_core.ops.morphology import label_components


def grid(h, w):
    return torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")


def disc(h, w, cy, cx, r):
    yy, xx = grid(h, w)
    return (((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r).float()


def test_threshold_is_hard_and_keeps_shape():
    m = torch.tensor([[[0.1, 0.5], [0.49, 0.9]]]).expand(2, 3, 2, 2)
    out = threshold(m, 0.5)
    assert out.shape == (2, 3, 2, 2) and out.dtype == torch.float32
    assert out[0, 0].tolist() == [[0.0, 1.0], [0.0, 1.0]]


def test_fill_holes_fills_ring_hole_but_not_regions_open_to_the_border():
    h = w = 48
    ring = disc(h, w, 16, 16, 10) - disc(h, w, 16, 16, 5)          # hole of radius 5 inside
    pocket = torch.zeros(h, w)
    pocket[30:, 30] = 1                                          # with the border, walls off a pocket
    pocket[30, 30:] = 1
    mask = (ring + pocket).clamp(0, 1)
    out = fill_holes(mask.unsqueeze(0))[0]
    assert torch.equal(out, (disc(h, w, 16, 16, 10) + pocket).clamp(0, 1))
    assert out[40, 40] == 0                                       # the pocket touches the border


def test_fill_holes_max_size_and_soft_values():
    h = w = 40
    mask = torch.zeros(h, w)
    mask[2:14, 2:14] = 0.8
    mask[5:11, 5:11] = 0                                          # 36-pixel hole
    mask[20:30, 20:30] = 1
    mask[24:26, 24:26] = 0                                        # 4-pixel hole
    out = fill_holes(mask.unsqueeze(0), max_hole_px=10)[0]
    assert out[25, 25] == 1 and out[8, 8] == 0
    assert out[3, 3] == pytest.approx(0.8)                        # soft values elsewhere kept
    assert fill_holes(mask.unsqueeze(0))[0][8, 8] == 1


def test_remove_islands_removes_exactly_the_small_blobs():
    mask = torch.zeros(1, 2, 40, 60)
    mask[0, :, 2:4, 2:4] = 1        # 4 px: removed
    mask[0, :, 6:8, 2:7] = 1        # 10 px: removed
    mask[0, :, 30:35, 10:15] = 1    # 25 px: kept
    mask[0, :, 10:20, 40:50] = 1    # 100 px: kept
    mask[0, 1, 12, 42] = 0.6        # soft values of kept regions survive
    out = remove_islands(mask, min_size_px=20)
    expected = mask.clone()
    expected[:, :, :10, :10] = 0
    assert torch.equal(out, expected)


def test_remove_islands_connectivity():
    mask = torch.zeros(1, 20, 20)
    idx = torch.arange(10)
    mask[0, idx + 2, idx + 2] = 1                                 # a diagonal line of 10 pixels
    assert remove_islands(mask, 5, connectivity=8).sum() == 10
    assert remove_islands(mask, 5, connectivity=4).sum() == 0


def flood_labels(fg, connectivity):
    """Plain breadth-first reference labelling (test only)."""
    h, w = len(fg), len(fg[0])
    labels = [[0] * w for _ in range(h)]
    steps = [(0, 1), (1, 0), (0, -1), (-1, 0)]
    if connectivity == 8:
        steps += [(1, 1), (1, -1), (-1, 1), (-1, -1)]
    count = 0
    for y in range(h):
        for x in range(w):
            if fg[y][x] and not labels[y][x]:
                count += 1
                labels[y][x] = count
                queue = deque([(y, x)])
                while queue:
                    cy, cx = queue.popleft()
                    for dy, dx in steps:
                        ny, nx = cy + dy, cx + dx
                        if 0 <= ny < h and 0 <= nx < w and fg[ny][nx] and not labels[ny][nx]:
                            labels[ny][nx] = count
                            queue.append((ny, nx))
    return torch.tensor(labels)


@pytest.mark.parametrize("connectivity", [4, 8])
def test_labelling_matches_flood_fill_on_random_masks(connectivity):
    gen = torch.Generator().manual_seed(3)
    fg = torch.rand(4, 23, 31, generator=gen) < 0.45
    labels = label_components(fg, connectivity)
    for b in range(4):
        ref = flood_labels(fg[b].tolist(), connectivity)
        pairs = set(zip(ref[fg[b]].tolist(), labels[b][fg[b]].tolist()))
        assert len(pairs) == int(ref.max())                        # one label per true component...
        assert len({p[1] for p in pairs}) == len(pairs)            # ...and no two components merged
        assert (labels[b][~fg[b]] == 0).all()


def test_grow_shrink_changes_disc_radius():
    h = w = 80
    base = disc(h, w, 40, 40, 14).unsqueeze(0)
    for n in (3, 6, -4, -8):
        area = float(grow_shrink(base, n).sum())
        assert area == pytest.approx(math.pi * (14 + n) ** 2, rel=0.04), n
    point = torch.zeros(1, 21, 21)
    point[0, 10, 10] = 1
    grown = grow_shrink(point, 5)[0]
    assert torch.equal(grown, disc(21, 21, 10, 10, 5))             # the structuring element is the disc


def test_shrink_keeps_masks_touching_the_frame_edge_and_soft_values():
    full = torch.ones(2, 3, 16, 16)
    assert torch.equal(grow_shrink(full, -3), full)
    soft = torch.full((1, 9, 9), 0.25)
    soft[0, 4, 4] = 0.75
    grown = grow_shrink(soft, 2)[0]
    assert grown[4, 6] == 0.75 and grown[0, 0] == 0.25


def test_feather_blurs_only_within_its_radius():
    h = w = 64
    mask = torch.zeros(1, h, w)
    mask[0, :, 32:] = 1
    out = feather(mask, 6)[0]
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(out[:, :26], torch.zeros(h, 26)) and torch.allclose(out[:, 38:], torch.ones(h, 26))
    assert 0.3 < float(out[10, 31]) < 0.5 and 0.5 < float(out[10, 32]) < 0.7
    assert float(out.sum()) == pytest.approx(float(mask.sum()), rel=1e-3)


def soft_shape_over_texture(h=128, w=160, seed=0):
    """A wavy disc with a 4-pixel soft edge over a smooth colour texture: (image, true alpha)."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = grid(h, w)
    angle = torch.atan2(yy - h / 2, xx - w / 2)
    radius = 40 + 6 * torch.sin(5 * angle)
    alpha = ((radius - ((yy - h / 2) ** 2 + (xx - w / 2) ** 2).sqrt()) / 4 + 0.5).clamp(0, 1)
    noise = torch.rand(1, 3, h // 4, w // 4, generator=gen)
    background = 0.35 + 0.5 * (F.interpolate(noise, size=(h, w), mode="bilinear", align_corners=False)[0] - 0.5)
    foreground = torch.tensor([0.9, 0.75, 0.3]).view(3, 1, 1) + 0.05 * (torch.rand(3, h, w, generator=gen) - 0.5)
    image = (alpha * foreground + (1 - alpha) * background).clamp(0, 1)
    return image.permute(1, 2, 0).unsqueeze(0), alpha.unsqueeze(0)


def coarse_hard_mask(alpha, factor):
    """What propagation hands over: the shape seen at 1/factor resolution, upsampled, thresholded."""
    low = F.interpolate(alpha.unsqueeze(1), scale_factor=1 / factor, mode="area")
    return (F.interpolate(low, size=alpha.shape[-2:], mode="bilinear", align_corners=False)[:, 0] >= 0.5).float()


# Measured on this synthetic scene (seeds 0-2, radius 4, eps 1e-3): refined/hard mean abs error
# 0.31-0.34 for a mask seen at 1/4 resolution (hard error 0.0125), 0.44-0.45 at 1/8 (0.0134).
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("factor, max_ratio", [(4, 0.45), (8, 0.6)])
def test_guided_filter_alpha_beats_the_hard_mask(seed, factor, max_ratio):
    image, alpha = soft_shape_over_texture(seed=seed)
    hard = coarse_hard_mask(alpha, factor)
    refined = refine_edges(image, hard, radius=4, eps=1e-3)
    hard_error = float((hard - alpha).abs().mean())
    refined_error = float((refined - alpha).abs().mean())
    assert refined_error <= max_ratio * hard_error, (refined_error, hard_error)
    assert refined.shape == alpha.shape and refined.min() >= 0 and refined.max() <= 1


def test_refine_edges_takes_masks_at_internal_size_and_per_object():
    image, alpha = soft_shape_over_texture()
    small = coarse_hard_mask(alpha, 8)[:, ::2, ::2]
    two = torch.stack([small, 1 - small], 1)
    out = refine_edges(image, two)
    assert out.shape == (1, 2, 128, 160)
    assert float((out[:, 0] + out[:, 1] - 1).abs().max()) < 1e-3  # the filter is linear in the mask
    with pytest.raises(ValueError, match="aspect ratio"):
        refine_edges(image, small[:, :, :20])


def test_bad_masks_get_clear_errors():
    with pytest.raises(ValueError, match="masks has shape"):
        fill_holes(torch.zeros(2, 2, 2, 2, 2))
    with pytest.raises(ValueError, match="label map"):
        grow_shrink(torch.zeros(1, 4, 4, dtype=torch.int64), 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_refine_runs_on_the_inputs_device():
    mask = disc(32, 32, 16, 16, 8).unsqueeze(0).cuda()
    for out in (fill_holes(mask), remove_islands(mask, 4), grow_shrink(mask, 2), feather(mask, 3)):
        assert out.device == mask.device
    cpu = grow_shrink(mask.cpu(), 3)
    assert torch.equal(grow_shrink(mask, 3).cpu(), cpu)


def test_box_mean_is_the_border_clipped_window_mean():
    from memvos_core.ops.refine import box_mean
    x = torch.rand(2, 3, 17, 23, dtype=torch.float64)
    for r in (1, 3, 8):
        expected = F.avg_pool2d(x, 2 * r + 1, stride=1, padding=r, count_include_pad=False)
        assert torch.allclose(box_mean(x, r), expected)


def test_chunking_does_not_change_results():
    gen = torch.Generator().manual_seed(5)
    masks = (torch.rand(5, 2, 24, 30, generator=gen) > 0.4).float()
    frames = torch.rand(5, 24, 30, 3, generator=gen)
    for op in (lambda m, c: fill_holes(m, chunk_size=c), lambda m, c: remove_islands(m, 4, chunk_size=c),
               lambda m, c: grow_shrink(m, -2, chunk_size=c), lambda m, c: feather(m, 3, chunk_size=c),
               lambda m, c: refine_edges(frames, m, chunk_size=c)):
        assert torch.allclose(op(masks, 2), op(masks, None), atol=1e-6)
