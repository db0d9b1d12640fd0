"""Frames to annotate next: XMem++ appearance candidates plus per-frame signs that an object is
lost or wrong, merged into one ranked list of distinct frames.

Signals (per frame and object, from the propagated probabilities):
* ``area_jump``: the object's area changes by a large fraction from one frame to the next;
* ``vanished``: the object was present and its area drops to ~0;
* ``low_confidence``: where the object wins, its probability is low on average, or a large share
  of its pixels are uncertain;
* ``direction_disagreement``: forward and backward propagation disagree (1 - IoU).
XMem++ candidates carry the reason ``appearance_candidate``.
"""
from dataclasses import dataclass, replace
from typing import Optional

import torch

from .candidates import compute_candidate_keys, select_annotation_candidates  # noqa: F401 (re-export)
from .chunking import Compute, run_chunked
from .inputs import ObjectMasks


@dataclass(frozen=True)
class Suggestion:
    """One frame worth looking at: ``frame`` index, ``object_id`` (``None``: the whole frame),
    ``reason`` (short tag), ``score`` in 0..1 (higher: more worth annotating), ``detail`` (text)."""
    frame: int
    object_id: Optional[int]
    reason: str
    score: float
    detail: str = ""


def _frame_stats(objects, ids, backward, chunk_size, compute):
    """Per frame and selected object: area fraction, mean winning probability, winning pixel
    count, uncertain share, and (with ``backward``) forward/backward IoU. CPU tensors ``[T,n]``."""
    cols = [objects.ids.index(i) for i in ids] if not objects.is_label_map else list(range(len(ids)))
    everyone_ids = None if not objects.is_label_map else ids
    n_all = len(objects.select(everyone_ids))
    # float32 planes per pixel: every object, the background and the argmax input, the
    # selected objects' comparisons, and the other direction's masks.
    planes = 2 * n_all + 2 + 4 * len(ids) + (len(ids) if backward is not None else 0)
    h, w = objects.size

    def work(t0, t1, device):
        stats = {}
        everyone = objects.chunk(t0, t1, everyone_ids, device=device)
        p = everyone[:, cols]
        solid = p >= 0.5
        stats["area"] = solid.float().mean((-2, -1))
        background = (1 - everyone.sum(1, keepdim=True)).clamp(min=0)
        winner = torch.cat([background, everyone], 1).argmax(1, keepdim=True) - 1
        wins = winner == torch.tensor(cols, device=p.device).view(1, -1, 1, 1)
        count = wins.sum((-2, -1)).float()
        stats["wins"] = count
        stats["confidence"] = (p * wins).sum((-2, -1)) / count.clamp(min=1)
        support = (p > 0.25).sum((-2, -1)).float()
        unsure = ((p > 0.25) & (p < 0.75)).sum((-2, -1)).float()
        stats["uncertain"] = unsure / support.clamp(min=1)
        if backward is not None:
            q = backward.chunk(t0, t1, ids, objects.size, device) >= 0.5
            inter = (solid & q).sum((-2, -1)).float()
            union = (solid | q).sum((-2, -1)).float()
            stats["iou"] = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
        return stats
    # Statistics are a few numbers per frame: they always come back to the CPU.
    compute = replace(compute or Compute(), output_device="cpu")
    parts = run_chunked(objects.num_frames, work, bytes_per_frame=h * w * 4 * planes, compute=compute,
                        source_device=objects.device, chunk_size=chunk_size)
    return {name: torch.cat([p[name] for p in parts]) for name in parts[0]}


