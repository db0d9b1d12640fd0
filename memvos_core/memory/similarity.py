"""Anisotropic L2 similarity, top-k softmax and readout (spec §3.4–3.5).

Shapes: memory keys ``[B, Ck, N]``, shrinkage ``[B, 1, N]``, query keys and selection
``[B, Ck, M]``; similarities and affinities are ``[B, N, M]`` (rows are memory elements).
"""
import math

import torch


def similarity(mem_key, mem_shrinkage, query_key, query_selection):
    ck = mem_key.shape[1]
    if query_selection is not None:
        mk = mem_key.transpose(1, 2)
        a_sq = mk.pow(2) @ query_selection
        two_ab = 2 * (mk @ (query_key * query_selection))
        b_sq = (query_selection * query_key.pow(2)).sum(1, keepdim=True)
        sim = -a_sq + two_ab - b_sq
    else:
        # Without selection the query-norm term is constant per query and softmax ignores it.
        a_sq = mem_key.pow(2).sum(1).unsqueeze(2)
        two_ab = 2 * (mem_key.transpose(1, 2) @ query_key)
        sim = -a_sq + two_ab
    if mem_shrinkage is not None:
        return sim * mem_shrinkage.transpose(1, 2) / math.sqrt(ck)
    return sim / math.sqrt(ck)


def topk_softmax(sim, top_k):
    """Softmax over the ``top_k`` best memory elements of each query, zero elsewhere.

    Like the reference, exponentiates without subtracting the maximum: similarities are <= 0,
    and keeping the same arithmetic keeps results equal to the reference's to rounding.
    ``top_k`` is capped at the memory size (the reference would fail there).
    """
    k = min(int(top_k), sim.shape[1])
    values, indices = torch.topk(sim, k=k, dim=1)
    weights = values.exp()
    weights = weights / weights.sum(dim=1, keepdim=True)
    return torch.zeros_like(sim).scatter_(1, indices, weights)


def softmax(sim):
    """Plain softmax over memory elements, max-subtracted (potentiation, spec §4.7)."""
    return torch.softmax(sim, dim=1)


def readout(affinity, values):
    """values ``[n, C, N]`` (objects as batch), affinity ``[1, N, M]`` -> ``[n, C, M]``."""
    return values @ affinity
