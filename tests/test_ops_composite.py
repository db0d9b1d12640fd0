"""Composite outputs: overlay, matte, background replacement, inpainting prep, palette."""
import math

import pytest
import torch
import torch.nn.functional as F

from memvos_core.ops import inpaint_prep, mask_to_image, matte, overlay, replace_background
from memvos_core.ops.glyphs import render_number
from memvos_core.media_io.palette import davis_palette, object_colors, palette_bytes, palette_index

T, H, W = 3, 40, 56


def clip():
    gen = torch.Generator().manual_seed(0)
    frames = torch.rand(T, H, W, 3, generator=gen)
    labels = torch.zeros(T, H, W, dtype=torch.int64)
    for t in range(T):
        labels[t, 5:20, 4 + 3 * t:20 + 3 * t] = 1
        labels[t, 22:36, 30:50] = 3
    return frames, labels


def one_hot(labels, ids=(1, 3)):
    return torch.stack([(labels == i).float() for i in ids], 1)


def test_davis_palette_entries():
    pal = davis_palette()
    assert pal.shape == (256, 3) and pal.dtype == torch.uint8
    expected = {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 3: (128, 128, 0), 4: (0, 0, 128),
                5: (128, 0, 128), 6: (0, 128, 128), 7: (128, 128, 128), 8: (64, 0, 0), 255: (224, 224, 192)}
    for index, rgb in expected.items():
        assert tuple(pal[index].tolist()) == rgb
    assert len(palette_bytes()) == 768 and palette_bytes()[3:6] == [128, 0, 0]
    assert palette_index(256) != 0 and palette_index(1) == 1
    with pytest.raises(ValueError, match="object id 0"):
        palette_index(0)


def test_overlay_tints_objects_and_leaves_the_rest():
    frames, labels = clip()
    out = overlay(frames, labels, opacity=0.4, outline_px=0)
    colors = object_colors([1, 3])
    for k, object_id in enumerate((1, 3)):
        at = labels == object_id
        assert torch.allclose(out[at], 0.6 * frames[at] + 0.4 * colors[k], atol=1e-6)
    assert torch.equal(out[labels == 0], frames[labels == 0])
    assert out.shape == frames.shape and out.dtype == torch.float32


def test_overlay_subset_outline_and_layouts_agree():
    frames, labels = clip()
    only3 = overlay(frames, labels, ids=[3], outline_px=2)
    assert torch.equal(only3[labels == 1], frames[labels == 1])
    color3 = object_colors([3])[0]
    # the square of object 3 has its 2-px outline opaque, its inside tinted
    assert torch.allclose(only3[0, 22, 40], color3) and torch.allclose(only3[0, 23, 40], color3)
    assert not torch.allclose(only3[0, 29, 40], color3)
    soft = overlay(frames, one_hot(labels), object_ids=[1, 3], ids=[3], outline_px=2)
    assert torch.allclose(soft, only3, atol=1e-6)


def test_overlay_draws_object_ids():
    frames, labels = clip()
    plain = overlay(frames, labels, outline_px=0)
    labelled = overlay(frames, labels, outline_px=0, draw_ids=True, label_scale=2)
    changed = (plain != labelled).any(-1)
    glyph = render_number(3, 2)
    assert glyph.shape == (10, 6)
    # the label of object 3 is centred on its centroid (28.5, 39.5): a 14x10 white-on-black box
    box = labelled[0, 22:36, 30:50]
    white = (box == 1).all(-1)
    assert int(white.sum()) == int(glyph.sum())
    assert changed[0, 22:36, 30:50].sum() > 0 and not changed[0, :, :3].any()
    assert render_number(10, 1).shape == (5, 7)


def test_matte_rgba_and_on_black():
    frames, labels = clip()
    rgba = matte(frames, labels, ids=[1])
    assert rgba.shape == (T, H, W, 4)
    assert torch.equal(rgba[..., :3], frames) and torch.equal(rgba[..., 3], (labels == 1).float())
    black = matte(frames, labels, mode="on_black")
    assert torch.equal(black, frames * (labels > 0).float().unsqueeze(-1))
    single = matte(frames, (labels == 3).float())
    assert torch.equal(single[..., 3], (labels == 3).float())


