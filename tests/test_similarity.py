"""Top-k softmax: finite for queries whose every match is poor, and equal to the reference's
arithmetic (no max subtraction) wherever that one is finite."""
import pytest
import torch

from memvos_core.config import MemoryConfig
from memvos_core.memory import MemoryManager
from memvos_core.memory.similarity import query_major_similarity, similarity, topk_softmax, topk_weights


def reference_weights(sim, top_k, dim):
    """The reference's top-k softmax: exp of the raw similarities, normalised."""
    values, indices = torch.topk(sim, k=top_k, dim=dim)
    weights = values.exp()
    return weights / weights.sum(dim=dim, keepdim=True), indices


def exact_weights(sim, top_k, dim):
    values, indices = torch.topk(sim.double(), k=top_k, dim=dim)
    return torch.softmax(values, dim=dim), indices


@pytest.mark.parametrize("dim", [1, 2])
def test_poor_matches_give_finite_correct_weights(dim):
    gen = torch.Generator().manual_seed(0)
    sim = -200 - 30 * torch.rand(1, 40, 25, generator=gen)   # every exp underflows in float32
    old, _ = reference_weights(sim, 8, dim)
    assert torch.isnan(old).all()  # what the reference's arithmetic writes here
    weights, indices = topk_weights(sim, 8, dim=dim)
    expected, expected_indices = exact_weights(sim, 8, dim)
    assert torch.isfinite(weights).all()
    assert torch.equal(indices, expected_indices)
    assert torch.allclose(weights.double(), expected, rtol=1e-5, atol=1e-7)
    assert torch.allclose(weights.sum(dim), torch.ones(()), atol=1e-6)


@pytest.mark.parametrize("dim", [1, 2])
def test_same_weights_as_the_reference_where_it_is_finite(dim):
    gen = torch.Generator().manual_seed(1)
    sim = -40 * torch.rand(1, 60, 33, generator=gen)   # similarities are <= 0
    old, old_indices = reference_weights(sim, 30, dim)
    assert torch.isfinite(old).all()
    weights, indices = topk_weights(sim, 30, dim=dim)
    assert torch.equal(indices, old_indices)
    assert (weights - old).abs().max() <= 1e-6


def test_dense_affinity_columns_sum_to_one_for_poor_matches():
    sim = torch.full((1, 12, 7), -500.0)
    sim[0, 3] = -480.0  # one element clearly best for every query
    affinity = topk_softmax(sim, 4)
    assert torch.isfinite(affinity).all()
    assert torch.allclose(affinity.sum(1), torch.ones(1, 7))
    assert torch.allclose(affinity[0, 3], torch.ones(7))


@pytest.mark.parametrize("sparse", [False, True])
def test_memory_read_far_from_every_key_is_finite(sparse):
    """A frame unlike anything in memory (similarities around -1e4) reads the average of its
    top-k values instead of NaN."""
    config = MemoryConfig(top_k=4, enable_long_term=False)
    memory = MemoryManager(config, sparse_readout=sparse)
    key = torch.full((1, 64, 2, 2), 50.0)
    value = torch.arange(4.0).view(1, 1, 1, 2, 2).expand(1, 1, 8, 2, 2).contiguous()
    memory.add(key, torch.ones(1, 1, 2, 2), torch.full((1, 64, 2, 2), 0.5), value, [0])
    out = memory.read(torch.zeros(1, 64, 2, 2), torch.full((1, 64, 2, 2), 0.5))
    assert torch.isfinite(out).all()
    assert torch.allclose(out, torch.full_like(out, 1.5))  # equal similarities: mean of 0..3


@pytest.mark.parametrize("with_shrinkage", [True, False])
@pytest.mark.parametrize("with_selection", [True, False])
def test_query_major_similarity_is_the_transposed_similarity(with_shrinkage, with_selection):
    gen = torch.Generator().manual_seed(2)
    mem_key = 6 * torch.randn(1, 64, 300, generator=gen)
    shrinkage = 1 + 3 * torch.rand(1, 1, 300, generator=gen) if with_shrinkage else None
    query_key = 6 * torch.randn(1, 64, 70, generator=gen)
    selection = torch.rand(1, 64, 70, generator=gen) if with_selection else None
    expected = similarity(mem_key, shrinkage, query_key, selection).transpose(1, 2)
    got = query_major_similarity(mem_key, shrinkage, query_key, selection)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() <= 1e-6 * expected.abs().max()