def frame_signals(masks, object_ids=None, backward_masks=None, ids=None, area_jump=0.4,
                  min_area_fraction=0.001, vanish_ratio=0.05, confidence_threshold=0.7,
                  uncertain_threshold=0.35, disagreement_threshold=0.3, chunk_size=None, compute=None):
    """Per-frame signs that an object is lost or wrong.

    masks: propagated per-object probabilities ``[T,N,H,W]`` float 0..1 (with ``object_ids``),
    a MASK ``[T,H,W]`` or an integer label map ``[T,H,W]`` (hard masks never look unsure).
    backward_masks: the other propagation direction in the same layout (optional).
    ids: the objects to check (default all). Areas are fractions of the frame (``mask >= 0.5``).
    * area_jump: |a_t - a_{t-1}| / max(a_t, a_{t-1}) >= ``area_jump`` while the larger area is at
      least ``min_area_fraction``; score = that ratio.
    * vanished: present (>= ``min_area_fraction``) at t-1 and below ``vanish_ratio`` of that area
      at t; score = 1 - a_t / a_{t-1}.
    * low_confidence: mean probability where the object wins < ``confidence_threshold``, or
      share of its pixels with 0.25 < p < 0.75 above ``uncertain_threshold``;
      score = max(2 * (1 - confidence), uncertain share).
    * direction_disagreement: 1 - IoU(forward, backward) >= ``disagreement_threshold``.
    The statistics are computed on ``compute.device`` in budget-sized chunks (default: where the
    masks are). Returns a list of ``Suggestion`` sorted by frame, then object."""
    objects = ObjectMasks(masks, object_ids, "masks")
    ids = objects.select(ids)
    backward = None
    if backward_masks is not None:
        backward = ObjectMasks(backward_masks, objects.ids if not objects.is_label_map else None,
                               "backward_masks")
        backward.check_frames_match(objects.num_frames, objects.size)
    stats = _frame_stats(objects, ids, backward, chunk_size, compute)
    area, out = stats["area"], []
    min_present = float(min_area_fraction)
    for k, object_id in enumerate(ids):
        a = area[:, k].tolist()
        conf, wins, unsure = (stats[n][:, k].tolist() for n in ("confidence", "wins", "uncertain"))
        for t in range(len(a)):
            if t > 0:
                before, now = a[t - 1], a[t]
                larger = max(before, now)
                if before >= min_present and now < vanish_ratio * before:
                    out.append(Suggestion(t, object_id, "vanished", min(1.0, 1 - now / before),
                                          f"object {object_id} shrank from {before:.2%} to {now:.2%} of the frame"))
                elif larger >= min_present and abs(now - before) / larger >= area_jump:
                    change = "reappeared at" if before < min_present else "area went"
                    out.append(Suggestion(t, object_id, "area_jump", abs(now - before) / larger,
                                          f"object {object_id} {change} {before:.2%} -> {now:.2%} of the frame"))
            if a[t] >= min_present and wins[t] > 0 and (conf[t] < confidence_threshold
                                                        or unsure[t] > uncertain_threshold):
                score = min(1.0, max(2 * (1 - conf[t]), unsure[t]))
                out.append(Suggestion(t, object_id, "low_confidence", score,
                                      f"object {object_id}: mean probability {conf[t]:.2f} where it wins, "
                                      f"{unsure[t]:.0%} of its pixels uncertain"))
            if "iou" in stats:
                disagreement = 1 - float(stats["iou"][t, k])
                if disagreement >= disagreement_threshold:
                    out.append(Suggestion(t, object_id, "direction_disagreement", disagreement,
                                          f"object {object_id}: forward and backward masks overlap at IoU "
                                          f"{1 - disagreement:.2f}"))
    return sorted(out, key=lambda s: (s.frame, s.object_id or 0))


def candidate_suggestions(candidates, weight=0.6):
    """XMem++ candidates as suggestions. ``candidates``: indices in selection order (scores
    1, 1 - 1/n, ... by rank) or ``(index, score)`` pairs (scores divided by the largest); both
    times ``weight``, so that a clear sign of a lost object outranks a frame that merely looks
    different, while a frame that is both rises to the top."""
    items = list(candidates)
    if not items:
        return []
    if isinstance(items[0], (tuple, list)):
        top = max(max(s for _, s in items), 1e-12)
        ranked = [(int(i), max(0.0, min(1.0, s / top))) for i, s in items]
    else:
        ranked = [(int(i), 1 - r / len(items)) for r, i in enumerate(items)]
    return [Suggestion(i, None, "appearance_candidate", weight * score,
                       f"appearance differs most from the annotated frames (pick #{r + 1})")
            for r, (i, score) in enumerate(ranked)]


def rank_suggestions(signals=(), candidates=(), k=5, exclude=(), min_gap=0):
    """Merge signals and XMem++ candidates into the ``k`` best distinct frames.

    signals: ``Suggestion`` list (e.g. from ``frame_signals``); candidates: as for
    ``candidate_suggestions`` (or already ``Suggestion``s). Per frame the scores combine as
    ``1 - prod(1 - s)`` (several independent reasons make a frame more suspect). Frames in
    ``exclude`` (e.g. already annotated) are skipped, and picks are at least ``min_gap`` frames
    apart. Returns ``Suggestion``s, best first: the object id when a single object is involved
    (else ``None``), reasons joined by ``+`` (strongest first), details joined by ``; ``."""
    items = list(signals)
    cands = list(candidates)
    items += cands if cands and isinstance(cands[0], Suggestion) else candidate_suggestions(cands)
    excluded = {int(i) for i in exclude}
    per_frame = {}
    for s in items:
        if s.frame not in excluded:
            per_frame.setdefault(s.frame, []).append(s)
    merged = []
    for frame, group in per_frame.items():
        group.sort(key=lambda s: -s.score)
        keep = 1.0
        for s in group:
            keep *= 1 - max(0.0, min(1.0, s.score))
        objects = {s.object_id for s in group}
        reasons = list(dict.fromkeys(s.reason for s in group))
        merged.append(Suggestion(frame, objects.pop() if len(objects) == 1 else None, "+".join(reasons),
                                 1 - keep, "; ".join(s.detail for s in group if s.detail)))
    merged.sort(key=lambda s: (-s.score, s.frame))
    picked = []
    for s in merged:
        if len(picked) >= int(k):
            break
        if all(abs(s.frame - p.frame) >= max(1, int(min_gap)) for p in picked):
            picked.append(s)
    return picked
