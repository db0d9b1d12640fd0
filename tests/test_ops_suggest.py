"""Frames to annotate next: XMem++ candidate selection, lost/wrong-object signals, ranking."""
import math

import pytest
import torch
import torch.nn.functional as F

from memvos_core.families import families
from memvos_core.network.features import KeyFeatures
from memvos_core.ops import (Suggestion, candidate_suggestions, compute_candidate_keys, frame_signals,
                             rank_suggestions, select_annotation_candidates)


# ------------------------------------------------------------------ XMem++ candidate selection
def scalar_case():
    """Ck = 1 and a 1x1 key grid: then D(c, j) = max(0, s_j - s_c) * (k_j - k_c)^2 by hand."""
    keys = torch.tensor([0.0, 1.0, 3.0, 0.5, 2.0]).view(5, 1, 1, 1)
    shrinkages = torch.tensor([1.0, 2.0, 2.0, 3.0, 1.5]).view(5, 1, 1, 1)
    selections = torch.ones(5, 1, 1, 1)
    masks = torch.ones(5, 1, 4, 4)
    return keys, shrinkages, selections, masks


def test_candidates_on_a_hand_worked_case():
    keys, shrinkages, selections, masks = scalar_case()
    # from frame 0: D = [-, 1, 9, 0.5, 2] -> 2; from 2 also: min -> [0, -, 0.5, 0] -> 3;
    # then every score is 0 -> the first open frame, 1
    assert select_annotation_candidates(keys, shrinkages, selections, masks, k=3) == [2, 3, 1]
    scored = select_annotation_candidates(keys, shrinkages, selections, masks, k=2, return_scores=True)
    assert scored == [(2, pytest.approx(9.0)), (3, pytest.approx(0.5))]
    # frame 2 without a mask is never chosen: from 0: [1, -, 0.5, 2] -> 4; then min with
    # D(4, .) = [0.5, -, 3.375] -> [0.5, 0.5] -> tie -> 1
    masks[2] = 0
    assert select_annotation_candidates(keys, shrinkages, selections, masks, k=2) == [4, 1]
    assert select_annotation_candidates(keys, shrinkages, selections, masks, k=2,
                                        only_new_candidates=False) == [0, 4, 1]


def reference_selection(keys, shrinkages, selections, masks, k, chosen, alpha, min_percent=0.25, eps=0.5):
    """The spec (§5.4) written out directly, one pair at a time (test only)."""
    t, ck, h, w = keys.shape
    area = 100.0 * (masks.amax(1) > eps).float().mean((-2, -1))
    invalid = [bool(area[i] < min_percent) and i not in chosen for i in range(t)]
    grid = F.interpolate(masks, size=(h, w), mode="nearest").amax(1, keepdim=True)
    comp = (keys * (alpha * grid + 1 - alpha)).flatten(2)
    s, e = shrinkages.flatten(2), selections.flatten(2)

    def sim(mem, mem_s, query, query_e):   # S[i, j] = -(s_i / sqrt(Ck)) sum_c e_cj (k_ci - q_cj)^2
        diff = mem[:, :, None] - query[:, None, :]
        return -(mem_s[0][:, None] / math.sqrt(ck)) * (query_e[:, None, :] * diff ** 2).sum(0)

    chosen = list(chosen)
    new = []
    for _ in range(k):
        scores = []
        for j in range(t):
            if invalid[j]:
                scores.append(0.0)
                continue
            scores.append(min(float(torch.relu(sim(comp[c], s[c], comp[j], e[j]) - sim(comp[j], s[j], comp[c], e[c])).mean())
                              for c in chosen))
        pick = max(range(t), key=lambda i: (scores[i], -i))
        chosen.append(pick)
        new.append(pick)
    return new


