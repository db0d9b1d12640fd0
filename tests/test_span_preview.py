"""After a span re-run, Propagate's preview takes over the last preview's pages whose frames were
all kept and renders only the pages touching a re-run span: the player gets the same pages a full
write of the result gives, without reading the kept frames again."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from comfy_stand_ins import annotated_session, tiny_clip
from pack_loader import pack_for_tests

PACK = pack_for_tests()
NODES = PACK.NODE_CLASS_MAPPINGS
preview = PACK.nodes.preview
FRAMES, KEYS, FIX = 10, (0, 5), 8  # the fix at 8 re-runs frames 5..9
# Tiles of 24 x 40 on 48-pixel pages: two frames a page, five pages; the span touches pages 2, 3, 4.
PAGE_PX, SPAN_PAGES = 48, (2, 3, 4)
SETTINGS = {"direction": "both", "start_frame": 0, "end_frame": -1, "first_frame_index": 0, "preview_fps": 10.0,
            "rerun": "span", "memvos_linked_outputs": ""}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def shot(comfy):
    frames, masks = tiny_clip(num_frames=FRAMES)
    session = annotated_session(NODES, frames, masks, KEYS)
    (fixed,) = NODES["MemVOSAddAnnotation"]().add(session, frames, masks[1], FIX, 1)
    return session, fixed, frames


@pytest.fixture
def rendered(monkeypatch):
    """The first frame of each page the preview writer renders, and the frames it reads, in order."""
    pages, read = [], []
    write_page = preview._write_page

    def counting(out_dir, name, frames, *args):
        pages.append(args[2]["first_frame"])
        return write_page(out_dir, name, Reads(frames, read), *args)
    monkeypatch.setattr(preview, "_write_page", counting)
    monkeypatch.setitem(preview.write_preview.__kwdefaults__, "page_px", PAGE_PX)
    return pages, read


class Reads:
    """The frames, noting each one sliced out."""

    def __init__(self, frames, read):
        self.frames, self.read = frames, read
        self.shape, self.device, self.dtype = frames.shape, frames.device, frames.dtype

    def __getitem__(self, index):
        self.read.extend(range(*index.indices(self.shape[0])))
        return self.frames[index]


def page_files(comfy, entry):
    manifest = preview.read_manifest(comfy.dirs["temp"], entry)
    folder = os.path.join(comfy.dirs["temp"], entry["subfolder"])
    return manifest, [(os.path.join(folder, p["frames"]), os.path.join(folder, p["labels"])) for p in manifest["pages"]]


def read_bytes(path):
    with open(path, "rb") as handle:
        return handle.read()


def test_span_preview_renders_only_the_spans_pages_and_takes_over_the_others(comfy, shot, rendered):
    session, fixed, frames = shot
    pages, read = rendered
    node = NODES["MemVOSPropagate"]()
    first = node.propagate(session, frames, **SETTINGS)
    assert pages == [0, 2, 4, 6, 8]  # the first run renders every page
    pages.clear(), read.clear()
    again = node.propagate(fixed, frames, **SETTINGS)
    assert node._record[1].spans == ((KEYS[-1], FRAMES),)
    assert [p // 2 for p in pages] == list(SPAN_PAGES) and read == list(range(4, FRAMES)), "only the span's pages"
    old_manifest, old_files = page_files(comfy, first["ui"]["memvos_preview"][0])
    entry = again["ui"]["memvos_preview"][0]
    manifest, files = page_files(comfy, entry)
    for index, (old, new) in enumerate(zip(old_files, files)):
        for a, b in zip(old, new):
            assert a != b, "each preview has its own file names"
            if index not in SPAN_PAGES:
                assert os.path.samefile(a, b) or read_bytes(a) == read_bytes(b)
    assert manifest["stale"] == [{"frame": 0, "count": KEYS[-1]}]  # the kept frames are marked

    # the preview is what a full write of this result gives, file for file
    masks = again["result"][1]
    full = PACK.nodes.propagate_node.write_clip_preview(
        masks.aligned_frames(frames), masks.label_view(), list(masks.object_ids), fps=10.0, frame_offset=0,
        keyframes=masks.keyframes, stale=node._record[1].stale)[0]
    full_manifest, full_files = page_files(comfy, full)
    assert pages[len(SPAN_PAGES):] == [0, 2, 4, 6, 8]  # that one rendered everything
    assert {k: v for k, v in manifest.items() if k != "pages"} == {k: v for k, v in full_manifest.items()
                                                                     if k != "pages"}
    for ours, theirs in zip(files, full_files):
        for a, b in zip(ours, theirs):
            assert read_bytes(a) == read_bytes(b), (a, b)
    labels = np.asarray(Image.open(files[SPAN_PAGES[-1]][1]))
    assert labels.max() > 0  # the objects are on the span's pages

    # queued again with nothing changed (ComfyUI runs it for a newly connected output): no page rendered
    pages.clear()
    node.propagate(fixed, frames, **{**SETTINGS, "memvos_linked_outputs": "mask"})
    assert pages == []


def test_span_preview_renders_everything_for_a_new_object(comfy, shot, rendered):
    session, fixed, frames = shot
    pages, _ = rendered
    node = NODES["MemVOSPropagate"]()
    node.propagate(session, frames, **SETTINGS)
    third = torch.zeros(FRAMES, *frames.shape[1:3])
    third[:, 10:14, 18:22] = 1.0
    (added,) = NODES["MemVOSAddAnnotation"]().add(session, frames, third, FIX, 3)
    pages.clear()
    out = node.propagate(added, frames, **SETTINGS)
    assert pages == [0, 2, 4, 6, 8]
    manifest = preview.read_manifest(comfy.dirs["temp"], out["ui"]["memvos_preview"][0])
    assert [o["id"] for o in manifest["objects"]] == [1, 2, 3]


def test_span_preview_writer_reuses_only_a_matching_intact_preview(comfy, rendered):
    """The writer's own conditions: same objects in the same slots, the page files intact."""
    pages, _ = rendered
    frames, masks = tiny_clip(num_frames=FRAMES)
    labels = (masks[1] > 0.5).long() + 2 * (masks[2] > 0.5).long()
    folder = comfy.dirs["temp"]
    first = preview.write_preview(folder, frames, labels, fps=10, object_ids=[1, 2])
    pages.clear()
    same = preview.write_preview(folder, frames, labels, fps=10, object_ids=[1, 2], previous=first, changed=[(3, 4)])
    assert pages == [2]  # frame 3 lies on page 1 (frames 2, 3)
    pages.clear()
    preview.write_preview(folder, frames, labels, fps=10, object_ids=[2, 1], previous=first, changed=())
    assert pages == [0, 2, 4, 6, 8], "other slots: every page again"
    pages.clear()
    preview.write_preview(folder, frames, labels, fps=10, object_ids=[1, 2], previous=first, changed=(),
                          jpeg_quality=80)
    assert pages == [0, 2, 4, 6, 8], "another quality: every page again"
    _, files = page_files(comfy, same)
    os.remove(files[4][0])
    pages.clear()
    preview.write_preview(folder, frames, labels, fps=10, object_ids=[1, 2], previous=same, changed=())
    assert pages == [8], "a page file gone: that page again"
