"""The example workflows: valid for the frontend, shipped where the template browser finds them,
and executed end to end (API form, our nodes + core stand-ins, generated weights)."""
import importlib.util
import json
import os

import numpy as np
import pytest
import torch

from pack_loader import REPO_ROOT, pack_for_tests
from comfy_stand_ins import CLIP_NAME, MEDIA_DIR, StandInVideo, load_clip_frames
from workflow_executor import Executor, ValidationError, load_workflow, to_api, workflow_problems

CARD_DIR = os.path.join(REPO_ROOT, "examples_workflows")
TEMPLATE_DIR = os.path.join(REPO_ROOT, "example_workflows")
NAMES = sorted(n for n in os.listdir(CARD_DIR) if n.endswith(".json"))
TEST_INTERNAL_SIZE = 32  # the only change made to the workflows for the test: a small network input


@pytest.fixture(scope="module")
def pack():
    return pack_for_tests()


@pytest.fixture(scope="module")
def ours(pack):
    return pack.NODE_CLASS_MAPPINGS


def _builder():
    spec = importlib.util.spec_from_file_location(
        "memvos_build_workflows", os.path.join(CARD_DIR, "tools", "build_workflows.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read(path):
    with open(path, "rb") as f:
        return f.read()


# ------------------------------------------------------------------ files

def test_the_four_examples_are_there():
    assert len(NAMES) >= 4
    for topic in ("one_keyframe", "both_directions", "inpaint", "chunks"):
        assert any(topic in n for n in NAMES), topic


def test_template_browser_folder_holds_identical_copies():
    """ComfyUI 0.8.0 lists <pack>/example_workflows/*.json (app/custom_node_manager.py; also
    example, examples, workflow, workflows, never examples_workflows), <name>.jpg as the
    thumbnail. examples_workflows/ is the project's source folder (workflows, media, tools);
    example_workflows/ holds real copies of its workflows and thumbnails, nothing else."""
    templates = sorted(n for n in os.listdir(TEMPLATE_DIR) if n.endswith(".json"))
    assert templates == NAMES
    for name in NAMES:
        for file in (name, name[:-5] + ".jpg"):
            path = os.path.join(TEMPLATE_DIR, file)
            assert os.path.isfile(path) and not os.path.islink(path), f"{file}: a real copy (symlinks break on Windows)"
            assert _read(path) == _read(os.path.join(CARD_DIR, file)), f"{file} differs between the two folders"


def test_template_browser_folder_holds_only_what_the_browser_needs():
    files = sorted(os.listdir(TEMPLATE_DIR))
    expected = sorted(n for name in NAMES for n in (name, name[:-5] + ".jpg"))
    assert files == expected, "example_workflows/ holds only the workflows and their thumbnails"


def test_committed_workflows_are_what_the_builder_writes():
    builder = _builder()
    assert sorted(builder.WORKFLOWS) == NAMES
    for name, build in builder.WORKFLOWS.items():
        assert builder.render(build()).encode() == _read(os.path.join(CARD_DIR, name)), (
            f"{name} is stale: run python examples_workflows/tools/build_workflows.py")


@pytest.mark.parametrize("name", NAMES)
def test_workflow_is_valid_for_the_frontend(name, ours):
    workflow = load_workflow(os.path.join(CARD_DIR, name))
    assert workflow["version"] == 0.4
    assert workflow_problems(workflow, ours) == []


def test_the_checks_catch_broken_workflows(ours):
    workflow = load_workflow(os.path.join(CARD_DIR, NAMES[0]))
    add = next(n for n in workflow["nodes"] if n["type"] == "MemVOSPropagate")
    add["widgets_values"] = add["widgets_values"][::-1] + [3]
    workflow["links"][0][5] = "MASK"
    workflow["nodes"].append({**add, "id": 999, "type": "SomeoneElsesNode"})
    problems = "\n".join(workflow_problems(workflow, ours))
    assert "widget values" in problems
    assert "link 1" in problems and "MASK" in problems
    assert "SomeoneElsesNode" in problems


def test_inpaint_example_says_where_inpainting_nodes_connect():
    workflow = load_workflow(os.path.join(CARD_DIR, next(n for n in NAMES if "inpaint" in n)))
    notes = " ".join(n["widgets_values"][0] for n in workflow["nodes"] if n["type"] == "Note")
    assert "ProPainter" in notes and "DiffuEraser" in notes


def test_examples_use_only_shipped_media():
    media = set(os.listdir(MEDIA_DIR))
    for name in NAMES:
        for node in load_workflow(os.path.join(CARD_DIR, name))["nodes"]:
            if node["type"] in ("LoadVideo", "LoadImage", "LoadImageMask"):
                assert node["widgets_values"][0] in media, (name, node["widgets_values"][0])
            if node["type"] == "MemVOSKeyframes":
                files = [k["file"] for k in json.loads(node["widgets_values"][0])["keyframes"]]
                assert files and set(files) <= media, (name, files)


def test_media_is_copied_into_the_input_folder_without_overwriting(pack, tmp_path):
    install = pack.nodes.example_media.install
    (tmp_path / CLIP_NAME).write_bytes(b"the user's own file")
    copied = install(str(tmp_path))
    assert CLIP_NAME not in copied and (tmp_path / CLIP_NAME).read_bytes() == b"the user's own file"
    shipped = [n for n in os.listdir(MEDIA_DIR) if n.startswith("memvos_example_")]
    assert len(shipped) >= 5 and sorted(copied) == sorted(n for n in shipped if n != CLIP_NAME)
    assert install(str(tmp_path)) == []
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".part")]


