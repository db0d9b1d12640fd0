"""The memory engine alone (random features, no network): bounded sizes, usage-based pruning."""
import pytest
import torch

from memvos_core.config import MemoryConfig
from memvos_core.memory import MemoryManager

CK, CV, GRID = 16, 8, (4, 5)
HW = GRID[0] * GRID[1]


def random_frame(gen, num_objects):
    key = torch.randn(1, CK, *GRID, generator=gen)
    shrinkage = torch.rand(1, 1, *GRID, generator=gen) + 1
    selection = torch.rand(1, CK, *GRID, generator=gen)
    value = torch.randn(1, num_objects, CV, *GRID, generator=gen)
    return key, shrinkage, selection, value


@pytest.mark.parametrize("mode", ["xmem", "xmem++"])
def test_sizes_stay_within_limits_over_300_steps(mode):
    cfg = MemoryConfig(top_k=8, min_mid_term_frames=2, max_mid_term_frames=4, num_prototypes=6,
                       max_long_term_elements=40, memory_mode=mode)
    mm = MemoryManager(cfg)
    gen = torch.Generator().manual_seed(0)
    num_objects = 1
    key, shrinkage, selection, value = random_frame(gen, num_objects)
    mm.add(key, shrinkage, selection, value, [0], permanent=mode == "xmem++")
    peak_working = peak_long = 0
    for step in range(320):
        if step == 100:
            num_objects = 2  # an object that appears later gets its own group
        key, shrinkage, selection, value = random_frame(gen, num_objects)
        readout = mm.read(key, selection)
        assert readout.shape == (num_objects if step > 100 else 1, CV, *GRID) or step == 100
        mm.add(key, shrinkage, selection, value, list(range(num_objects)))
        peak_working = max(peak_working, mm.working.size)
        peak_long = max(peak_long, mm.long_term.size)
        assert mm.working.size < cfg.max_mid_term_frames * HW
        assert mm.long_term.size <= cfg.max_long_term_elements
        for store in (mm.working, mm.long_term):
            for gv in store.values:
                assert gv.shape[-1] <= store.size
    assert peak_working == (cfg.max_mid_term_frames - 1) * HW
    assert peak_long > cfg.max_long_term_elements - cfg.num_prototypes  # pruning was exercised
    if mode == "xmem++":
        assert mm.permanent.size == HW


def test_pruning_keeps_the_most_used_long_term_elements():
    cfg = MemoryConfig(top_k=4, min_mid_term_frames=1, max_mid_term_frames=2, num_prototypes=5,
                       max_long_term_elements=12, memory_mode="xmem")
    mm = MemoryManager(cfg)
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):  # the 2nd and 3rd writes each consolidate 5 prototypes
        mm.add(*random_frame(gen, 1)[:3], random_frame(gen, 1)[3], [0])
    assert mm.long_term.size == 10
    favourite = mm.long_term.key[:, :, [2, 7, 9]].clone()
    # Queries equal to three long-term keys make those the most used elements.
    for _ in range(5):
        q = favourite.repeat(1, 1, HW // 3 + 1)[:, :, :HW].reshape(1, CK, *GRID)
        mm.read(q, torch.ones(1, CK, *GRID))
    usage = mm.long_term.usage().flatten()
    top3 = set(torch.topk(usage, 3).indices.tolist())
    assert top3 == {2, 7, 9}
    mm.add(*random_frame(gen, 1)[:3], random_frame(gen, 1)[3], [0])  # prunes 10 -> <= 7, then +5
    kept = mm.long_term.key
    for i in range(3):
        assert any(torch.equal(kept[0, :, j], favourite[0, :, i]) for j in range(kept.shape[-1]))
    assert mm.long_term.size <= cfg.max_long_term_elements


def test_without_long_term_memory_working_memory_grows_and_reads_everything():
    cfg = MemoryConfig(enable_long_term=False, top_k=8, memory_mode="xmem")
    mm = MemoryManager(cfg)
    gen = torch.Generator().manual_seed(2)
    for _ in range(12):
        key, shrinkage, selection, value = random_frame(gen, 1)
        mm.add(key, shrinkage, selection, value, [0])
    assert mm.working.size == 12 * HW and mm.long_term.size == 0
    assert mm.working.selection is None  # selection only kept for consolidation
