"""Small synthetic shots for session tests: a textured background with moving discs."""
import torch

from memvos_core.config import MemoryConfig
from memvos_core.session import Session


def moving_discs(num_frames=12, height=48, width=64, num_objects=2, seed=0):
    """IMAGE-like float ``[T,H,W,3]`` and label maps ``[T,H,W]`` uint8 (ids 1..num_objects)."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, height // 4, width // 4, generator=gen)
    base = torch.nn.functional.interpolate(base, size=(height, width), mode="bilinear")[0]
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    frames, labels = [], []
    for t in range(num_frames):
        img = base.clone()
        lab = torch.zeros(height, width, dtype=torch.uint8)
        for o in range(num_objects):
            cx = (width * (0.25 + 0.5 * o) + (3 - 6 * o) * t) % width
            cy = height * 0.5
            disc = (xx - cx) ** 2 + (yy - cy) ** 2 < (height / 5) ** 2
            img[:, disc] = torch.tensor([0.9, 0.3 + 0.5 * o, 0.2])[:, None]
            lab[disc] = o + 1
        frames.append(img.permute(1, 2, 0))
        labels.append(lab)
    return torch.stack(frames), torch.stack(labels)


def small_config(mode="xmem++", **changes):
    return MemoryConfig(memory_mode=mode, mem_every=2, top_k=8, min_mid_term_frames=2,
                        max_mid_term_frames=4, num_prototypes=16, max_long_term_elements=200, **changes)


def session_with_keys(model, frames, labels, keys, mode="xmem++", **kw):
    s = Session(model, small_config(mode), internal_size=kw.pop("internal_size", -1), **kw)
    for k in keys:
        s = s.add_label_map(k, frames[k], labels[k])
    return s


def stored(result):
    """A propagation's stored (quantised) probabilities at internal size, by frame."""
    return {i: result.internal(i) for i in result.frame_indices}


def same(a, b):
    return (a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))


def assert_chunks_equal_one_pass(session, frames, parts):
    """Propagating ``frames`` in chunks (``parts``: ``(lo, hi)`` ranges in the pass's order) gives
    the same stored masks as one pass, for each direction (``parts`` per direction); each chunk
    is told the shot's length, as a chunk of a longer shot must be."""
    for direction, ranges in parts.items():
        _, whole = session.propagate(frames, direction=direction)
        chunked, state = {}, session
        for lo, hi in ranges:
            state, part = state.propagate(frames[lo:hi], first_frame_index=lo, direction=direction,
                                          shot_length=len(frames))
            chunked.update(stored(part))
        assert sorted(chunked) == whole.frame_indices
        for t, prob in stored(whole).items():
            assert same(chunked[t], prob), (direction, t)