def test_example_clip_decodes_to_the_frames_the_stand_in_uses():
    av = pytest.importorskip("av")
    with av.open(os.path.join(MEDIA_DIR, CLIP_NAME)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    reference = (load_clip_frames().numpy() * 255).round()
    assert len(decoded) == reference.shape[0]
    assert np.abs(np.stack(decoded).astype(np.float64) - reference).mean() < 6


# ------------------------------------------------------------------ execution

@pytest.fixture(scope="module")
def comfy(comfy, tmp_path_factory):
    """The shared stand-ins, with the pack hooked into the server as ComfyUI's start does, and
    generated matting weights under the official name the masks-to-mattes example picks."""
    from comfy_stand_ins import link_weights
    from memvos_core.families.matanyone.synthetic import synthetic_matanyone_state_dict
    path = tmp_path_factory.mktemp("matting_weights") / "matanyone.pth"
    torch.save(synthetic_matanyone_state_dict(), path)
    link_weights(str(path), os.path.join(comfy.dirs["models"], "memvos"), "matanyone.pth")
    assert pack_for_tests().nodes.linked_outputs.install(pack_for_tests().NODE_CLASS_MAPPINGS), "as in ComfyUI, the pack hooks into the server"
    pack_for_tests().nodes.example_media.install(comfy.dirs["input"])  # as the pack does when ComfyUI loads it
    return comfy


def api_prompt(name, ours, changes=None):
    """The workflow in API form, with the test's smaller internal size and ``changes``
    (``{(class_type, input): value}``, applied to every node of that type)."""
    prompt = to_api(load_workflow(os.path.join(CARD_DIR, name)), ours)
    changes = {("MemVOSNewSession", "internal_size"): TEST_INTERNAL_SIZE, **(changes or {})}
    for node in prompt.values():
        for (kind, key), value in changes.items():
            if node["class_type"] == kind:
                node["inputs"][key] = value
    return prompt


def by_type(prompt, outputs, kind):
    return [outputs[i] for i, n in sorted(prompt.items(), key=lambda kv: int(kv[0])) if n["class_type"] == kind]


@pytest.fixture(scope="module")
def runs(comfy, ours):
    """Each example run once through a ComfyUI-like cache: ``{name: (prompt, outputs, ui)}``, and
    in ``caches`` the cache with a snapshot of the outputs taken right after the run."""
    results, caches = {}, {}
    for name in NAMES:
        prompt, cache = api_prompt(name, ours), {}
        outputs, ui = Executor(ours, cache).run(prompt)
        results[name] = (prompt, outputs, ui)
        caches[name] = (cache, {i: (Snapshot.of(outputs[i]), Snapshot.of(ui[i] or {})) for i in outputs})
    results["caches"] = caches
    return results


def _run(runs, topic):
    return runs[next(n for n in NAMES if topic in n)]


def _saved(prompt, ui, kind):
    return [ui[i]["saved"][0] for i, n in sorted(prompt.items(), key=lambda kv: int(kv[0]))
            if n["class_type"] == kind]


def _annotation(frame, object_id):
    from PIL import Image
    path = os.path.join(MEDIA_DIR, f"memvos_example_mask_f{frame:02d}_obj{object_id}.png")
    return torch.from_numpy(np.asarray(Image.open(path)) > 127)


def test_every_example_writes_previews(runs, comfy):
    for name in NAMES:
        prompt, _, ui = runs[name]
        for node_id, node in prompt.items():
            if node["class_type"] in ("MemVOSPropagate", "MemVOSComposite"):
                entry = ui[node_id]["memvos_preview"][0]
                path = os.path.join(comfy.dirs["temp"], entry["subfolder"], entry["filename"])
                assert os.path.isfile(path), (name, node_id)


def test_one_keyframe_overlay_video(runs):
    prompt, outputs, ui = _run(runs, "one_keyframe")
    (video,) = [s["video"] for s in _saved(prompt, ui, "SaveVideo")]
    assert isinstance(video, StandInVideo) and video.fps == 8.0
    assert tuple(video.images.shape) == (16, 108, 186, 3)
    (_, masks, union, label_map), = by_type(prompt, outputs, "MemVOSPropagate")
    assert union is None and label_map is None, "outputs nobody connected are not built"
    keyframe = _annotation(0, 1) | _annotation(0, 2)
    assert torch.equal(masks.union(0, 1)[0] > 0.5, keyframe), "the keyframe's mask comes back exactly"
    assert masks.object_ids == (1, 2) and masks.num_frames == 16
    frames = load_clip_frames()
    changed = (video.images - frames).abs().sum(-1) > 1e-6
    assert changed[0][keyframe].float().mean() > 0.99, "the overlay tints the objects"


def test_keyframes_both_directions_matte(runs):
    prompt, outputs, ui = _run(runs, "both_directions")
    rgba, alpha = [s["images"] for s in _saved(prompt, ui, "SaveImage")]
    assert tuple(rgba.shape) == (16, 108, 186, 4) and tuple(alpha.shape) == (16, 108, 186, 3)
    assert torch.allclose(rgba[..., 3], alpha[..., 0])
    assert torch.equal(rgba[..., :3], load_clip_frames()), "straight (unpremultiplied) colour"
    for frame in (0, 10):
        want = _annotation(frame, 1) | _annotation(frame, 2)
        got = rgba[frame, ..., 3] > 0.5
        assert (got & want).sum() / (got | want).sum() > 0.9, f"keyframe {frame} matte"
    (report, top, frames_text, suggestions), = by_type(prompt, outputs, "MemVOSSuggestFrames")
    assert isinstance(report, str) and isinstance(top, int) and isinstance(frames_text, str)
    assert all(s["frame"] not in (0, 10) for s in suggestions), "annotated frames are not suggested"


def test_inpaint_handoff_frames_and_masks_at_source_size(runs):
    prompt, outputs, ui = _run(runs, "inpaint")
    frames_saved, masks_saved = [s["images"] for s in _saved(prompt, ui, "SaveImage")]
    assert torch.equal(frames_saved, load_clip_frames()), "the frames go to inpainting unchanged, full size"
    assert tuple(masks_saved.shape) == (16, 108, 186, 3)
    (_, unlinked, mask_image), = [o for o in by_type(prompt, outputs, "MemVOSComposite")]
    assert unlinked is None, "Composite's mask is not connected in this example: not built"
    mask = mask_image[..., 0]  # the mask as a grey IMAGE, what goes to Save Image here
    obj1, obj2 = _annotation(0, 1), _annotation(0, 2)
    assert bool((mask[0][obj1] == 1).all()), "never below 1 on the object"
    grown = mask[0] > 0
    assert grown.sum() > obj1.sum() * 1.3, "grown and feathered around the object"
    far_from_1 = obj2 & ~torch.nn.functional.max_pool2d(obj1[None].float(), 31, 1, 15)[0].bool()
    assert float(mask[0][far_from_1].max()) == 0.0, "object 2 is not selected"


def test_chunks_give_the_same_masks_as_one_pass(runs):
    prompt, outputs, ui = _run(runs, "chunks")
    chunks = by_type(prompt, outputs, "MemVOSComposite")
    assert all(mask is None for _, mask, _ in chunks), "Composite's mask is not connected here: not built"
    chunked = torch.cat([mask_image[..., 0] for _, _, mask_image in chunks])  # the mask as a grey IMAGE
    whole_prompt, whole_outputs, _ = _run(runs, "one_keyframe")
    (_, masks, _, _), = by_type(whole_prompt, whole_outputs, "MemVOSPropagate")
    whole = masks.union(0, masks.num_frames)
    assert chunked.shape == whole.shape
    assert torch.allclose(chunked, whole, atol=1e-4), "the second chunk continues the first one's memory"
    (saved,), = by_type(prompt, outputs, "MemVOSSaveSession")
    assert saved.endswith(".session.safetensors")


def test_long_shot_from_video_streams_the_masks_to_disk(runs, comfy):
    prompt, outputs, ui = _run(runs, "from_video")
    (_, masks, union, label_map), = by_type(prompt, outputs, "MemVOSPropagate")
    assert union is None and label_map is None and masks.fps == 8.0, "compact masks, the video's own rate"
    matte, labels = by_type(prompt, outputs, "MemVOSSaveMasks")
    folder = os.path.join(comfy.dirs["output"], matte[0])
    assert matte[0].startswith("memvos/long_shot/matte_") and len(os.listdir(folder)) == 16
    assert os.path.isfile(folder + ".mp4")
    from PIL import Image
    first = np.asarray(Image.open(os.path.join(folder, "00000.png"))) > 32767
    painted = (_annotation(0, 1) | _annotation(0, 2)).numpy()
    # The matte is Refine Masks' (holes filled, grown by a pixel, feathered): the keyframe and a rim.
    assert np.array_equal(first & painted, painted) and first.sum() < 1.5 * painted.sum(), "keyframe matte, refined"
    (refined, union), = by_type(prompt, outputs, "MemVOSRefine")
    assert union is None and refined.stored is not None, "refined masks kept on disk, no batch nobody connected"
    assert by_type(prompt, outputs, "MemVOSComposite") == [(None, None, None)], "Composite: the preview only"
    indexed = Image.open(os.path.join(comfy.dirs["output"], labels[0], "00010.png"))
    assert indexed.mode == "P" and set(np.unique(np.asarray(indexed))) <= {0, 1, 2}
    (painted, total, fps), = by_type(prompt, outputs, "MemVOSGetFrames")
    assert tuple(painted.shape) == (1, 108, 186, 3) and (total, fps) == (16, 8.0)
    (mask, mask_image, some_labels), = by_type(prompt, outputs, "MemVOSGetMasks")
    assert mask is None and mask_image is None and tuple(some_labels.shape) == (5, 108, 186, 3)


def test_compositing_writes_exr_layers_and_prores(runs, comfy):
    import av
    prompt, outputs, ui = _run(runs, "compositing")
    (refined, _), = by_type(prompt, outputs, "MemVOSRefine")
    exr, prores = by_type(prompt, outputs, "MemVOSSaveMasks")
    folder = os.path.join(comfy.dirs["output"], exr[0])  # no PNGs, no video: the result is the EXR folder
    files = sorted(os.listdir(folder))
    assert len(files) == 16 and files[0].endswith(".0000.exr")
    planes = pack_for_tests().memvos_core.media_io.exr_writer.read_exr(os.path.join(folder, files[5]))
    assert sorted(planes) == ["A", "B", "G", "R", "ellipse.A", "square.A"]
    assert np.abs(planes["ellipse.A"] - refined.chunk(5, 6)[0, 0].numpy()).max() <= 2 ** -10
    with av.open(os.path.join(comfy.dirs["output"], prores[0])) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "prores" and float(stream.average_rate) == 8.0
        assert sum(1 for _ in container.decode(video=0)) == 16
    refine_id = next(i for i, n in prompt.items() if n["class_type"] == "MemVOSRefine")
    assert ui[refine_id]["memvos_preview"], "Refine shows the matte in the player"


def test_masks_to_mattes_tracks_then_mattes_in_one_graph(runs, comfy):
    from PIL import Image
    prompt, outputs, ui = _run(runs, "masks_to_mattes")
    (tracking, tracked, _, _), (matting, mattes, _, _) = by_type(prompt, outputs, "MemVOSPropagate")
    assert (tracking.model.family, matting.model.family) == ("xmem", "matanyone")
    assert [k.frame_index for k in matting.keyframes] == [0], "the tracking run's own keyframe"
    assert mattes.object_ids == tracked.object_ids == (1, 2) and mattes.num_frames == 16
    alpha = mattes.chunk(0, 16)
    assert ((alpha > 0.02) & (alpha < 0.98)).float().mean() > 0.02, "soft alpha, not a binary mask"
    (folder,), = by_type(prompt, outputs, "MemVOSSaveMasks")
    folder = os.path.join(comfy.dirs["output"], folder)
    assert sorted(os.listdir(folder)) == ["obj1", "obj2"], "a folder per object"
    files = sorted(os.listdir(os.path.join(folder, "obj2")))
    assert len(files) == 16 and files[0] == "00000.png", "a matte per frame, named like the frames"
    saved = Image.open(os.path.join(folder, "obj2", files[-1]))
    pixels = np.asarray(saved)
    assert saved.mode.startswith("I;16") or pixels.dtype == np.uint16, "16-bit mattes"
    assert len(np.unique(pixels)) > 256, "more levels than 8 bits hold"
    (comp,) = [s["images"] for s in _saved(prompt, ui, "SaveImage")]
    frames = load_clip_frames()
    union = 1 - (1 - alpha).prod(1)
    blue = torch.tensor([0x20, 0x40, 0xA0]) / 255
    behind = union < 1e-3
    assert torch.allclose(comp[behind], blue.expand_as(comp[behind]), atol=1e-3), "a new background"
    inside = union > 0.999
    # clean_edges re-estimates the objects' colour near their edges: kept on average, not per pixel.
    assert (comp[inside] - frames[inside]).abs().mean() < 0.03, "the objects kept"


class Snapshot:
    """Outputs reduced to comparable plain values (tensors, ids, keyframes, saved images)."""

    @staticmethod
    def of(value):
        if torch.is_tensor(value):
            return value.detach().cpu().float().clone()
        if isinstance(value, StandInVideo):
            return ("video", value.images.float(), value.fps)
        if isinstance(value, (tuple, list)):
            return tuple(Snapshot.of(v) for v in value)
        if isinstance(value, dict):
            return tuple((k, Snapshot.of(v)) for k, v in sorted(value.items()) if k != "memvos_preview")
        kind = type(value).__name__
        if kind == "MaskSet":
            return ("masks", value.object_ids, value.clip_start, value.materialise().float())
        if kind == "Session":
            frames = tuple((k.frame_index, k.object_ids, Snapshot.of(k.labels), Snapshot.of(k.image))
                           for k in value.keyframes)
            states = tuple(None if s is None else (s.next_frame, Snapshot.of(s.tensors))
                           for s in (value.forward_state, value.backward_state))
            return ("session", value.model.model_id, frames, states)
        if kind == "MemVOSModel":
            return ("model", value.model_id, value.device, value.precision)
        return value

    @staticmethod
    def assert_equal(a, b, where="output"):
        if torch.is_tensor(a):
            assert torch.equal(a, b), where
        elif isinstance(a, tuple):
            assert isinstance(b, tuple) and len(a) == len(b), where
            for n, (x, y) in enumerate(zip(a, b)):
                Snapshot.assert_equal(x, y, f"{where}[{n}]")
        else:
            assert a == b, where


def _second_chunk_ends_early(prompt):
    for node in prompt.values():
        if node["class_type"] == "MemVOSPropagate" and node["inputs"]["first_frame_index"] == 8:
            node["inputs"]["end_frame"] = 13
    return prompt


CACHE_CASES = {
    # Refine and Composite re-run on A's cached Propagate outputs (session, masks, frames).
    "both_directions": (lambda p: _changed(p, {("MemVOSRefine", "grow_px"): 3, ("MemVOSComposite", "mode"): "inpaint"}),
                        {"MemVOSRefine", "MemVOSComposite", "SaveImage"}),
    # The second chunk re-runs on the first chunk's cached session (its memory state).
    "chunks": (_second_chunk_ends_early, {"MemVOSPropagate", "MemVOSComposite", "SaveImage", "MemVOSSaveSession"}),
}


def _changed(prompt, changes):
    for node in prompt.values():
        for (kind, key), value in changes.items():
            if node["class_type"] == kind:
                node["inputs"][key] = value
    return prompt


@pytest.mark.parametrize("topic", sorted(CACHE_CASES))
def test_rerun_after_a_change_matches_a_fresh_run(runs, ours, comfy, topic):
    """Run A (the fixture's run, snapshot taken then), run B with one thing changed through the
    same ComfyUI-like cache (B's changed nodes get A's cached outputs), run A again: every
    output must equal the fresh run's snapshot, so nothing cached was written into."""
    name = next(n for n in NAMES if topic in n)
    change, expected_b = CACHE_CASES[topic]
    cache, fresh = runs["caches"][name]
    prompt_a = api_prompt(name, ours)
    run_b = Executor(ours, cache)
    run_b.run(change(api_prompt(name, ours)))
    assert {prompt_a[i]["class_type"] for i in run_b.executed} == expected_b, "B reused A's cached nodes"
    again = Executor(ours, cache)
    outputs_again, ui_again = again.run(prompt_a)
    assert len(again.executed) == len(run_b.executed), "A again re-ran just what B changed"
    for node_id, (outputs_fresh, ui_fresh) in fresh.items():
        where = f"node {node_id} ({prompt_a[node_id]['class_type']})"
        if prompt_a[node_id]["class_type"] == "MemVOSSaveSession":  # a new file each save: compare contents
            outputs_fresh, ui_fresh = _session_file(comfy, outputs_fresh[0]), ()
            outputs_again, ui_again = {node_id: _session_file(comfy, outputs_again[node_id][0])}, {node_id: None}
        Snapshot.assert_equal(Snapshot.of(outputs_again[node_id]), outputs_fresh, where)
        Snapshot.assert_equal(Snapshot.of(ui_again[node_id] or {}), ui_fresh, where + " ui")


def _session_file(comfy, relative):
    from safetensors import safe_open
    with safe_open(os.path.join(comfy.dirs["output"], relative), framework="pt") as f:
        return Snapshot.of((f.metadata(), {k: f.get_tensor(k) for k in f.keys()}))


def _keyframes_moved(frame, file=None):
    spec = json.loads(next(n for n in load_workflow(os.path.join(CARD_DIR, NAMES[0]))["nodes"]
                           if n["type"] == "MemVOSKeyframes")["widgets_values"][0])
    spec["keyframes"][0].update(frame=frame, **({"file": file} if file else {}))
    return json.dumps(spec)


def test_bad_widget_values_are_refused(comfy, ours):
    name = NAMES[0]
    prompt = api_prompt(name, ours, {("MemVOSPropagate", "start_frame"): -1})
    with pytest.raises(ValidationError, match="start_frame"):
        Executor(ours).run(prompt)
    prompt = api_prompt(name, ours, {("MemVOSKeyframes", "keyframes"): _keyframes_moved(0, "memvos/lost.png")})
    with pytest.raises(ValidationError, match="keyframe file 'memvos/lost.png' is missing"):
        Executor(ours).run(prompt)
    prompt = api_prompt(name, ours, {("MemVOSKeyframes", "keyframes"): _keyframes_moved(99)})
    with pytest.raises(ValueError, match=r"frame 99 is past the shot's 16 frames"):
        Executor(ours).run(prompt)
