"""Mask files and shot inputs: colours to objects, JPEG, sizes, names — each refused in one line."""
import argparse

import numpy as np
import pytest
from PIL import Image

from memvos_core.media_io.annotations import (AnnotationError, assign_colour_ids, labels_of, load_mask,
                                     match_annotations, read_annotation, read_shot_masks)
from memvos_core.media_io.palette import palette_bytes
from memvos_core.command.shot_inputs import (ShotInputError, check_args, check_internal_size, check_shot_inputs)

H, W = 24, 32
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
DAVIS_1, DAVIS_2, DAVIS_4 = (128, 0, 0), (0, 128, 0), (0, 0, 128)


def rgb_mask(path, boxes, size=(H, W), mode="RGB", background=(0, 0, 0)):
    """``boxes``: [(colour, (y0, y1, x0, x1)), ...] painted in order on ``background``."""
    arr = np.zeros((*size, 3), np.uint8)
    arr[:] = background
    for colour, (y0, y1, x0, x1) in boxes:
        arr[y0:y1, x0:x1] = colour
    img = Image.fromarray(arr, "RGB")
    if mode != "RGB":
        img = img.convert(mode)
    img.save(path)
    return path


def indexed_mask(path, boxes, size=(H, W)):
    arr = np.zeros(size, np.uint8)
    for index, (y0, y1, x0, x1) in boxes:
        arr[y0:y1, x0:x1] = index
    img = Image.fromarray(arr, "P")
    img.putpalette(palette_bytes())
    img.save(path)
    return path


TOP = (2, 8, 2, 10)
BOTTOM = (14, 20, 16, 26)


# ----------------------------------------------------------------------------- colour masks

def test_red_and_green_are_two_objects_numbered_in_reading_order(tmp_path):
    labels = read_annotation(rgb_mask(tmp_path / "a.png", [(RED, TOP), (GREEN, BOTTOM)])).numpy()
    assert labels[4, 4] == 1 and labels[16, 20] == 2 and labels[0, 0] == 0
    assert set(np.unique(labels)) == {0, 1, 2}
    swapped = read_annotation(rgb_mask(tmp_path / "b.png", [(GREEN, TOP), (RED, BOTTOM)])).numpy()
    assert swapped[4, 4] == 1 and swapped[16, 20] == 2


@pytest.mark.parametrize("colour", [RED, BLUE, GREEN])
def test_a_single_pure_colour_is_one_object_not_empty(tmp_path, colour):
    labels = read_annotation(rgb_mask(tmp_path / "a.png", [(colour, TOP)])).numpy()
    assert labels[4, 4] == 1 and (labels > 0).sum() == 6 * 8


def test_davis_colours_keep_their_palette_index(tmp_path):
    rgb = read_annotation(rgb_mask(tmp_path / "rgb.png", [(DAVIS_4, TOP), (DAVIS_2, BOTTOM)])).numpy()
    indexed = read_annotation(indexed_mask(tmp_path / "idx.png", [(4, TOP), (2, BOTTOM)])).numpy()
    assert np.array_equal(rgb, indexed) and rgb[4, 4] == 4 and rgb[16, 20] == 2


def test_other_colours_take_the_smallest_free_ids(tmp_path):
    labels = read_annotation(rgb_mask(tmp_path / "a.png", [(RED, TOP), (DAVIS_1, BOTTOM)])).numpy()
    assert labels[16, 20] == 1 and labels[4, 4] == 2  # DAVIS colour 1 keeps 1; red takes the next free id


def test_colours_keep_their_ids_across_the_masks_of_a_shot(tmp_path):
    first = rgb_mask(tmp_path / "00000.png", [(GREEN, TOP), (RED, BOTTOM)])
    later = rgb_mask(tmp_path / "00005.png", [(BLUE, TOP), (RED, BOTTOM)])
    labels, colours = read_shot_masks({0: first, 5: later})
    assert labels[0][4, 4] == 1 and labels[0][16, 20] == 2
    assert labels[5][16, 20] == 2 and labels[5][4, 4] == 3  # red is still 2, blue is new
    assert colours == {1: 0x00FF00, 2: 0xFF0000, 3: 0x0000FF}


def test_indexed_ids_are_taken_before_colours_are_numbered(tmp_path):
    indexed = indexed_mask(tmp_path / "00000.png", [(1, TOP), (2, BOTTOM)])
    colour = rgb_mask(tmp_path / "00003.png", [(RED, TOP)])
    labels, _ = read_shot_masks({0: indexed, 3: colour})
    assert labels[3][4, 4] == 3


def test_transparent_pixels_are_background(tmp_path):
    arr = np.zeros((H, W, 4), np.uint8)
    arr[..., :3] = WHITE  # white everywhere, but only the box is opaque
    arr[2:8, 2:10] = (*RED, 255)
    arr[14:20, 16:26, 3] = 100  # faint: background
    Image.fromarray(arr, "RGBA").save(tmp_path / "a.png")
    labels = read_annotation(tmp_path / "a.png").numpy()
    assert set(np.unique(labels)) == {0, 1} and (labels == 1).sum() == 6 * 8


