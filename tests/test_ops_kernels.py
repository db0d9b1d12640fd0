"""CPU library kernels (OpenCV, SciPy) against the torch kernels, pixel for pixel."""
import logging
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from memvos_core.ops import fill_holes, grow_shrink, inpaint_prep, overlay, remove_islands
from memvos_core.ops import kernels

LIBRARIES = [b for b in ("opencv", "scipy") if b in kernels.available()]


def test_the_test_environment_has_both_libraries():
    # requirements.txt brings SciPy, requirements-test.txt OpenCV: both paths must be compared here.
    assert LIBRARIES == ["opencv", "scipy"]


def edge_cases():
    """bool masks [B,H,W]: empty, full, touching every border, single pixels, thin diagonals
    (joined under 8-connectivity only), random noise, and degenerate sizes."""
    gen = torch.Generator().manual_seed(7)
    cases = {
        "empty": torch.zeros(2, 9, 13, dtype=torch.bool),
        "full": torch.ones(2, 9, 13, dtype=torch.bool),
        "noise": torch.rand(3, 31, 47, generator=gen) < 0.45,
        "dense noise": torch.rand(2, 40, 23, generator=gen) < 0.7,
        "one pixel image": torch.ones(1, 1, 1, dtype=torch.bool),
        "one row": torch.rand(2, 1, 17, generator=gen) < 0.5,
        "one column": torch.rand(2, 17, 1, generator=gen) < 0.5,
    }
    ring = torch.zeros(1, 12, 12, dtype=torch.bool)
    ring[0, 2:10, 2:10] = True
    ring[0, 4:8, 4:8] = False                      # a hole
    ring[0, 0, :] = True                           # a bar along the top border
    ring[0, 11, 11] = True                         # a corner pixel
    cases["ring and borders"] = ring
    diagonal = torch.eye(10, dtype=torch.bool).unsqueeze(0)  # 8-connected line, 4-connected dots
    cases["diagonal"] = diagonal | torch.eye(10, dtype=torch.bool).flip(1).unsqueeze(0)
    frame = torch.ones(1, 10, 10, dtype=torch.bool)
    frame[0, 1:9, 1:9] = False                     # a hole as big as the frame's inside
    frame[0, 4, 0] = False                         # ... opened to the border by one pixel
    cases["open frame"] = frame
    return cases


def on(backend, fn, *args):
    with kernels.use_backend(backend):
        return fn(*args)


def canonical(labels):
    """Labels renumbered by first appearance, per plane (paths number components differently)."""
    out = torch.zeros_like(labels)
    for b in range(labels.shape[0]):
        seen = {}
        flat = labels[b].reshape(-1).tolist()
        out[b] = torch.tensor([0 if v == 0 else seen.setdefault(v, len(seen) + 1) for v in flat]).view(labels[b].shape)
    return out


@pytest.mark.parametrize("backend", LIBRARIES)
@pytest.mark.parametrize("name,fg", edge_cases().items())
def test_region_kernels_match_torch(backend, name, fg):
    for connectivity in (4, 8):
        expected = canonical(on("torch", kernels.label_components, fg, connectivity))
        assert torch.equal(canonical(on(backend, kernels.label_components, fg, connectivity)), expected), \
            (name, connectivity)
        labels = on(backend, kernels.label_components, fg, connectivity)
        assert len(set(labels[fg].tolist())) == len(set(on("torch", kernels.label_components, fg, connectivity)[fg].tolist()))
        for size in (0, 1, 2, 5, 10_000):
            assert torch.equal(on(backend, kernels.small_regions, fg, size, connectivity),
                               on("torch", kernels.small_regions, fg, size, connectivity)), (name, connectivity, size)
    for limit in (None, 0, 1, 4, 10_000):
        assert torch.equal(on(backend, kernels.holes, ~fg, limit), on("torch", kernels.holes, ~fg, limit)), (name, limit)


def test_labels_are_unique_across_the_batch():
    fg = torch.ones(3, 4, 4, dtype=torch.bool)
    for backend in LIBRARIES + ["torch"]:
        labels = on(backend, kernels.label_components, fg, 8)
        assert len({int(labels[b, 0, 0]) for b in range(3)}) == 3, backend


