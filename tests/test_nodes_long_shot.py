"""Long shots in the nodes: VIDEO and folder frame sources, outputs built only when connected,
Get Frames / Get Masks, and Save Masks streaming mattes to disk (progress, cancel, errors)."""
import io
import os

import numpy as np
import pytest
import torch
from PIL import Image

from pack_loader import pack_for_tests
from comfy_stand_ins import Interrupted, StandInVideo, StandInVideoFile, tiny_clip
from workflow_executor import Executor, outputs_of

PACK = pack_for_tests()
NODES = PACK.NODE_CLASS_MAPPINGS
NUM_FRAMES = 6


@pytest.fixture(scope="module")
def clip():
    """``(frames, masks)``: frames quantised to 8 bits, as any file holds them."""
    frames, masks = tiny_clip(num_frames=NUM_FRAMES)
    return (frames * 255).round() / 255, masks


@pytest.fixture(scope="module")
def video_file(comfy, clip):
    """The clip as a lossless video (ffv1 RGB): decodes to exactly the IMAGE batch."""
    path = os.path.join(comfy.dirs["input"], "shot.mkv")
    with PACK.memvos_core.media_io.video_writer.VideoWriter(path, 12.5, "ffv1") as writer:
        for frame in clip[0]:
            writer.write((frame * 255).round().to(torch.uint8).numpy())
    return path


@pytest.fixture(scope="module")
def frame_folder(comfy, clip):
    folder = os.path.join(comfy.dirs["input"], "shot_010")
    os.makedirs(folder)
    for t, frame in enumerate(clip[0]):
        Image.fromarray((frame * 255).round().to(torch.uint8).numpy()).save(os.path.join(folder, f"sh010_{101 + t}.png"))
    return folder


@pytest.fixture(scope="module")
def model(comfy):
    return NODES["MemVOSLoadModel"]().load("XMem.pth", "cpu", "fp32")[0]


def annotated(model, frames, masks):
    (session,) = NODES["MemVOSNewSession"]().create(model, internal_size=32)
    for object_id in (1, 2):
        (session,) = NODES["MemVOSAddAnnotation"]().add(session, frames, masks[object_id], 0, object_id)
    return session


def propagate(session, frames, linked=None, **widgets):
    settings = {"direction": "forward", "start_frame": 0, "end_frame": -1, "first_frame_index": 0,
                "preview_fps": 10.0, **widgets}
    node = NODES["MemVOSPropagate"]()
    returned = node.propagate(session, frames, memvos_linked_outputs=linked, **settings)
    return outputs_of(NODES["MemVOSPropagate"], returned), returned["ui"]


@pytest.fixture(scope="module")
def by_image(model, clip):
    frames, masks = clip
    return propagate(annotated(model, frames, masks), frames)[0]


@pytest.fixture(scope="module")
def by_video(model, clip, video_file):
    video = StandInVideoFile(video_file)
    return propagate(annotated(model, video, clip[1]), video, linked="session,masks")[0]


@pytest.fixture(scope="module")
def by_folder(model, clip, frame_folder):
    (source, count, fps) = NODES["MemVOSLoadFrames"]().load(frame_folder, 12.0)
    assert (count, fps) == (NUM_FRAMES, 12.0)
    return propagate(annotated(model, source, clip[1]), source, linked="masks")[0]


# ------------------------------------------------------------------ frame sources

def test_a_video_and_a_folder_give_the_masks_of_the_image_batch(by_image, by_video, by_folder):
    want = by_image[1].materialise()
    for masks in (by_video[1], by_folder[1]):
        assert torch.equal(masks.materialise(), want)
    assert by_video[1].fps == 12.5, "a VIDEO brings its frame rate"
    assert by_folder[1].stems == tuple(f"sh010_{101 + t}" for t in range(NUM_FRAMES)), "a folder its names"
    assert by_image[1].stems == tuple(f"{t:05d}" for t in range(NUM_FRAMES))


def test_outputs_nobody_connected_are_not_built(by_image, by_video):
    assert by_video[2] is None and by_video[3] is None
    assert by_image[2].shape == (NUM_FRAMES, 24, 40) and by_image[3].shape == (NUM_FRAMES, 24, 40, 3)