def test_background_replacement_is_exact_where_mask_is_0_or_1():
    frames, labels = clip()
    keep = labels > 0
    out = replace_background(frames, labels, (0.0, 1.0, 0.0))
    assert torch.equal(out[keep], frames[keep])
    assert torch.equal(out[~keep], torch.tensor([0.0, 1.0, 0.0]).expand(int((~keep).sum()), 3))
    assert torch.equal(replace_background(frames, labels, "#00ff00"), out)
    image = torch.rand(1, H // 2, W // 2, 3)
    out = replace_background(frames, labels, image)
    resized = F.interpolate(image.permute(0, 3, 1, 2), size=(H, W), mode="bilinear",
                            align_corners=False).permute(0, 2, 3, 1).expand(T, H, W, 3)
    assert torch.equal(out[keep], frames[keep])
    assert torch.allclose(out[~keep], resized[~keep], atol=1e-6)
    video = torch.rand(T, H, W, 3)
    out = replace_background(frames, labels, video, ids=[3])
    assert torch.equal(out[labels != 3], video[labels != 3])
    with pytest.raises(ValueError, match="background has 2 frames"):
        replace_background(frames, labels, torch.rand(2, H, W, 3))


def test_soft_mask_blends_and_internal_size_masks_are_resized():
    frames, labels = clip()
    half = torch.full((T, H // 2, W // 2), 0.5)
    out = replace_background(frames, half, (0.0, 0.0, 0.0))
    assert torch.allclose(out, frames * 0.5, atol=1e-6)
    with pytest.raises(ValueError, match="aspect ratio"):
        matte(frames, torch.ones(T, H, H))
    with pytest.raises(ValueError, match="masks has 2 frames"):
        matte(frames, torch.ones(2, H, W))


def disc_labels(radius, centers):
    yy, xx = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing="ij")
    return torch.stack([(((yy - cy) ** 2 + (xx - cx) ** 2) <= radius ** 2).long() * 2 for cy, cx in centers])


def test_inpaint_mask_is_grown_by_n_and_covers_the_object():
    labels = disc_labels(8, [(20, 20)] * T)
    frames = torch.rand(T, H, W, 3)
    prep = inpaint_prep(frames, labels, grow_px=5, feather_px=0)
    assert prep.mask.shape == (T, H, W) and prep.box is None
    assert float(prep.mask[0].sum()) == pytest.approx(math.pi * 13 ** 2, rel=0.04)
    assert torch.equal(prep.mask_image, mask_to_image(prep.mask)) and prep.mask_image.shape == (T, H, W, 3)
    soft = inpaint_prep(frames, labels, grow_px=5, feather_px=4)
    assert (soft.mask[labels > 0] == 1).all()                 # the object itself is always filled
    assert float(soft.mask.max()) == 1 and float(soft.mask.min()) == 0
    assert (soft.mask[prep.mask == 0] < 1).all()


def test_inpaint_crop_box_covers_the_union_over_the_shot():
    centers = [(12, 12), (20, 26), (27, 40)]
    labels = disc_labels(5, centers)
    frames = torch.rand(T, H, W, 3)
    prep = inpaint_prep(frames, labels, grow_px=2, feather_px=2, crop=True, crop_margin_px=3, crop_multiple=8)
    x, y, bw, bh = prep.box
    assert 0 <= x and 0 <= y and x + bw <= W and y + bh <= H
    assert bw % 8 == 0 and bh % 8 == 0
    inside = torch.zeros(H, W, dtype=torch.bool)
    inside[y:y + bh, x:x + bw] = True
    assert (prep.mask[:, ~inside] == 0).all()                 # nothing of any frame is cut off
    ys, xs = torch.nonzero((prep.mask > 0).any(0), as_tuple=True)
    assert x <= int(xs.min()) - 3 and int(xs.max()) + 3 < x + bw   # the margin is kept
    assert prep.frames_cropped.shape == (T, bh, bw, 3)
    assert torch.equal(prep.frames_cropped, frames[:, y:y + bh, x:x + bw])
    assert torch.equal(prep.mask_cropped, prep.mask[:, y:y + bh, x:x + bw])
    assert prep.mask_image_cropped.shape == (T, bh, bw, 3)
    empty = inpaint_prep(frames, torch.zeros(T, H, W), crop=True)
    assert empty.box == (0, 0, W, H) and float(empty.mask.sum()) == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_composites_run_on_the_frames_device():
    frames, labels = clip()
    out = overlay(frames.cuda(), labels.cuda(), draw_ids=True)
    assert out.device.type == "cuda"
    assert torch.allclose(out.cpu(), overlay(frames, labels, draw_ids=True), atol=1e-5)
