"""Temporal stabilisation: flicker drops on a static object, a fast object leaves no trail."""
import pytest
import torch

from memvos_core.ops import TemporalStabilizer, stabilize

T, H, W = 12, 48, 64
RED = torch.tensor([0.9, 0.2, 0.2])


def textured_background(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(1, H, W, 3, generator=gen) * 0.5


def flicker(masks):
    return float((masks[1:] - masks[:-1]).abs().mean())


def static_object_with_flicker(seed=0):
    """A still red disc on still texture (plus camera noise); its mask's edge and values jitter."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing="ij")
    dist = ((yy - 24) ** 2 + (xx - 32) ** 2).sqrt()
    inside = (dist < 14).float()[None, ..., None]
    frames = textured_background(seed) * (1 - inside) + inside * RED
    frames = (frames + 0.01 * torch.randn(T, H, W, 3, generator=gen)).clamp(0, 1)
    edge = 14 + torch.randn(T, 1, 1, generator=gen)
    masks = (edge - dist + 0.5).clamp(0, 1)
    masks = (masks + 0.15 * torch.randn(T, H, W, generator=gen) * (masks > 0)).clamp(0, 1)
    return frames, masks


def fast_object():
    """A red square moving 6 px per frame (half its width) over still texture; exact masks."""
    frames = textured_background().expand(T, H, W, 3).clone()
    masks = torch.zeros(T, H, W)
    for t in range(T):
        x0 = 2 + 5 * t
        frames[t, 16:32, x0:x0 + 10] = RED
        masks[t, 16:32, x0:x0 + 10] = 1
    return frames, masks


@pytest.mark.parametrize("seed", [0, 1])
def test_flicker_drops_on_a_static_object(seed):
    frames, masks = static_object_with_flicker(seed)
    out = stabilize(frames, masks, radius=2)
    # measured: flicker drops by 5.3x (seed 0); stated margin: at least 3x
    assert flicker(out) * 3 <= flicker(masks), (flicker(masks), flicker(out))
    true_mask = masks.mean(0, keepdim=True)
    assert float((out - true_mask).abs().mean()) < float((masks - true_mask).abs().mean())


def test_fast_object_leaves_no_trail():
    frames, masks = fast_object()
    out = stabilize(frames, masks, radius=2)
    behind = (masks.cumsum(0) > 0) & (masks == 0)    # covered earlier, background now
    assert behind.any()
    assert float(out[behind].max()) < 0.01
    assert float(out[masks > 0].min()) > 0.99       # nor is the object itself eaten away
    assert float(out[masks.sum(0, keepdim=True).expand_as(masks) == 0].max()) == 0.0


def test_streaming_matches_chunked_and_chunks_do_not_matter():
    frames, masks = static_object_with_flicker()
    whole = stabilize(frames, masks, radius=2, chunk_size=100)
    assert torch.allclose(stabilize(frames, masks, radius=2, chunk_size=3), whole, atol=1e-6)
    stream, outputs = TemporalStabilizer(radius=2), []
    for t in range(T):
        ready = stream.push(frames[t], masks[t])
        assert len(outputs) + len(ready) == max(0, t - 1)   # each frame comes back 2 frames later
        outputs += ready
    outputs += stream.flush()
    assert len(outputs) == T
    assert torch.allclose(torch.stack(outputs), whole, atol=1e-6)
    assert len(stream._window) <= 5


def test_per_object_masks_and_lower_resolution():
    frames, masks = static_object_with_flicker()
    two = torch.stack([masks, 1 - masks], 1)[:, :, ::2, ::2]
    out = stabilize(frames, two, radius=1)
    assert out.shape == (T, 2, H // 2, W // 2)
    assert torch.allclose(out[:, 0] + out[:, 1], torch.ones(T, H // 2, W // 2), atol=1e-5)


def test_radius_zero_is_identity_and_bad_input_is_named():
    frames, masks = fast_object()
    assert torch.equal(stabilize(frames, masks, radius=0), masks)
    with pytest.raises(ValueError, match="masks has shape"):
        stabilize(frames, masks[:5])
    with pytest.raises(ValueError, match="color_sigma"):
        stabilize(frames, masks, color_sigma=0)
