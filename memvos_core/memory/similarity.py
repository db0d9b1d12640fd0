"""Anisotropic L2 similarity, top-k softmax and readout (spec §3.4–3.5).

Shapes: memory keys ``[B, Ck, N]``, shrinkage ``[B, 1, N]``, query keys and selection
``[B, Ck, M]``; similarities and affinities are ``[B, N, M]`` (rows are memory elements), or
``[B, M, N]`` in the query-major variants of the sparse readout.
"""
import math

import torch
import torch.nn.functional as F


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


def query_major_similarity(mem_key, mem_shrinkage, query_key, query_selection):
    """:func:`similarity` transposed, ``[B, M, N]``, as ONE matrix product with no pass over the
    big matrix afterwards: every term of the expansion, the per-memory-element scale
    ``s_i / sqrt(Ck)`` included, goes into the two factors,
    ``sim = [2 q e ; -e ; -sum(e q^2)]^T [k s' ; k^2 s' ; s']``. Same value; the rounding differs
    from the reference's order of operations at the 1e-7 relative level."""
    b, ck, n = mem_key.shape
    scale = mem_key.new_full((b, 1, n), 1 / math.sqrt(ck)) if mem_shrinkage is None \
        else mem_shrinkage * (1 / math.sqrt(ck))
    if query_selection is not None:
        mem = torch.cat([mem_key * scale, mem_key.pow(2) * scale, scale], 1)
        query = torch.cat([2 * query_key * query_selection, -query_selection,
                           -(query_selection * query_key.pow(2)).sum(1, keepdim=True)], 1)
    else:  # the query-norm term is constant per query: softmax ignores it, as in similarity()
        mem = torch.cat([mem_key * scale, mem_key.pow(2).sum(1, keepdim=True) * scale], 1)
        query = torch.cat([2 * query_key, query_key.new_full((query_key.shape[0], 1, query_key.shape[2]), -1.0)], 1)
    return torch.bmm(query.transpose(1, 2), mem)


def topk_weights(sim, top_k, dim=1):
    """Softmax weights of the ``top_k`` best memory elements of each query (memory axis
    ``dim``) and their indices.

    The best similarity is subtracted before exponentiating. The reference does not: its
    similarities are <= 0, but a query whose best ones are all below about -104 underflows
    every exp to 0 in float32 and writes 0/0 = NaN into the readout (and from there into
    memory). Where the reference's weights are finite both agree to rounding.
    ``top_k`` is capped at the memory size (the reference would fail there).
    """
    k = min(int(top_k), sim.shape[dim])
    values, indices = torch.topk(sim, k=k, dim=dim)  # sorted: the best comes first
    weights = (values - values.narrow(dim, 0, 1)).exp_()
    return weights / weights.sum(dim=dim, keepdim=True), indices


def topk_softmax(sim, top_k):
    """Dense affinity ``[B, N, M]``: the top-k softmax weights, zero elsewhere."""
    weights, indices = topk_weights(sim, top_k)
    return torch.zeros_like(sim).scatter_(1, indices, weights)


def sparse_readout(weights, indices, values):
    """:func:`readout` of a top-k affinity given as query-major ``weights``/``indices``
    ``[1, M, k]``: a weighted sum of k gathered values per query, no dense affinity.
    values: a list of ``[n, C, N_i]`` read as one ``[n, C, sum N_i]`` -> ``[n, C, M]``."""
    n, c = values[0].shape[:2]
    rows = [v.permute(2, 0, 1) for v in values]  # free for element-major buffers
    table = (rows[0].contiguous() if len(rows) == 1 else torch.cat(rows, 0)).view(-1, n * c)
    out = F.embedding_bag(indices[0], table, per_sample_weights=weights[0].to(table.dtype), mode="sum")
    return out.t().reshape(n, c, -1)


def softmax(sim):
    """Plain softmax over memory elements, max-subtracted (potentiation, spec §4.7)."""
    return torch.softmax(sim, dim=1)


def readout(affinity, values):
    """values ``[n, C, N]`` (objects as batch), affinity ``[1, N, M]`` -> ``[n, C, M]``."""
    return values @ affinity
