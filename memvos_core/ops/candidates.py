"""XMem++ annotation-candidate selection (spec §5.4): which frames to annotate next.

Frames are compared through their keys, each scaled by its mask (``alpha`` of the way), so the
comparison is about the target's appearance; frames far from everything chosen so far are
picked greedily. The pairwise score is the reference's, asymmetry included (see
``pairwise_dissimilarity``).
"""
import torch
import torch.nn.functional as F

from ..families.registry import family_of
from ..runtime.frames import internal_size, normalize, resize_image
from ..memory.similarity import similarity
from .chunking import Compute, OpCancelled, default_budget, frame_chunks, num_frames_of, read_chunk, run_chunked
from .inputs import check_frames

# Entries of one batch of HW x HW similarity matrices (x ~5 temporaries): about 64 MiB each.
_PAIR_ELEMENTS = 1 << 24


def compute_candidate_keys(network, frames, internal_short_side=480, device=None, batch_size=1,
                           store_device=None, progress=None, cancel=None, budget_bytes=None):
    """Keys for candidate selection, one frame (or ``batch_size`` frames) at a time, no grad.

    network: a network of a registered family (its ``encode_keys`` pads and encodes), in eval mode.
    frames: IMAGE ``[T,H,W,3]`` float 0..1 on any device, or a lazy source (``num_frames``,
    ``chunk(t0, t1)``); each batch is moved to ``device`` (default: the network's), resized so
    its shorter side is ``internal_short_side`` (``-1`` or ``None``: native size),
    ImageNet-normalised and padded as its family does. ``progress(done, total)`` after every
    batch; ``cancel()`` before every batch (True raises ``OpCancelled``).
    Returns float32 ``(keys [T,Ck,h,w], shrinkages [T,1,h,w], selections [T,Ck,h,w])`` on
    ``store_device`` (default: the frames' device), h and w the padded size / 16.
    ``store_device="auto"``: on the compute device when the whole clip's keys (measured on the
    first batch) fit ``budget_bytes`` (default: the device's budget), else on the CPU."""
    num_frames = num_frames_of(frames)
    first = check_frames(read_chunk(frames, 0, 1))
    if device is None:
        param = next(iter(network.parameters()), None) if hasattr(network, "parameters") else None
        device = param.device if param is not None else first.device
    device = torch.device(device)
    auto_store = isinstance(store_device, str) and store_device == "auto"
    store_device = first.device if store_device is None or auto_store else torch.device(store_device)
    size = internal_size(first.shape[1], first.shape[2], internal_short_side)
    keys, shrinkages, selections = [], [], []
    with torch.no_grad():
        encode_keys = family_of(network).encode_keys
        for t0, t1 in frame_chunks(num_frames, batch_size):
            if cancel is not None and cancel():
                raise OpCancelled("cancelled")
            image = check_frames(read_chunk(frames, t0, t1)).to(device).float().permute(0, 3, 1, 2)
            feats = encode_keys(network, normalize(resize_image(image, size)))
            if auto_store and t0 == 0:
                per_frame = sum(4 * t[:1].numel() for t in (feats.key, feats.shrinkage, feats.selection))
                budget = default_budget(device) if budget_bytes is None else int(budget_bytes)
                store_device = device if per_frame * num_frames <= budget else torch.device("cpu")
            keys.append(feats.key.float().to(store_device))
            shrinkages.append(feats.shrinkage.float().to(store_device))
            selections.append(feats.selection.float().to(store_device))
            if progress is not None:
                progress(t1, num_frames)
    return torch.cat(keys), torch.cat(shrinkages), torch.cat(selections)


def pairwise_dissimilarity(key_c, shrinkage_c, selection_c, keys_j, shrinkages_j, selections_j):
    """``D(c, j)`` for one chosen frame c and a batch of frames j (spec §5.4 step 3).

    key_c ``[Ck,N]``, shrinkage_c ``[1,N]``, selection_c ``[Ck,N]``; keys_j ``[B,Ck,N]`` etc.
    ``A = sim(memory c -> query j)`` and ``B = sim(memory j -> query c)`` are both ``N x N``;
    ``D = mean(ReLU(A - B))`` compares them at equal indices (no transpose, as the reference
    does), so D is not symmetric. Returns ``[B]``."""
    batch = keys_j.shape[0]
    expand = (lambda t: t.unsqueeze(0).expand(batch, *t.shape))
    a = similarity(expand(key_c), expand(shrinkage_c), keys_j, selections_j)
    b = similarity(keys_j, shrinkages_j, expand(key_c), expand(selection_c))
    return torch.relu(a - b).mean((1, 2))