def test_a_new_link_reruns_without_propagating_again(comfy, model, clip):
    frames, masks = clip
    session, node = annotated(model, frames, masks), NODES["MemVOSPropagate"]()
    settings = dict(direction="forward", start_frame=0, end_frame=2, first_frame_index=0, preview_fps=10.0)
    before = len(comfy.progress)
    first = node.propagate(session, frames, memvos_linked_outputs="masks", **settings)["result"]
    ticks = len(comfy.progress) - before
    second = node.propagate(session, frames, memvos_linked_outputs="masks,mask", **settings)["result"]
    # The second run moves only the bar of its mask batch (one chunk: one tick), not the pass's.
    assert ticks == 3 and len(comfy.progress) - before == ticks + 1, "the second run did not propagate"
    assert first[2] is None and torch.equal(second[2], first[1].union(0, 3))
    # Other frames objects (equal frames: rerun="span" would find nothing changed and keep the run).
    third = node.propagate(session, frames.clone(), memvos_linked_outputs="masks", rerun="exact", **settings)["result"]
    assert len(comfy.progress) - before == 2 * ticks + 1, "other frames: propagated again"
    assert torch.equal(third[1].materialise(), first[1].materialise())


def test_the_server_hook_writes_which_outputs_are_linked():
    prompt = {"1": {"class_type": "MemVOSPropagate", "inputs": {"session": ["5", 0], "frames": ["6", 0]}},
              "2": {"class_type": "MemVOSSaveMasks", "inputs": {"masks": ["1", 1]}},
              "3": {"class_type": "PreviewImage", "inputs": {"images": ["1", 3]}},
              "4": {"class_type": "MemVOSSelectObjects", "inputs": {"masks": ["1", 1], "object_ids": "1"}}}
    PACK.nodes.linked_outputs.on_prompt({"prompt": prompt}, PACK.NODE_CLASS_MAPPINGS)
    assert prompt["1"]["inputs"]["memvos_linked_outputs"] == "label_map", "the outputs built on demand"
    assert prompt["4"]["inputs"]["memvos_linked_outputs"] == ""
    assert "memvos_linked_outputs" not in prompt["2"]["inputs"], "only nodes that declare it"


def test_the_cache_reruns_propagate_when_an_output_gets_connected(comfy, model, clip, video_file):
    """What ComfyUI's cache would do: the linked outputs are part of Propagate's inputs, so a link
    added later makes it run again and build that output (and not hand a cached None on)."""
    assert PACK.nodes.linked_outputs.install(PACK.NODE_CLASS_MAPPINGS), "the pack hooks into the server (ComfyUI: when it loads)"
    session = annotated(model, clip[0], clip[1])
    video = StandInVideoFile(video_file)
    ours = dict(NODES)
    ours["Source"] = _constant_node("SESSION_AND_VIDEO", (session, video))
    prompt = {"1": {"class_type": "Source", "inputs": {}},
              "2": {"class_type": "MemVOSPropagate", "inputs": {
                  "session": ["1", 0], "frames": ["1", 1], "direction": "forward", "start_frame": 0,
                  "end_frame": -1, "first_frame_index": 0, "preview_fps": 8.0, "rerun": "span"}}}
    cache, objects = {}, {}
    run_a = Executor(ours, cache, objects)
    before = len(comfy.progress)
    outputs, _ = run_a.run(prompt)
    propagated = len(comfy.progress) - before
    assert outputs["2"][2] is None and propagated == NUM_FRAMES
    prompt["3"] = {"class_type": "MemVOSGetMasks", "inputs": {"masks": ["2", 1], "object_ids": "", "start_frame": 0,
                                                                "end_frame": -1, "short_side": 0}}
    prompt["4"] = {"class_type": "MemVOSSelectObjects", "inputs": {"masks": ["2", 1], "object_ids": "2"}}
    prompt["5"] = {"class_type": "Sink", "inputs": {"a": ["2", 2], "b": ["3", 0], "c": ["4", 1]}}
    ours["Sink"] = _sink_node()
    run_b = Executor(ours, cache, objects)
    outputs, _ = run_b.run(prompt)
    assert "2" in run_b.executed and torch.is_tensor(outputs["2"][2])
    get_masks_ticks = len(range(0, NUM_FRAMES, PACK.nodes.mask_output_nodes.SAVE_CHUNK))  # its own bar
    select_ticks = len(range(0, NUM_FRAMES, PACK.nodes.common.CHUNK_FRAMES))  # Select Objects' union, its own bar
    mask_ticks = len(range(0, NUM_FRAMES, PACK.nodes.common.CHUNK_FRAMES))  # Propagate's mask batch, its own bar
    assert len(comfy.progress) - before == propagated + mask_ticks + get_masks_ticks + select_ticks, \
        "the node object kept its propagation"
    assert outputs["3"][1] is None and outputs["3"][2] is None and torch.is_tensor(outputs["3"][0])
    assert torch.equal(outputs["4"][1], outputs["2"][1].union(0, NUM_FRAMES, [2])) and outputs["4"][2] is None