def random_case(t=9, ck=4, h=3, w=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    keys = torch.randn(t, ck, h, w, generator=gen)
    shrinkages = 1 + torch.rand(t, 1, h, w, generator=gen) * 2
    selections = torch.rand(t, ck, h, w, generator=gen)
    masks = (torch.rand(t, 2, 12, 16, generator=gen) > 0.6).float() * torch.rand(t, 2, 1, 1, generator=gen)
    masks[:, 0, :4, :4] = 1
    return keys, shrinkages, selections, masks


@pytest.mark.parametrize("seed, alpha, chosen", [(0, 0.5, [0]), (1, 0.0, [3]), (2, 1.0, [0, 8])])
def test_candidates_match_the_spec_written_out(seed, alpha, chosen):
    keys, shrinkages, selections, masks = random_case(seed=seed)
    masks[5] = 0                                              # one frame without the object
    got = select_annotation_candidates(keys, shrinkages, selections, masks, k=4, alpha=alpha,
                                       previously_chosen=chosen)
    assert got == reference_selection(keys, shrinkages, selections, masks, 4, chosen, alpha)
    assert 5 not in got and not set(got) & set(chosen) and len(set(got)) == 4


def test_candidate_invariants():
    keys, shrinkages, selections, masks = random_case(t=7, seed=4)
    masks[[2, 4]] = 0
    first = select_annotation_candidates(keys, shrinkages, selections, masks, k=10, previously_chosen=[0, 3])
    again = select_annotation_candidates(keys, shrinkages, selections, masks, k=10, previously_chosen=[0, 3])
    assert first == again                                     # deterministic
    assert sorted(first) == [1, 5, 6]                         # only valid, unchosen frames; fewer than k
    # an annotated frame without object still counts as chosen (it is not invalidated)
    masks[0] = 0
    assert 0 not in select_annotation_candidates(keys, shrinkages, selections, masks, k=3)
    with pytest.raises(ValueError, match="previously_chosen"):
        select_annotation_candidates(keys, shrinkages, selections, masks, previously_chosen=[])
    with pytest.raises(ValueError, match="masks has 3 frames"):
        select_annotation_candidates(keys, shrinkages, selections, masks[:3])


class RecordingNetwork(torch.nn.Module):
    """Stands in for XMem: key = 16x16 average of the first normalised channel, twice."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.calls = []

    family = families()[0].name  # padded as that family pads (with zeros after normalising)

    def encode_key(self, image, need_shrinkage=True, need_selection=True):
        self.calls.append((tuple(image.shape), torch.is_grad_enabled(), need_shrinkage, need_selection))
        key = F.avg_pool2d(image[:, :1], 16).expand(-1, 2, -1, -1) + self.weight
        return KeyFeatures(key, torch.ones_like(key[:, :1]), torch.sigmoid(key), None)


def test_compute_candidate_keys_streams_frames_without_grad():
    net = RecordingNetwork()
    frames = torch.empty(5, 40, 56, 3)
    frames[:] = torch.tensor([0.485, 0.456, 0.406])            # ImageNet mean: normalises to 0
    keys, shrinkages, selections = compute_candidate_keys(net, frames, internal_short_side=32, batch_size=2)
    assert keys.shape == (5, 2, 2, 3) and shrinkages.shape == (5, 1, 2, 3) and selections.shape == (5, 2, 2, 3)
    assert [c[0][0] for c in net.calls] == [2, 2, 1]           # bounded batches, in order
    assert all(c[0][1:] == (3, 32, 48) and c[1] is False and c[2] and c[3] for c in net.calls)
    assert float(keys.abs().max()) < 1e-5                      # normalised, zero-padded


def test_compute_candidate_keys_with_xmem(xmem_net):
    net = xmem_net                                              # shared synthetic-weight XMem, eval mode
    frames = torch.rand(2, 24, 40, 3)
    keys, shrinkages, selections = compute_candidate_keys(net, frames, internal_short_side=-1)
    assert keys.shape == (2, 64, 2, 3) and keys.dtype == torch.float32
    assert float(shrinkages.min()) >= 1 and 0 < float(selections.min()) and float(selections.max()) < 1
    got = select_annotation_candidates(keys, shrinkages, selections, torch.ones(2, 1, 24, 40), k=1)
    assert got == [1]


# ------------------------------------------------------------------------------- signals
T, H, W = 10, 40, 48


def disc_probs(radius_per_frame, prob_inside=0.97, shift=None, cy=20):
    yy, xx = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing="ij")
    out = []
    for t, r in enumerate(radius_per_frame):
        cx = 20 + t + (shift[t] if shift else 0)
        dist = ((yy - cy) ** 2 + (xx - cx) ** 2).sqrt()
        out.append((r - dist + 0.5).clamp(0, 1) * prob_inside)
    return torch.stack(out).unsqueeze(1)


def test_steady_sequence_raises_nothing():
    masks = disc_probs([9] * T)
    assert frame_signals(masks, backward_masks=masks.clone()) == []
    assert frame_signals((masks[:, 0] > 0.5).long()) == []     # label map layout


def test_area_jump_vanish_and_low_confidence_fire_where_planted():
    masks = disc_probs([8] * 5 + [13] * 2 + [0] * 3)
    masks[3] = disc_probs([8] * T, prob_inside=0.55)[3]
    found = {(s.frame, s.reason) for s in frame_signals(masks)}
    assert found == {(5, "area_jump"), (7, "vanished"), (3, "low_confidence")}
    by_reason = {s.reason: s for s in frame_signals(masks)}
    assert by_reason["vanished"].score == pytest.approx(1.0)
    assert by_reason["low_confidence"].score == pytest.approx(1.0)   # all its pixels are unsure
    assert 0.5 < by_reason["area_jump"].score < 0.7 and by_reason["area_jump"].object_id == 1


def test_direction_disagreement_and_object_ids():
    forward = torch.cat([disc_probs([9] * T), disc_probs([5] * T, shift=[20] * 6 + [100] * 4, cy=6)], 1)
    backward = forward.clone()
    backward[4, 0] = disc_probs([9] * T, shift=[12] * T)[4, 0]
    found = {(s.frame, s.object_id, s.reason) for s in frame_signals(forward, [2, 5], backward_masks=backward)}
    assert (4, 2, "direction_disagreement") in found
    assert (6, 5, "vanished") in found
    assert all(r != "direction_disagreement" or f == 4 for f, _, r in found)
    only2 = frame_signals(forward, [2, 5], backward_masks=backward, ids=[2])
    assert {s.object_id for s in only2} == {2}


def test_ranking_merges_reasons_and_respects_exclusions():
    signals = [Suggestion(4, 1, "vanished", 0.9, "a"), Suggestion(4, 2, "area_jump", 0.5, "b"),
               Suggestion(9, 1, "low_confidence", 0.94, "c"), Suggestion(10, 1, "area_jump", 0.6, "d"),
               Suggestion(2, 1, "area_jump", 0.99, "e")]
    ranked = rank_suggestions(signals, candidates=[7, 4], k=3, exclude=[2])
    assert [s.frame for s in ranked] == [4, 9, 7]
    top = ranked[0]
    assert top.score == pytest.approx(1 - 0.1 * 0.5 * 0.7) and top.object_id is None
    assert top.reason == "vanished+area_jump+appearance_candidate"
    assert [s.frame for s in rank_suggestions(signals, k=5, min_gap=3)] == [2, 9]
    cands = candidate_suggestions([(3, 2.0), (8, 1.0)])
    assert [(c.frame, c.score, c.reason) for c in cands] == [(3, 0.6, "appearance_candidate"),
                                                            (8, 0.3, "appearance_candidate")]