def _mask_summaries(masks, grid_hw, epsilon, device, budget_bytes=None):
    """Per frame: the mask's area in percent and its channel-max resized (nearest) to the key
    grid, computed on ``device`` in budget-sized chunks and left there (they are small)."""
    if not torch.is_tensor(masks) or masks.dim() not in (3, 4):
        raise ValueError(f"masks has shape {tuple(getattr(masks, 'shape', ()))}: expected [T,C,H,W] or "
                         "[T,H,W] probabilities in 0..1 (or an integer label map [T,H,W])")
    if masks.dim() == 3:
        masks = masks.unsqueeze(1) if masks.is_floating_point() else (masks > 0).unsqueeze(1)

    def work(t0, t1, dev):
        m = masks[t0:t1].to(dev).float()
        return (100.0 * (m.amax(1) > epsilon).float().mean((-2, -1)),
                F.interpolate(m, size=grid_hw, mode="nearest").amax(1, keepdim=True))
    # float32 per pixel: the masks, their channel max and the comparison
    bytes_per_frame = masks.shape[-2] * masks.shape[-1] * 4 * (masks.shape[1] + 2)
    parts = run_chunked(masks.shape[0], work, bytes_per_frame=bytes_per_frame,
                        compute=Compute(device, device, budget_bytes), source_device=masks.device)
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def select_annotation_candidates(keys, shrinkages, selections, masks, k=5, previously_chosen=(0,),
                                 alpha=0.5, min_mask_presence_percent=0.25, epsilon=0.5,
                                 only_new_candidates=True, return_scores=False, device=None, budget_bytes=None,
                                 progress=None, cancel=None):
    """XMem++'s greedy choice of the next ``k`` frames to annotate (spec §5.4).

    keys ``[T,Ck,h,w]``, shrinkages ``[T,1,h,w]``, selections ``[T,Ck,h,w]`` (see
    ``compute_candidate_keys``); masks ``[T,C,H',W']`` in 0..1 (any size; stretched to h x w).
    A frame whose mask covers less than ``min_mask_presence_percent`` % (pixels > ``epsilon``)
    is never chosen. Each round picks the frame maximising ``min over chosen c of D(c, j)``,
    first index on ties. Unlike the reference, a round never re-picks a chosen or invalid frame
    (where the reference, with every score 0, would return index 0 again); when no valid frame
    is left, fewer than ``k`` are returned. Deterministic.
    Runs on ``device`` (default: the keys'); keys stored elsewhere move there whole when they
    fit ``budget_bytes`` (default: the device's), else a batch of frames at a time.
    ``progress(done, total)`` after each pick (of ``k``); ``cancel()`` before each (True raises
    ``OpCancelled``).
    Returns the new indices in selection order (with ``only_new_candidates=False``: the
    previously chosen ones first); with ``return_scores`` a list of ``(index, score)`` instead."""
    if keys.dim() != 4:
        raise ValueError(f"keys has shape {tuple(keys.shape)}: expected [T,Ck,h,w]")
    num_frames, ck, h, w = keys.shape
    if tuple(shrinkages.shape) != (num_frames, 1, h, w) or tuple(selections.shape) != tuple(keys.shape):
        raise ValueError(f"shrinkages {tuple(shrinkages.shape)} / selections {tuple(selections.shape)} do not "
                         f"match keys {tuple(keys.shape)}: expected [T,1,h,w] and [T,Ck,h,w]")
    if masks.shape[0] != num_frames:
        raise ValueError(f"masks has {masks.shape[0]} frames but keys have {num_frames}: give one mask per frame")
    chosen_list = [int(i) for i in previously_chosen]
    if not chosen_list or any(not 0 <= i < num_frames for i in chosen_list):
        raise ValueError(f"previously_chosen {list(previously_chosen)} must be a non-empty list of frame "
                         f"indices in 0..{num_frames - 1} (e.g. the annotated frames)")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha is {alpha}: give a value in 0..1")
    device = keys.device if device is None else torch.device(device)
    budget = default_budget(device) if budget_bytes is None else int(budget_bytes)
    store = device if 4 * (2 * ck + 1) * h * w * num_frames <= budget else keys.device
    area_percent, grid = _mask_summaries(masks, (h, w), epsilon, store, budget)
    chosen = torch.zeros(num_frames, dtype=torch.bool, device=device)
    chosen[chosen_list] = True
    valid = (area_percent.to(device) >= min_mask_presence_percent) | chosen
    composite = (keys.to(store).float() * (alpha * grid + 1 - alpha)).flatten(2)
    shrink, select = shrinkages.to(store).float().flatten(2), selections.to(store).float().flatten(2)
    batch = max(1, _PAIR_ELEMENTS // (h * w * h * w))
    closest = torch.full((num_frames,), float("inf"), device=device)

    def absorb(c):
        """Lower every open frame's score by its dissimilarity from newly chosen frame c."""
        open_frames = torch.nonzero(valid & ~chosen)[:, 0].to(store)
        mine = [t[c].to(device) for t in (composite, shrink, select)]
        for s in range(0, open_frames.numel(), batch):
            j = open_frames[s:s + batch]
            d = pairwise_dissimilarity(*mine, composite[j].to(device), shrink[j].to(device), select[j].to(device))
            j = j.to(device)
            closest[j] = torch.minimum(closest[j], d)

    for c in dict.fromkeys(chosen_list):
        absorb(c)
    picked = []
    for round_index in range(int(k)):
        if cancel is not None and cancel():
            raise OpCancelled("cancelled")
        open_mask = valid & ~chosen
        if not bool(open_mask.any()):
            break
        scores = torch.where(open_mask, closest, torch.full_like(closest, -float("inf")))
        j = int(torch.argmax(scores))
        picked.append((j, float(scores[j])))
        chosen[j] = True
        absorb(j)
        if progress is not None:
            progress(round_index + 1, int(k))
    if progress is not None and len(picked) < int(k):  # no frame left to pick: the bar still completes
        progress(int(k), int(k))
    result = picked if return_scores else [j for j, _ in picked]
    if only_new_candidates:
        return result
    prefix = [(i, 0.0) for i in chosen_list] if return_scores else chosen_list
    return prefix + result