def _constant_node(kind, values):
    class Constant:
        RETURN_TYPES = ("MEMVOS_SESSION", "VIDEO")
        RETURN_NAMES = ("session", "video")
        FUNCTION = "make"
        OUTPUT_NODE = False

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {}}

        def make(self):
            return values
    return Constant


def _sink_node():
    class Sink:
        RETURN_TYPES = ()
        RETURN_NAMES = ()
        FUNCTION = "take"
        OUTPUT_NODE = True

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"a": ("MASK", {}), "b": ("MASK", {}), "c": ("MASK", {})}}

        def take(self, a, b, c):
            assert all(torch.is_tensor(x) for x in (a, b, c))
            return ()
    return Sink


class VideoInput:
    """comfy_api's VIDEO base class: its get_stream_source encodes the whole video into memory."""

    def get_stream_source(self):
        raise AssertionError("the whole video was encoded into memory")


class VideoFromComponents(VideoInput):
    def __init__(self, images, fps):
        self.stand_in = StandInVideo(images, fps)

    def get_components(self):
        return self.stand_in.get_components()


def test_video_made_in_memory_and_frames_nodes_agree(clip, video_file):
    frames = clip[0]
    in_memory = VideoFromComponents(frames, 12.5)
    for source in (StandInVideoFile(video_file), in_memory, frames):
        images, total, fps = NODES["MemVOSGetFrames"]().get(source, 2, 3, 0)
        assert torch.equal(images, frames[2:5]) and total == NUM_FRAMES
        assert fps == (24.0 if source is frames else 12.5)
    small, _, _ = NODES["MemVOSGetFrames"]().get(StandInVideoFile(video_file), 5, 10, 12)
    assert small.shape == (1, 12, 20, 3), "clipped at the shot's end, scaled to a shorter side of 12"


def test_other_nodes_take_a_video(model, clip, video_file, by_image):
    frames, _ = clip
    video = StandInVideoFile(video_file)
    masks = by_image[1]
    composite = NODES["MemVOSComposite"]()
    a = composite.composite(frames, masks, "overlay")["result"]
    b = composite.composite(video, masks, "overlay")["result"]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    refine = NODES["MemVOSRefine"]()
    a = refine.refine(masks, temporal_radius=1, frames=frames)["result"]
    b = refine.refine(masks, temporal_radius=1, frames=video)["result"]
    assert torch.equal(a[0].materialise(), b[0].materialise())
    session = annotated(model, frames, clip[1])
    suggest = NODES["MemVOSSuggestFrames"]()
    assert suggest.suggest(session, frames, masks, 2)[2] == suggest.suggest(session, video, masks, 2)[2]


# ------------------------------------------------------------------ Get Masks

def test_get_masks_range_and_size(by_video):
    masks = by_video[1]
    mask, image, labels = NODES["MemVOSGetMasks"]().get(masks, "", 2, 4, 0)
    assert torch.equal(mask, masks.union(2, 5)) and torch.equal(image[..., 0], mask)
    assert labels.shape == (3, 24, 40, 3)
    mask, _, _ = NODES["MemVOSGetMasks"]().get(masks, "2", 0, -1, 12)
    assert mask.shape == (NUM_FRAMES, 12, 20)
    with pytest.raises(ValueError, match="selects none of the masks' clip frames 0..5"):
        NODES["MemVOSGetMasks"]().get(masks, "", 9, -1, 0)


def test_get_masks_moves_the_bar_and_stops_on_cancel(comfy, by_video, monkeypatch):
    masks = by_video[1]
    output_nodes = PACK.nodes.mask_output_nodes
    monkeypatch.setattr(output_nodes, "SAVE_CHUNK", 2)
    comfy.progress.clear()
    NODES["MemVOSGetMasks"]().get(masks, "", 0, -1, 0)
    assert comfy.progress[-3:] == [(2, NUM_FRAMES), (4, NUM_FRAMES), (6, NUM_FRAMES)]
    comfy.progress.clear()
    comfy.interrupt_after = comfy.checks + 2  # cancelled before the second chunk
    try:
        with pytest.raises(Interrupted):
            NODES["MemVOSGetMasks"]().get(masks, "", 0, -1, 0)
    finally:
        comfy.interrupt_after = None
    assert [done for done, _ in comfy.progress] == [2]