def test_anti_aliased_edges_are_refused_by_name(tmp_path):
    arr = np.zeros((H, W, 3), np.uint8)
    arr[4:12, 4:14] = RED
    arr[3, 4:14] = (128, 0, 2)   # blends of red and black along two edges (rounded)
    arr[12, 4:14] = (64, 0, 1)
    Image.fromarray(arr).save(tmp_path / "soft.png")
    with pytest.raises(AnnotationError, match=r"soft\.png: colour #800002 .*anti-aliasing.*hard brush"):
        read_annotation(tmp_path / "soft.png")


def test_a_thin_object_of_its_own_colour_is_kept(tmp_path):
    arr = np.zeros((H, W, 3), np.uint8)
    arr[4:12, 4:14] = RED
    arr[16, 2:30] = BLUE  # a one-pixel wire: no solid area, but not a blend of red and black
    Image.fromarray(arr).save(tmp_path / "wire.png")
    labels = read_annotation(tmp_path / "wire.png").numpy()
    assert labels[16, 10] == 2 and labels[5, 5] == 1


def test_a_photo_is_not_a_colour_mask(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(tmp_path / "photo.png")
    with pytest.raises(AnnotationError, match=r"photo\.png has \d+ colours.*one flat colour per object"):
        read_annotation(tmp_path / "photo.png")


def test_davis_void_colour_is_refused(tmp_path):
    path = rgb_mask(tmp_path / "v.png", [(DAVIS_1, TOP), ((224, 224, 192), BOTTOM)])
    with pytest.raises(AnnotationError, match=r"v\.png uses #e0e0c0.*void"):
        read_shot_masks({0: path})


# ----------------------------------------------------------------------------- black and white, indexed

def test_black_and_white_masks_are_one_object(tmp_path):
    white = read_annotation(rgb_mask(tmp_path / "w.png", [(WHITE, TOP)])).numpy()
    grey = read_annotation(rgb_mask(tmp_path / "g.png", [((200, 200, 200), TOP)], mode="L")).numpy()
    assert (white == 1).sum() == 48 and (grey == 1).sum() == 48 and white.max() == grey.max() == 1


def test_a_saved_boolean_array_is_read_as_one_object(tmp_path):
    arr = np.zeros((H, W), np.uint8)
    arr[2:8, 2:10] = 1
    Image.fromarray(arr, "L").save(tmp_path / "bool.png")
    assert (read_annotation(tmp_path / "bool.png").numpy() == 1).sum() == 48


def test_a_dark_grey_mask_is_empty_and_says_the_threshold(tmp_path):
    path = rgb_mask(tmp_path / "dark.png", [((100, 100, 100), TOP)], mode="L")
    with pytest.raises(AnnotationError, match=r"dark\.png is empty: no pixel is 128 or brighter"):
        read_annotation(path)


def test_void_index_and_a_255_only_mask_are_refused(tmp_path):
    with pytest.raises(AnnotationError, match="index 255, DAVIS's 'void'"):
        read_annotation(indexed_mask(tmp_path / "a.png", [(1, TOP), (255, BOTTOM)]))
    with pytest.raises(AnnotationError, match="only indices 0 and 255: if 255 is the object"):
        read_annotation(indexed_mask(tmp_path / "b.png", [(255, TOP)]))


# ----------------------------------------------------------------------------- JPEG

def test_black_and_white_jpeg_uses_the_threshold(tmp_path):
    path = rgb_mask(tmp_path / "00000.jpg", [(WHITE, (4, 20, 8, 24))])
    labels = read_annotation(path).numpy()
    assert labels.max() == 1 and abs(int(labels.sum()) - 16 * 16) <= 16  # compression moves a few edge pixels


def test_colour_jpeg_is_refused_by_name(tmp_path):
    path = rgb_mask(tmp_path / "00000.jpg", [(RED, TOP), (GREEN, BOTTOM)])
    with pytest.raises(AnnotationError, match=r"00000\.jpg is a colour JPEG.*save it as PNG"):
        load_mask(path)


# ----------------------------------------------------------------------------- files to frames

STEMS = [f"{i:05d}" for i in range(6)]


def test_masks_match_frames_by_name_or_number(tmp_path):
    rgb_mask(tmp_path / "00002.png", [(RED, TOP)])
    rgb_mask(tmp_path / "frame_4.png", [(RED, TOP)])
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / ".DS_Store").write_bytes(b"ignored")
    assert {i: p.name for i, p in match_annotations(tmp_path, STEMS).items()} == {2: "00002.png", 4: "frame_4.png"}


@pytest.mark.parametrize("files, pattern", [
    (["00009.png"], r"mask 00009\.png matches no frame \(the 6 frames are named 00000 \.\. 00005\)"),
    (["00002.png", "f2.png"], r"masks 00002\.png and f2\.png both annotate frame 00002"),
    (["00001.webp"], r"mask 00001\.webp: \.webp is not a mask format; save it as PNG"),
    ([], r"no masks in .*: put at least one keyframe mask there"),
])
def test_mask_files_that_cannot_be_used_are_named(tmp_path, files, pattern):
    for name in files:
        rgb_mask(tmp_path / name, [(RED, TOP)])
    with pytest.raises(AnnotationError, match=pattern):
        match_annotations(tmp_path, STEMS)


