"""The budget chunker: chunk sizes from bytes, devices, progress, cancel, out-of-memory retreat;
and every op run through it with a compute placement gives the results it gives without one."""
import pytest
import torch

from memvos_core.ops import (Compute, OpCancelled, RefineSteps, feather, fill_holes, frame_signals, grow_shrink,
                             inpaint_prep, matte, overlay, refine_edges, refine_masks, remove_islands,
                             replace_background, select_annotation_candidates, stabilize, threshold)
from memvos_core.ops import chunking
from memvos_core.ops.chunking import concat_as_made, default_budget, frames_per_chunk, run_chunked

MiB = 1 << 20


def test_chunks_are_sized_by_bytes_so_source_size_frames_get_fewer():
    budget = 512 * MiB
    per_px = 16  # e.g. a library kernel on two objects' planes
    hd, uhd = 1080 * 1920 * per_px, 2160 * 3840 * per_px
    assert frames_per_chunk(hd, budget) == 16 and frames_per_chunk(uhd, budget) == 4
    assert frames_per_chunk(uhd, budget, halo=1) == 2, "a temporal window takes its frames from the chunk"
    assert frames_per_chunk(10 * budget, budget) == 1, "never fewer than one frame"


def test_concat_as_made_gives_torch_cat_of_the_pieces_then_the_dtype():
    g = torch.Generator().manual_seed(3)
    pieces = [torch.randn(k, 3, 5, generator=g).half() for k in (2, 1, 4)]
    labels = [torch.randint(0, 9, (p.shape[0], 5), generator=g, dtype=torch.uint8) for p in pieces]
    assert torch.equal(concat_as_made(iter(pieces), 7, torch.float32), torch.cat(pieces).float())
    image, label = concat_as_made(zip(pieces, labels), 7)
    assert image.dtype == torch.float16 and torch.equal(image, torch.cat(pieces))
    assert torch.equal(label, torch.cat(labels))
    with pytest.raises(ValueError, match="7 frames or more were made where 6 were expected"):
        concat_as_made(iter(pieces), 6)


def test_default_budget():
    assert default_budget("cpu") == chunking.CPU_BUDGET
    assert default_budget("cpu", free_bytes=400 * MiB) == 200 * MiB
    assert default_budget("cpu", free_bytes=10 * MiB) == chunking.MIN_BUDGET
    assert default_budget("cuda", free_bytes=100 * (1 << 30)) == chunking.MAX_DEVICE_BUDGET
    assert default_budget("cuda", free_bytes=0) == chunking.MIN_BUDGET
    assert default_budget("cuda", free_bytes=1 << 30) == 512 * MiB


def recording_work(seen, fail_above=None):
    """A chunk step that records (t0, t1, device) and returns CPU tensors, as a GPU step would
    hand back after ``.to(output)``; ``fail_above``: chunks longer than that raise OOM on the GPU."""
    def work(t0, t1, device):
        seen.append((t0, t1, device.type))
        if fail_above is not None and device.type == "cuda" and t1 - t0 > fail_above:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return torch.arange(t0, t1)
    return work


def test_work_runs_on_the_compute_device_in_budget_chunks_with_progress():
    seen, progress = [], []
    compute = Compute(device="cuda", output_device="cpu", budget_bytes=3000,
                      progress=lambda done, total: progress.append((done, total)))
    parts = run_chunked(10, recording_work(seen), bytes_per_frame=1000, compute=compute)
    assert torch.equal(torch.cat(parts), torch.arange(10))
    assert seen == [(0, 3, "cuda"), (3, 6, "cuda"), (6, 9, "cuda"), (9, 10, "cuda")]
    assert progress == [(3, 10), (6, 10), (9, 10), (10, 10)]


def test_defaults_are_the_inputs_device():
    seen = []
    run_chunked(2, recording_work(seen), bytes_per_frame=1, source_device="cpu")
    assert seen == [(0, 2, "cpu")]


def test_out_of_memory_halves_the_chunk_then_falls_back_to_the_cpu():
    seen = []
    parts = run_chunked(8, recording_work(seen, fail_above=2), bytes_per_frame=1,
                        compute=Compute(device="cuda", output_device="cpu", budget_bytes=8))
    assert torch.equal(torch.cat(parts), torch.arange(8))
    assert seen[:3] == [(0, 8, "cuda"), (0, 4, "cuda"), (0, 2, "cuda")]
    assert all(t1 - t0 <= 2 for t0, t1, _ in seen[2:])
    seen = []
    parts = run_chunked(3, recording_work(seen, fail_above=0), bytes_per_frame=1,
                        compute=Compute(device="cuda", output_device="cpu", budget_bytes=1))
    assert torch.equal(torch.cat(parts), torch.arange(3))
    assert [d for _, _, d in seen] == ["cuda", "cpu", "cuda", "cpu", "cuda", "cpu"]


