"""nodes/preview.py: atlas pages and manifest for the browser player (pure Python, no browser)."""
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _load_preview_module():
    # Loaded by path: the pack's `nodes` name may be taken by a stand-in for ComfyUI's own module.
    spec = importlib.util.spec_from_file_location("memvos_preview_under_test", ROOT / "nodes" / "preview.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


preview = _load_preview_module()


def moving_shapes(num_frames, height, width, ids=(1, 2)):
    """A box moving right (first id) and a disc moving down (second id) over a colour gradient."""
    t = torch.arange(num_frames).view(-1, 1, 1)
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    box = (xs >= t) & (xs < t + width // 4) & (ys >= height // 4) & (ys < height // 2)
    disc = (xs - width * 3 // 4) ** 2 + (ys - height // 2 - t) ** 2 < (height // 6) ** 2
    labels = torch.where(disc, ids[1], torch.where(box, ids[0], 0)).to(torch.int64)
    background = torch.stack([xs / width, ys / height, torch.full_like(xs, 0.5, dtype=torch.float32)], -1)
    frames = torch.where(box[..., None], torch.tensor([1.0, 1.0, 0.2]), background.float())
    frames = torch.where(disc[..., None], torch.tensor([0.1, 0.8, 0.9]), frames)
    return frames.float(), labels


def tiles(folder, manifest, kind):
    """Every frame's tile cut from the pages, as one ``[T, h, w(, 3)]`` array."""
    w, h = manifest["tile"]["width"], manifest["tile"]["height"]
    out = []
    for page in manifest["pages"]:
        with Image.open(folder / "memvos" / page[kind]) as image:
            assert image.mode == ("L" if kind == "labels" else "RGB")
            assert image.size == (page["cols"] * w, page["rows"] * h)
            array = np.asarray(image)
        for k in range(page["count"]):
            row, col = divmod(k, page["cols"])
            out.append(array[row * h:(row + 1) * h, col * w:(col + 1) * w])
    return np.stack(out)


def test_labels_round_trip_exactly_at_tile_size(tmp_path):
    frames, labels = moving_shapes(10, 48, 80, ids=(7, 2))
    entry = preview.write_preview(tmp_path, frames, labels, fps=25, object_ids=[7, 2], max_side=80)
    assert entry["type"] == "temp" and entry["subfolder"] == "memvos" and entry["filename"].endswith(".json")
    manifest = preview.read_manifest(tmp_path, entry)
    assert manifest["tile"] == {"width": 80, "height": 48} and manifest["source"] == {"width": 80, "height": 48}
    assert manifest["label_encoding"] == "slot"
    assert [o["id"] for o in manifest["objects"]] == [7, 2]
    slots = tiles(tmp_path, manifest, "labels")
    expected = np.zeros(labels.shape, dtype=np.uint8)
    expected[labels.numpy() == 7] = 1  # slot = index in object_ids + 1
    expected[labels.numpy() == 2] = 2
    assert np.array_equal(slots, expected)
    rgb = tiles(tmp_path, manifest, "frames").astype(np.float32)
    assert np.abs(rgb - frames.numpy() * 255).mean() < 8  # JPEG q70 with subsampled colour: close, not exact


def test_downsizing_keeps_aspect_and_picks_labels_by_nearest_pixel(tmp_path):
    frames, labels = moving_shapes(6, 90, 300)
    entry = preview.write_preview(tmp_path, frames, labels, fps=24, object_ids=[1, 2], max_side=100)
    manifest = preview.read_manifest(tmp_path, entry)
    assert manifest["tile"] == {"width": 100, "height": 30}
    assert manifest["source"] == {"width": 300, "height": 90}
    ys = ((np.arange(30) + 0.5) * 90 / 30).astype(int)
    xs = ((np.arange(100) + 0.5) * 300 / 100).astype(int)
    assert np.array_equal(tiles(tmp_path, manifest, "labels"), labels.numpy()[:, ys][:, :, xs].astype(np.uint8))


def test_pages_split_the_clip_and_stay_within_the_page_size(tmp_path):
    frames, labels = moving_shapes(23, 40, 64)
    entry = preview.write_preview(tmp_path, frames, labels, fps=30, object_ids=[1, 2], page_px=200)
    manifest = preview.read_manifest(tmp_path, entry)
    pages = manifest["pages"]
    assert [p["count"] for p in pages] == [15, 8]  # 3 x 5 tiles of 64 x 40 fit in 200 px
    assert [p["first_frame"] for p in pages] == [0, 15]
    assert (pages[0]["cols"], pages[0]["rows"]) == (3, 5)
    assert (pages[-1]["cols"], pages[-1]["rows"]) == (3, 3)  # the last page shrinks to its frames
    for page in pages:
        for kind in ("frames", "labels"):
            with Image.open(tmp_path / "memvos" / page[kind]) as image:
                assert max(image.size) <= 200
    assert tiles(tmp_path, manifest, "labels").shape == (23, 40, 64)


def test_manifest_describes_clip_marks_and_colours(tmp_path):
    frames, labels = moving_shapes(12, 32, 48, ids=(1, 3))
    entry = preview.write_preview(
        tmp_path, frames, labels, fps=23.976, object_ids=[1, 3], frame_offset=40,
        keyframes=[45, {"frame": 40, "objects": [3]}, {"frame": 40, "objects": [1]}, {"frame": 99, "objects": [1]}],
        suggestions=[
            {"frame": 50, "object_id": 3, "reason": "object vanished", "score": 0.4, "detail": {"area": 0}},
            {"frame": 44, "object_id": 1, "reason": "x" * 1000, "score": float("nan")},
            {"frame": 44, "reason": "low confidence", "score": 0.9},
            {"frame": 10, "object_id": 1, "reason": "before the previewed range"},
        ])
    manifest = preview.read_manifest(tmp_path, entry)
    assert manifest["format"] == "memvos-preview" and manifest["version"] == 1
    assert manifest["num_frames"] == 12 and manifest["fps"] == pytest.approx(23.976)
    assert manifest["frame_offset"] == 40
    # DAVIS palette: id 1 dark red, id 3 olive.
    assert [o["color"] for o in manifest["objects"]] == [[128, 0, 0], [128, 128, 0]]
    assert manifest["keyframes"] == [{"frame": 0, "clip_frame": 40, "objects": [1, 3]},
                                     {"frame": 5, "clip_frame": 45, "objects": []}]
    suggestions = manifest["suggestions"]
    assert [(s["frame"], s["clip_frame"]) for s in suggestions] == [(4, 44), (4, 44), (10, 50)]
    assert suggestions[0]["reason"] == "low confidence" and suggestions[0]["object_id"] is None
    assert suggestions[1]["score"] is None and len(suggestions[1]["reason"]) == preview.MAX_TEXT
    assert suggestions[2]["detail"] == '{"area": 0}'


def test_accepts_uint8_rgba_and_numpy_and_never_copies_a_long_clip(tmp_path):
    frames, labels = moving_shapes(4, 24, 32)
    rgba = torch.cat([frames, torch.ones_like(frames[..., :1])], -1)
    as_uint8 = (rgba * 255).round().to(torch.uint8).numpy()
    from_float = preview.write_preview(tmp_path, frames, labels, fps=24, object_ids=[1, 2])
    from_uint8 = preview.write_preview(tmp_path, as_uint8, labels.numpy().astype(np.int32), fps=24, object_ids=[1, 2])
    for kind in ("frames", "labels"):
        assert np.array_equal(tiles(tmp_path, preview.read_manifest(tmp_path, from_float), kind),
                              tiles(tmp_path, preview.read_manifest(tmp_path, from_uint8), kind))
    # 300 frames that share one frame's memory: the writer works chunk by chunk, so this stays cheap.
    one = moving_shapes(1, 90, 160)
    long_frames, long_labels = one[0].expand(300, -1, -1, -1), one[1].expand(300, -1, -1)
    entry = preview.write_preview(tmp_path, long_frames, long_labels, fps=24, object_ids=[1, 2])
    manifest = preview.read_manifest(tmp_path, entry)
    assert [p["count"] for p in manifest["pages"]] == [264, 36]  # 12 x 22 tiles of 160 x 90 per page


def test_small_files_for_a_480p_clip(tmp_path):
    frames, labels = moving_shapes(20, 480, 854)
    entry = preview.write_preview(tmp_path, frames, labels, fps=24, object_ids=[1, 2])
    manifest = preview.read_manifest(tmp_path, entry)
    assert manifest["tile"] == {"width": 320, "height": 180}
    total = sum((tmp_path / "memvos" / name).stat().st_size for name in
                [entry["filename"]] + [p[k] for p in manifest["pages"] for k in ("frames", "labels")])
    assert total / 20 < 5000, f"{total / 20:.0f} bytes per frame: a 100-frame clip would not stay a few hundred KB"


def test_each_call_writes_fresh_names_and_leaves_no_partial_files(tmp_path, monkeypatch):
    frames, labels = moving_shapes(3, 16, 16)
    first = preview.write_preview(tmp_path, frames, labels, fps=24, object_ids=[1, 2])
    second = preview.write_preview(tmp_path, frames, labels, fps=24, object_ids=[1, 2], prefix="composite")
    assert first["filename"] != second["filename"] and second["filename"].startswith("composite_")
    names = {p.name for p in (tmp_path / "memvos").iterdir()}
    assert len(names) == 6 and not any(n.endswith(".part") for n in names)

    def failing_save(self, fp, format=None, **params):
        if format == "PNG":
            raise OSError("disk full")
        return original_save(self, fp, format, **params)

    original_save = Image.Image.save
    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        preview.write_preview(tmp_path, frames, labels, fps=24, object_ids=[1, 2])
    # A failed call leaves nothing behind: no manifest, no orphan page, no temporary file.
    assert {p.name for p in (tmp_path / "memvos").iterdir()} == names


@pytest.mark.parametrize("change, message", [
    (lambda f, l, kw: (f[..., :2], l, kw), "frames have shape"),
    (lambda f, l, kw: (f.double().to(torch.int16), l, kw), "frames have dtype"),
    (lambda f, l, kw: (f, l.float(), kw), "labels have dtype"),
    (lambda f, l, kw: (f, l[:, :8], kw), "differ in frame count or size"),
    (lambda f, l, kw: (f, l[None], kw), "labels have shape"),
    (lambda f, l, kw: (f[:0], l[:0], kw), "empty"),
    (lambda f, l, kw: (f, l, {**kw, "object_ids": [1]}), "not in object_ids"),
    (lambda f, l, kw: (f, l - 5, kw), "not in object_ids"),
    (lambda f, l, kw: (f, l, {**kw, "object_ids": [1, 2, 1]}), "repeat an id"),
    (lambda f, l, kw: (f, l, {**kw, "object_ids": [0, 2]}), "object_ids entry is 0"),
    (lambda f, l, kw: (f, l, {**kw, "fps": 0}), "fps is 0"),
    (lambda f, l, kw: (f, l, {**kw, "fps": "fast"}), "fps is 'fast'"),
    (lambda f, l, kw: (f, l, {**kw, "frame_offset": -1}), "frame_offset is -1"),
    (lambda f, l, kw: (f, l, {**kw, "frame_offset": 1.5}), "frame_offset is 1.5"),
    (lambda f, l, kw: (f, l, {**kw, "prefix": "../x"}), "prefix"),
    (lambda f, l, kw: (f, l, {**kw, "page_px": 10000}), "page_px"),
    (lambda f, l, kw: (f, l, {**kw, "keyframes": [{"objects": [1]}]}), "has no 'frame'"),
    (lambda f, l, kw: (f, l, {**kw, "suggestions": [3]}), "suggestion 3"),
    (lambda f, l, kw: (f, l, {**kw, "suggestions": [{"frame": 1, "score": "high"}]}), "score 'high'"),
    (lambda f, l, kw: ([[0]], l, kw), "frames is a list"),
])
def test_bad_input_gets_a_clear_error(tmp_path, change, message):
    frames, labels = moving_shapes(2, 16, 16)
    frames, labels, kwargs = change(frames, labels, {"fps": 24, "object_ids": [1, 2]})
    with pytest.raises((ValueError, TypeError), match=re_escape(message)):
        preview.write_preview(tmp_path, frames, labels, **kwargs)
    assert not (tmp_path / "memvos").exists() or not any((tmp_path / "memvos").iterdir())


def re_escape(text):
    import re
    return re.escape(text)


def test_tile_size_never_exceeds_max_side():
    for height, width in [(480, 854), (1080, 1920), (1920, 1080), (100, 100), (7, 3000)]:
        h, w = preview.tile_size(height, width, 320)
        assert max(h, w) <= 320 and min(h, w) >= 1
        assert math.isclose(w / h, width / height, rel_tol=0.25) or min(h, w) == 1
    assert preview.tile_size(90, 160, 320) == (90, 160)  # never upscaled