# ------------------------------------------------------------------ Save Masks

def save(masks, **widgets):
    settings = {"filename_prefix": "memvos/masks", "content": "matte", "object_ids": "", "png_sequence": True,
                "video": "mp4 (h264)", "fps": 0.0, **widgets}
    returned = NODES["MemVOSSaveMasks"]().save(masks, **settings)
    return outputs_of(NODES["MemVOSSaveMasks"], returned)[0], returned["ui"]


def _png16(path):
    return torch.from_numpy(np.asarray(Image.open(path)).astype(np.float32) / 65535)


def test_save_masks_writes_16_bit_pngs_named_like_the_frames_and_a_video(comfy, by_folder):
    import av
    masks = by_folder[1]
    before = len(comfy.progress)
    relative, ui = save(masks, filename_prefix="shots/sh010/matte")
    assert relative == "shots/sh010/matte_00001"
    assert comfy.progress[before:] == [(t, NUM_FRAMES) for t in range(1, NUM_FRAMES + 1)], "a tick per frame"
    folder = os.path.join(comfy.dirs["output"], relative)
    assert sorted(os.listdir(folder)) == [f"sh010_{101 + t}.png" for t in range(NUM_FRAMES)]
    union = masks.union(0, NUM_FRAMES)
    for t in range(NUM_FRAMES):
        png = Image.open(os.path.join(folder, f"sh010_{101 + t}.png"))
        assert png.mode.startswith("I;16") or png.mode == "I"
        assert (_png16(os.path.join(folder, f"sh010_{101 + t}.png")) - union[t]).abs().max() <= 1 / 65535
    assert ui["images"] == [{"filename": "matte_00001.mp4", "subfolder": "shots/sh010", "type": "output"}]
    with av.open(folder + ".mp4") as container:
        stream = container.streams.video[0]
        assert float(stream.average_rate) == 12.0
        decoded = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
    assert len(decoded) == NUM_FRAMES and decoded[0].shape == (24, 40)
    assert np.abs(decoded[3].astype(float) / 255 - union[3].numpy()).mean() < 0.02
    assert save(masks, filename_prefix="shots/sh010/matte")[0] == "shots/sh010/matte_00002", "never overwrites"


def test_save_masks_per_object_lossless_video_and_label_maps(comfy, by_video):
    import av
    masks = by_video[1]
    relative, ui = save(masks, content="matte per object", video="mkv (ffv1, lossless)", filename_prefix="po/m")
    folder = os.path.join(comfy.dirs["output"], relative)
    assert sorted(os.listdir(folder)) == ["obj1", "obj2"] and "images" not in ui
    for j, object_id in enumerate((1, 2)):
        with av.open(f"{folder}_obj{object_id}.mkv") as container:
            decoded = [f.to_ndarray(format="gray16le") for f in container.decode(video=0)]
        png = _png16(os.path.join(folder, f"obj{object_id}", "00004.png"))
        assert np.array_equal(decoded[4], (png * 65535).round().numpy().astype(np.uint16)), "lossless"
        assert (png - masks.chunk(4, 5)[0, j]).abs().max() <= 1 / 65535
    relative, _ = save(masks, content="label map", video="none", filename_prefix="po/labels")
    indexed = Image.open(os.path.join(comfy.dirs["output"], relative, "00002.png"))
    assert indexed.mode == "P"
    assert torch.equal(torch.from_numpy(np.array(indexed)), masks.labels(2, 3)[0])
    relative, _ = save(masks, png_sequence=False, filename_prefix="po/only_video")
    assert relative == "po/only_video_00001.mp4" and os.path.isfile(os.path.join(comfy.dirs["output"], relative))


def _leftovers(root):
    return [os.path.join(d, n) for d, _, names in os.walk(root) for n in names if ".part" in n]


def test_save_masks_cancel_keeps_finished_frames_and_no_partial_file(comfy, by_video):
    masks = by_video[1]
    comfy.interrupt_after = comfy.checks + 4  # two checks a frame: cancelled before frame 2
    try:
        with pytest.raises(Interrupted):
            save(masks, filename_prefix="cancel/m")
    finally:
        comfy.interrupt_after = None
    folder = os.path.join(comfy.dirs["output"], "cancel")
    assert sorted(os.listdir(os.path.join(folder, "m_00001"))) == ["00000.png", "00001.png"]
    assert not os.path.exists(os.path.join(folder, "m_00001.mp4")) and not _leftovers(folder)