# ----------------------------------------------------------------------------- a shot

def shot(tmp_path, sizes=None, masks=None):
    frames, mask_dir = tmp_path / "frames", tmp_path / "masks"
    frames.mkdir()
    mask_dir.mkdir()
    for i, (h, w) in enumerate(sizes or [(H, W)] * 4):
        Image.fromarray(np.full((h, w, 3), 40 * i, np.uint8)).save(frames / f"{i:05d}.jpg")
    for name, boxes in (masks or {"00000.png": [(RED, TOP)]}).items():
        rgb_mask(mask_dir / name, boxes)
    return frames, mask_dir


def test_a_good_shot_is_checked_and_described(tmp_path):
    frames, masks = shot(tmp_path, masks={"00000.png": [(RED, TOP), (GREEN, BOTTOM)], "00003.png": [(GREEN, TOP)]})
    checked = check_shot_inputs(frames, masks, size=480)
    assert checked.frame_size == (H, W) and sorted(checked.keyframes) == [0, 3]
    assert checked.object_ids == [1, 2] and checked.keyframes[3][4, 4] == 2
    assert checked.describe() == "4 frames of 32x24; keyframes 00000, 00003; objects 1, 2 (colours: 1 = #ff0000, 2 = #00ff00)"


def test_frames_of_mixed_sizes_are_refused_by_name(tmp_path):
    frames, masks = shot(tmp_path, sizes=[(H, W), (H, W), (H + 8, W), (H + 8, W)])
    with pytest.raises(ShotInputError, match=r"frame 00002\.jpg is 32x32 but 00000\.jpg is 32x24 \(and 1 more\): "
                                             r"all frames of a shot must have one size"):
        check_shot_inputs(frames, masks)


def test_a_mask_of_another_size_is_refused(tmp_path):
    frames, masks = shot(tmp_path)
    rgb_mask(masks / "00001.png", [(RED, TOP)], size=(H, W + 2))
    with pytest.raises(ShotInputError, match=r"mask 00001\.png is 34x24 but frame 00001 is 32x24: masks must match "
                                             r"their frames; resize the mask to 32x24"):
        check_shot_inputs(frames, masks)


@pytest.mark.parametrize("size, ok", [(480, True), (-1, True), (16, True), (0, False), (-2, False), (8, False)])
def test_internal_size(size, ok):
    if ok:
        assert check_internal_size(size) == size
    else:
        with pytest.raises(ShotInputError, match=rf"--size {size}: give the shorter side .* or -1 for the native"):
            check_internal_size(size)


@pytest.mark.parametrize("start, end, pattern", [(4, None, r"--start 4: the shot has frames 0\.\.3"),
                                                 (-1, None, "--start -1"), (2, 2, r"--end 2: give a frame after"),
                                                 (0, 5, "--end 5")])
def test_frame_range(tmp_path, start, end, pattern):
    frames, masks = shot(tmp_path)
    with pytest.raises(ShotInputError, match=pattern):
        check_shot_inputs(frames, masks, start=start, end=end)


def _namespace(frames, masks, tmp_path, **changes):
    args = dict(frames=str(frames), masks=str(masks), out=str(tmp_path / "out"), weights="XMem.pth",
                models_dir=str(tmp_path / "models"), save_session=None, tta_scales=[], size=480, start=None, end=None)
    args.update(changes)
    return argparse.Namespace(**args)


@pytest.mark.parametrize("changes, pattern", [
    ({"weights": "MyXMem.pth"}, r"--weights MyXMem\.pth: no such file here or in .*not a known checkpoint"),
    ({"weights": "ckpt/none.pth"}, r"--weights ckpt/none\.pth: file not found"),
    ({"out": "FILE"}, r"--out .*: this is a file; give a folder"),
    ({"tta_scales": [1.0, 8.0]}, r"--tta-scales 8\.0: each scale must be between 0\.25 and 4"),
    ({"size": 0}, r"--size 0"),
])
def test_run_settings_are_checked_with_a_namespace(tmp_path, changes, pattern):
    frames, masks = shot(tmp_path)
    if changes.get("out") == "FILE":
        (tmp_path / "file").write_text("x")
        changes["out"] = str(tmp_path / "file")
    with pytest.raises(ShotInputError, match=pattern):
        check_args(_namespace(frames, masks, tmp_path, **changes))
    assert check_args(_namespace(frames, masks, tmp_path)).object_ids == [1]


def test_labels_of_a_colour_mask_alone_number_its_colours(tmp_path):
    mask = load_mask(rgb_mask(tmp_path / "a.png", [(BLUE, TOP), (RED, BOTTOM)]))
    assert assign_colour_ids([mask]) == {0x0000FF: 1, 0xFF0000: 2}
    assert labels_of(mask)[16, 20] == 2