def test_other_errors_and_cpu_out_of_memory_are_not_retried():
    def broken(t0, t1, device):
        raise RuntimeError("shape mismatch")
    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_chunked(4, broken, bytes_per_frame=1, compute=Compute(device="cuda", budget_bytes=1))
    seen = []

    def cpu_oom(t0, t1, device):
        seen.append(t1 - t0)
        raise torch.OutOfMemoryError("out of memory")
    with pytest.raises(torch.OutOfMemoryError):
        run_chunked(4, cpu_oom, bytes_per_frame=1, compute=Compute(budget_bytes=4))
    assert seen == [4]


def test_cancel_stops_before_the_next_chunk():
    seen, calls = [], []

    def cancel():
        calls.append(1)
        return len(calls) > 2
    with pytest.raises(OpCancelled):
        run_chunked(10, recording_work(seen), bytes_per_frame=1, compute=Compute(budget_bytes=2, cancel=cancel))
    assert seen == [(0, 2, "cpu"), (2, 4, "cpu")]


class Interrupted(Exception):
    pass


def counting_compute(budget_bytes=1, stop_after=None):
    """A Compute recording progress; its cancel raises (as ComfyUI's does) after ``stop_after`` checks."""
    log = {"progress": [], "checks": 0}

    def cancel():
        log["checks"] += 1
        if stop_after is not None and log["checks"] > stop_after:
            raise Interrupted()
        return False
    compute = Compute(device="cpu", output_device="cpu", budget_bytes=budget_bytes,
                      progress=lambda done, total: log["progress"].append((done, total)), cancel=cancel)
    return compute, log


def scene():
    gen = torch.Generator().manual_seed(2)
    masks = (torch.rand(5, 2, 18, 26, generator=gen) > 0.4).float()
    frames = torch.rand(5, 18, 26, 3, generator=gen)
    return frames, masks


OPS = {
    "threshold": lambda f, m, **c: threshold(m, 0.5, **c),
    "fill_holes": lambda f, m, **c: fill_holes(m, **c),
    "remove_islands": lambda f, m, **c: remove_islands(m, 4, **c),
    "grow_shrink": lambda f, m, **c: grow_shrink(m, -2, **c),
    "feather": lambda f, m, **c: feather(m, 3, **c),
    "refine_edges": lambda f, m, **c: refine_edges(f, m, **c),
    "stabilize": lambda f, m, **c: stabilize(f, m, radius=1, **c),
    "overlay": lambda f, m, **c: overlay(f, m, outline_px=1, **c),
    "matte": lambda f, m, **c: matte(f, m, **c),
    "replace_background": lambda f, m, **c: replace_background(f, m, (0, 1, 0), **c),
    "inpaint_prep": lambda f, m, **c: inpaint_prep(f, m, crop=True, **c).mask,
    "refine_masks": lambda f, m, **c: refine_masks(m, RefineSteps(temporal_radius=1, fill_holes=True, grow_px=1,
                                                                  edge_radius=2, feather_px=1.0), f, **c),
}


@pytest.mark.parametrize("name", OPS)
def test_every_op_reports_each_frame_and_stops_on_cancel(name):
    frames, masks = scene()
    whole = OPS[name](frames, masks)
    compute, log = counting_compute()
    assert torch.allclose(OPS[name](frames, masks, compute=compute), whole, atol=1e-6)
    assert log["progress"] == [(t, 5) for t in range(1, 6)], "one frame per chunk at a 1-byte budget"
    compute, log = counting_compute(stop_after=2)
    with pytest.raises(Interrupted):
        OPS[name](frames, masks, compute=compute)
    assert log["progress"] == [(1, 5), (2, 5)]


def test_frame_signals_and_candidates_report_and_cancel():
    frames, masks = scene()
    compute, log = counting_compute()
    assert frame_signals(masks, compute=compute) == frame_signals(masks)
    assert log["progress"][-1] == (5, 5) and len(log["progress"]) == 5
    gen = torch.Generator().manual_seed(4)
    keys, shrink, select = torch.randn(5, 8, 3, 4, generator=gen), 1 + torch.rand(5, 1, 3, 4), torch.rand(5, 8, 3, 4)
    picks = []
    chosen = select_annotation_candidates(keys, shrink, select, masks, k=3, min_mask_presence_percent=0,
                                          progress=lambda d, t: picks.append((d, t)), budget_bytes=1)
    assert chosen == select_annotation_candidates(keys, shrink, select, masks, k=3, min_mask_presence_percent=0)
    assert picks[-1] == (3, 3)
    with pytest.raises(OpCancelled):
        select_annotation_candidates(keys, shrink, select, masks, k=3, cancel=lambda: True)