def test_save_masks_disk_full_is_one_line_and_leaves_nothing_half_written(comfy, by_video, monkeypatch):
    media = PACK.memvos_core.media_io.media
    real, calls = media.write_atomic, []

    def fills_up(image, path):
        calls.append(path)
        if len(calls) == 3:
            part = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.part")
            with open(part, "wb") as f:
                f.write(b"\x89PNG half")
            raise OSError(28, "No space left on device", part)
        return real(image, path)

    monkeypatch.setattr(media, "write_atomic", fills_up)
    with pytest.raises(ValueError) as caught:
        save(masks := by_video[1], filename_prefix="full/m")
    message = str(caught.value)
    assert "\n" not in message and "disk is full" in message and "2 frames finished before are saved" in message
    folder = os.path.join(comfy.dirs["output"], "full")
    assert not _leftovers(folder) and not os.path.exists(os.path.join(folder, "m_00001.mp4"))
    assert sorted(os.listdir(os.path.join(folder, "m_00001"))) == ["00000.png", "00001.png"]
    assert masks.num_frames == NUM_FRAMES


def test_save_masks_output_not_writable(comfy, by_video):
    with open(os.path.join(comfy.dirs["output"], "blocker"), "w") as f:
        f.write("a file where a folder should go")
    with pytest.raises(ValueError, match=r"filename_prefix 'blocker/m': cannot write into .*blocker"):
        save(by_video[1], filename_prefix="blocker/m")
    with pytest.raises(ValueError, match="must be a relative path inside"):
        save(by_video[1], filename_prefix="../outside")
    with pytest.raises(ValueError, match="nothing to save"):
        save(by_video[1], png_sequence=False, video="none")


def test_nodes_never_change_what_they_received(by_video, video_file):
    masks = by_video[1]
    before = (masks.materialise(), masks.stems, masks.object_ids)
    save(masks, filename_prefix="same/m", content="matte per object")
    NODES["MemVOSGetMasks"]().get(masks, "1", 1, 3, 12)
    NODES["MemVOSSelectObjects"]().select(masks, "2")
    assert torch.equal(masks.materialise(), before[0]) and (masks.stems, masks.object_ids) == before[1:]
    video = StandInVideoFile(video_file)
    NODES["MemVOSGetFrames"]().get(video, 0, 2, 0)
    assert video.get_stream_source() == video_file


# ------------------------------------------------------------------ bad inputs

def test_bad_frame_sources_are_one_line_errors(comfy, model, clip, tmp_path):
    frames, masks = clip
    session = annotated(model, frames, masks)
    empty = os.path.join(comfy.dirs["input"], "empty_shot")  # Load Frames reads inside input/ only
    os.makedirs(empty)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    cases = [
        (StandInVideoFile(io.BytesIO(b"...")), "lives in memory"),
        (StandInVideoFile(str(broken)), "could not be (opened|decoded)"),
        ("not frames", r"must be an IMAGE batch \[frames, height, width, 3\], a VIDEO or MEMVOS_FRAMES"),
    ]
    for value, message in cases:
        with pytest.raises(ValueError, match=message) as caught:
            propagate(session, value)
        assert "\n" not in str(caught.value)
    load = NODES["MemVOSLoadFrames"]()
    for path, message in ((str(empty), "no frames in"), ("", "path is empty"), ("missing_shot", "does not exist"),
                          ("../x", "must be a relative path")):
        with pytest.raises(ValueError, match=message) as caught:
            load.load(path)
        assert "\n" not in str(caught.value)


def test_load_frames_fingerprint_follows_the_folder(frame_folder, tmp_path):
    fingerprint = NODES["MemVOSLoadFrames"].IS_CHANGED
    first = fingerprint(path=frame_folder, fps=12.0)
    assert fingerprint(path=frame_folder, fps=12.0) == first
    assert fingerprint(path=frame_folder, fps=24.0) != first
    extra = os.path.join(frame_folder, "sh010_999.png")
    Image.new("RGB", (40, 24)).save(extra)
    try:
        assert fingerprint(path=frame_folder, fps=12.0) != first
    finally:
        os.remove(extra)