@pytest.mark.parametrize("backend", LIBRARIES)
@pytest.mark.parametrize("radius", [1, 2, 3, 7, 20])
def test_disc_dilate_and_erode_match_torch(backend, radius):
    gen = torch.Generator().manual_seed(radius)
    soft = torch.rand(2, 23, 37, generator=gen)
    soft[0, :, :3] = 1.0                          # touching the left border
    hard = (torch.rand(2, 23, 37, generator=gen) < 0.2).float()
    edge_cases_ = [soft, hard, torch.zeros(1, 5, 6), torch.ones(1, 5, 6), torch.rand(1, 1, 9, generator=gen)]
    for x in edge_cases_:
        for op in (kernels.disc_dilate, kernels.disc_erode):
            assert torch.equal(on(backend, op, x, radius), on("torch", op, x, radius)), (op.__name__, tuple(x.shape))


def test_disc_is_the_radius_rule():
    kernel = torch.from_numpy(kernels.disc(3))
    ys, xs = torch.meshgrid(torch.arange(-3, 4), torch.arange(-3, 4), indexing="ij")
    assert torch.equal(kernel.bool(), ys ** 2 + xs ** 2 <= 9)


@pytest.mark.parametrize("backend", LIBRARIES)
def test_ops_give_the_same_pixels_on_every_path(backend):
    gen = torch.Generator().manual_seed(11)
    masks = torch.rand(3, 2, 30, 44, generator=gen)
    masks[0, 0, 10:20, 10:20] = 1.0
    masks[0, 0, 13:16, 13:16] = 0.0
    frames = torch.rand(3, 30, 44, 3, generator=gen)
    cases = [lambda: fill_holes(masks), lambda: fill_holes(masks, 4), lambda: remove_islands(masks, 6),
             lambda: remove_islands(masks, 6, connectivity=4), lambda: grow_shrink(masks, 3),
             lambda: grow_shrink(masks, -2), lambda: overlay(frames, masks, outline_px=2),
             lambda: inpaint_prep(frames, masks, grow_px=3).mask]
    for i, case in enumerate(cases):
        assert torch.equal(on(backend, case), on("torch", case)), i


def test_without_any_library_torch_runs_and_says_so_once(monkeypatch, caplog):
    monkeypatch.setattr(kernels, "_modules", {"opencv": None, "scipy": None})
    monkeypatch.setattr(kernels, "_warned", False)
    assert kernels.available() == ["torch"]
    mask = torch.zeros(1, 8, 8)
    mask[0, 2:6, 2:6] = 1
    mask[0, 3, 3] = 0
    with caplog.at_level(logging.WARNING, logger="memvos"):
        first = fill_holes(mask)
        fill_holes(mask)
        remove_islands(mask, 3)
    assert first[0, 3, 3] == 1
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1 and len(caplog.records) == 1
    assert "pip install scipy" in caplog.records[0].message
    with pytest.raises(ValueError, match="'opencv' is not installed here"):
        with kernels.use_backend("opencv"):
            pass


def test_opencv_missing_falls_back_to_scipy(monkeypatch):
    monkeypatch.setattr(kernels, "_modules", {"opencv": None})
    assert kernels.backend_for("cpu", "holes") == "scipy"
    assert kernels.backend_for("cuda", "holes") == "torch", "tensors on a GPU keep the torch kernels"


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="backend 'numba' is not one of"):
        with kernels.use_backend("numba"):
            pass


def test_the_ops_import_and_run_with_neither_library_installed():
    code = textwrap.dedent("""
        import logging, sys
        sys.modules["cv2"] = None      # as if neither package were installed
        sys.modules["scipy"] = None
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        import torch
        from memvos_core.ops import fill_holes
        mask = torch.zeros(1, 6, 6)
        mask[0, 1:5, 1:5] = 1
        mask[0, 2, 2] = 0
        print(float(fill_holes(mask)[0, 2, 2]))
    """)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1.0"
    assert done.stderr.count("neither OpenCV nor SciPy") == 1


def test_a_soft_mask_grown_by_a_large_disc_takes_the_faster_torch_kernel():
    """bench/bench_ops.py: OpenCV's grey-level disc costs grow with its area (+20 px at 1080p:
    54 ms vs torch's 31 ms); 0/1 masks and small discs stay with the library. Same pixels."""
    gen = torch.Generator().manual_seed(3)
    soft = torch.rand(1, 40, 60, generator=gen)
    hard = (soft > 0.5).float()
    assert kernels._disc_backend(soft, 20) == "torch"
    assert kernels._disc_backend(hard, 20) == kernels.backend_for("cpu", "dilate") != "torch"
    assert kernels._disc_backend(soft, 5) == kernels.backend_for("cpu", "dilate")
    with kernels.use_backend("torch"):
        expected = kernels.disc_erode(soft, 20)
    assert torch.equal(kernels.disc_erode(soft, 20), expected)
    assert kernels.bytes_per_pixel("dilate", "cpu", 20) > kernels.bytes_per_pixel("dilate", "cpu", 5)
