"""Write the example workflows (UI format, as File > Save writes them) into examples_workflows/
and the template-browser copies into example_workflows/. Run by hand after a node's inputs change:

    python examples_workflows/tools/build_workflows.py

Widget values are laid out from the node classes themselves (ours) and from the core input specs
in tests/comfy_stand_ins.py, so their order always matches what the frontend expects; the tests
check that the committed files are exactly what this script writes.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CARD_DIR = os.path.join(REPO, "examples_workflows")
TEMPLATE_DIR = os.path.join(REPO, "example_workflows")  # the folder ComfyUI's template browser scans
PACK_ID, PACK_VERSION, CORE_VERSION = "memvos", "0.1.0", "0.8.0"
CLIP = "memvos_example_clip.mp4"
COLUMN = 400


def _tools():
    sys.path.insert(0, os.path.join(REPO, "tests"))
    from pack_loader import pack_for_tests
    from workflow_executor import NodeInfo
    return pack_for_tests().NODE_CLASS_MAPPINGS, NodeInfo


class Graph:
    """A UI-format workflow under construction."""

    def __init__(self, ours, node_info):
        self.ours, self.node_info = ours, node_info
        self.nodes, self.links, self.groups = [], [], []

    def add(self, kind, pos, title=None, size=None, **widgets):
        info = self.node_info(kind, self.ours)
        values = []
        for name, wkind, options in info.widgets:
            if name in widgets:
                values.append(widgets.pop(name))
            elif "default" in options:
                values.append(options["default"])
            else:
                values.append(list(wkind)[0])
        if widgets:
            raise KeyError(f"{kind} has no widgets {sorted(widgets)}")
        values += ["image"] * info.extra_widgets  # the upload button's value, as the frontend saves it
        sockets = [{"name": n, "type": info.type_name(k), "link": None}
                   for n, k, o, _ in info.inputs if not info.is_widget(k, o)]
        outputs = [{"name": n, "type": t, "links": None} for n, t in zip(info.output_names, info.output_types)]
        rows = max(len(sockets), len(outputs)) + len(info.widgets)
        node = {"id": len(self.nodes) + 1, "type": kind, "pos": list(pos),
                "size": list(size or [320, 46 + 24 * rows]), "flags": {}, "order": 0, "mode": 0,
                "inputs": sockets, "outputs": outputs,
                "properties": {"cnr_id": "comfy-core" if info.core else PACK_ID,
                               "ver": CORE_VERSION if info.core else PACK_VERSION, "Node name for S&R": kind},
                "widgets_values": values}
        if title:
            node["title"] = title
        self.nodes.append(node)
        return node

    def note(self, pos, size, text):
        node = {"id": len(self.nodes) + 1, "type": "Note", "pos": list(pos), "size": list(size), "flags": {},
                "order": 0, "mode": 0, "inputs": [], "outputs": [], "properties": {}, "widgets_values": [text],
                "color": "#432", "bgcolor": "#653"}
        self.nodes.append(node)
        return node

    def group(self, title, bounding, color="#3f789e"):
        self.groups.append({"id": len(self.groups) + 1, "title": title, "bounding": list(bounding),
                            "color": color, "font_size": 24, "flags": {}})

    def connect(self, source, output, target, input_name):
        info = self.node_info(source["type"], self.ours)
        slot = info.output_names.index(output) if isinstance(output, str) else output
        kind = info.output_types[slot]
        link_id = len(self.links) + 1
        inputs = target["inputs"]
        entry = next((i for i in inputs if i["name"] == input_name), None)
        if entry is None:  # a widget turned into a socket by the link
            entry = {"name": input_name, "type": kind, "widget": {"name": input_name}, "link": None}
            inputs.append(entry)
        entry["link"] = link_id
        outputs = source["outputs"][slot]
        outputs["links"] = (outputs["links"] or []) + [link_id]
        self.links.append([link_id, source["id"], slot, target["id"], inputs.index(entry), kind])

    def to_json(self):
        ids = {n["id"]: n for n in self.nodes}
        parents = {n["id"]: {link[1] for link in self.links if link[3] == n["id"]} for n in self.nodes}
        order, done = [], set()
        while len(order) < len(self.nodes):
            ready = [i for i in ids if i not in done and parents[i] <= done]
            for i in sorted(ready):
                order.append(i)
                done.add(i)
        for rank, node_id in enumerate(order):
            ids[node_id]["order"] = rank
        return {"last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": self.nodes,
                "links": self.links, "groups": self.groups, "config": {},
                "extra": {"ds": {"scale": 0.8, "offset": [40, 40]}}, "version": 0.4}


def _shot(g, y=0):
    """LoadVideo -> GetVideoComponents, and the model with a new session."""
    video = g.add("LoadVideo", (0, y), size=[300, 330], file=CLIP)
    parts = g.add("GetVideoComponents", (0, y + 360))
    g.connect(video, "VIDEO", parts, "video")
    model = g.add("MemVOSLoadModel", (0, y + 490), weights="XMem.pth")
    session = g.add("MemVOSNewSession", (0, y + 640))
    g.connect(model, "model", session, "model")
    return parts, session


def _video_shot(g):
    """LoadVideo (its VIDEO read a frame at a time by our nodes), and the model with a new session."""
    video = g.add("LoadVideo", (0, 0), size=[300, 330], file=CLIP)
    model = g.add("MemVOSLoadModel", (0, 360), weights="XMem.pth")
    session = g.add("MemVOSNewSession", (0, 510))
    g.connect(model, "model", session, "model")
    return video, session


def _annotate(g, session, frames, x, y, keyframes):
    """One Keyframes node naming the bundled keyframe PNGs (both objects on each frame given);
    ``frames`` is the (node, output) the frames come from."""
    frame_numbers = sorted({frame for frame, _ in keyframes})
    if any({o for f, o in keyframes if f == frame} != {1, 2} for frame in frame_numbers):
        raise ValueError("the bundled keyframe files hold objects 1 and 2: list both for each frame")
    spec = {"format": "memvos-keyframes", "version": 1,
            "objects": [{"id": 1, "name": "orange ellipse"}, {"id": 2, "name": "blue square"}],
            "keyframes": [{"frame": f, "file": f"memvos_example_keyframe_f{f:02d}.png", "objects": [1, 2]}
                          for f in frame_numbers]}
    node = g.add("MemVOSKeyframes", (x, y), size=[400, 330], keyframes=json.dumps(spec))
    g.connect(session, "session", node, "session")
    g.connect(*frames, node, "frames")
    return node


def _propagate(g, session, frames, fps, pos, title=None, **widgets):
    node = g.add("MemVOSPropagate", pos, title=title, size=[380, 600], **widgets)
    g.connect(session, "session", node, "session")
    g.connect(*frames, node, "frames")
    g.connect(fps, "fps", node, "preview_fps")
    return node


def one_keyframe():
    ours, info = _tools()
    g = Graph(ours, info)
    parts, session = _shot(g)
    session = _annotate(g, session, (parts, "images"), COLUMN, 0, [(0, 1), (0, 2)])
    prop = _propagate(g, session, (parts, "images"), parts, (3 * COLUMN - 40, 0), direction="forward")
    comp = g.add("MemVOSComposite", (4 * COLUMN, 0), size=[380, 640], mode="overlay", draw_ids=True)
    g.connect(parts, "images", comp, "frames")
    g.connect(prop, "masks", comp, "masks")
    g.connect(parts, "fps", comp, "preview_fps")
    video = g.add("CreateVideo", (5 * COLUMN, 0))
    g.connect(comp, "image", video, "images")
    g.connect(parts, "fps", video, "fps")
    save = g.add("SaveVideo", (5 * COLUMN, 160), size=[340, 420], filename_prefix="memvos/overlay")
    g.connect(video, "VIDEO", save, "video")
    g.note((0, -260), [760, 220],
           "MemVOS, one keyframe: the two objects are painted on frame 0 in the Keyframes node, propagated "
           "forward, and shown as a coloured overlay video.\n\nThe example clip and keyframe are copied into "
           "ComfyUI's input folder when the pack loads (examples_workflows/media). For your own shot: load "
           "your video, press Load frames on the Keyframes node, then Open editor and paint each object on a "
           "frame (N = new object). A bad frame in the player? Fix this frame opens it in the editor.\n\n"
           "XMem.pth downloads into models/memvos on first run.")
    return g.to_json()


def keyframes_both_directions():
    ours, info = _tools()
    g = Graph(ours, info)
    parts, session = _shot(g)
    session = _annotate(g, session, (parts, "images"), COLUMN, 0, [(0, 1), (0, 2), (10, 1), (10, 2)])
    prop = _propagate(g, session, (parts, "images"), parts, (3 * COLUMN - 40, 0), direction="both")
    refine = g.add("MemVOSRefine", (4 * COLUMN, 0), temporal_radius=1, fill_holes=True, remove_islands_px=16,
                   feather_px=1.0)
    g.connect(prop, "masks", refine, "masks")
    g.connect(parts, "images", refine, "frames")
    suggest = g.add("MemVOSSuggestFrames", (4 * COLUMN, 520), count=3)
    g.connect(prop, "session", suggest, "session")
    g.connect(parts, "images", suggest, "frames")
    g.connect(prop, "masks", suggest, "masks")
    comp = g.add("MemVOSComposite", (5 * COLUMN, 0), size=[380, 640], mode="matte rgba")
    g.connect(parts, "images", comp, "frames")
    g.connect(refine, "masks", comp, "masks")
    g.connect(parts, "fps", comp, "preview_fps")
    g.connect(suggest, "suggestions", comp, "suggestions")
    rgba = g.add("SaveImage", (6 * COLUMN, 0), size=[340, 300], filename_prefix="memvos/matte/rgba")
    g.connect(comp, "image", rgba, "images")
    alpha = g.add("SaveImage", (6 * COLUMN, 330), size=[340, 300], filename_prefix="memvos/matte/alpha")
    g.connect(comp, "mask_image", alpha, "images")
    g.note((0, -260), [760, 220],
           "MemVOS, several keyframes in both directions: both objects are annotated on frames 0 and 10. "
           "Propagate runs forward and backward from every keyframe and blends the two between keyframes "
           "(xmem++ keeps every keyframe in permanent memory). Refine smooths flicker, fills holes and "
           "softens edges; Composite exports the matte as RGBA PNGs (straight colour, alpha = object) and "
           "as a grey alpha sequence (white = object) in output/memvos/matte.\n\nSuggest Frames marks the "
           "frames worth annotating next on the preview's timeline; in the Keyframes editor S jumps to them. "
           "Add a keyframe anywhere: paint it in the editor, or press Fix this frame in a player.")
    return g.to_json()


def inpaint_handoff():
    ours, info = _tools()
    g = Graph(ours, info)
    parts, session = _shot(g)
    session = _annotate(g, session, (parts, "images"), COLUMN, 0, [(0, 1), (0, 2)])
    prop = _propagate(g, session, (parts, "images"), parts, (3 * COLUMN - 40, 0), direction="forward")
    comp = g.add("MemVOSComposite", (4 * COLUMN, 0), size=[380, 640], mode="inpaint", object_ids="1",
                 grow_px=6, feather_px=3.0)
    g.connect(parts, "images", comp, "frames")
    g.connect(prop, "masks", comp, "masks")
    g.connect(parts, "fps", comp, "preview_fps")
    frames_out = g.add("SaveImage", (5 * COLUMN, 0), size=[340, 300], filename_prefix="memvos/inpaint/frames")
    g.connect(comp, "image", frames_out, "images")
    masks_out = g.add("SaveImage", (5 * COLUMN, 330), size=[340, 300], filename_prefix="memvos/inpaint/masks")
    g.connect(comp, "mask_image", masks_out, "images")
    g.note((5 * COLUMN, 660), [560, 300],
           "Connect a video inpainting pack here, taking the frames and masks straight from MemVOS "
           "Composite (inpaint mode), both at the source size:\n\n"
           "ProPainter (ComfyUI_ProPainter_Nodes, node 'ProPainter Inpainting'): image <- Composite.image, "
           "mask <- Composite.mask.\n"
           "DiffuEraser (ComfyUI_DiffuEraser): its video frames input <- Composite.image, its mask input <- "
           "Composite.mask (or Composite.mask_image where it wants an IMAGE).\n\n"
           "Mask polarity is ComfyUI's: 1 / white = fill this. The saved PNG sequences in "
           "output/memvos/inpaint work for tools outside ComfyUI too.")
    g.note((0, -260), [760, 220],
           "MemVOS inpainting handoff: object 1 (the orange ellipse) is tracked from one keyframe and turned "
           "into an inpainting mask: grown by 6 px and feathered by 3 px so edges and motion blur are covered, "
           "never below 1 on the object. Composite's image output is the frames unchanged, aligned with the "
           "masks. Set object_ids to the objects to remove (empty = all).")
    return g.to_json()


def long_shot_in_chunks():
    ours, info = _tools()
    g = Graph(ours, info)
    parts, session = _shot(g)
    session = _annotate(g, session, (parts, "images"), COLUMN, 0, [(0, 1), (0, 2)])
    x, previous = 3 * COLUMN - 40, session
    for chunk, first in enumerate((0, 8), start=1):
        y = (chunk - 1) * 700
        piece = g.add("ImageFromBatch", (x, y), title=f"Chunk {chunk}: frames {first}..{first + 7}",
                      size=[280, 120], batch_index=first, length=8)
        g.connect(parts, "images", piece, "image")
        prop = _propagate(g, previous, (piece, "IMAGE"), parts, (x + 310, y), direction="forward",
                          first_frame_index=first)
        comp = g.add("MemVOSComposite", (x + 720, y), size=[380, 640], mode="overlay")
        g.connect(piece, "IMAGE", comp, "frames")
        g.connect(prop, "masks", comp, "masks")
        g.connect(parts, "fps", comp, "preview_fps")
        save = g.add("SaveImage", (x + 1130, y), size=[340, 300],
                     filename_prefix=f"memvos/long_shot/chunk{chunk}_overlay")
        g.connect(comp, "image", save, "images")
        masks = g.add("SaveImage", (x + 1130, y + 330), size=[340, 300],
                      filename_prefix=f"memvos/long_shot/chunk{chunk}_mask")
        g.connect(comp, "mask_image", masks, "images")
        previous = prop
    keep = g.add("MemVOSSaveSession", (x + 310, 1330), filename_prefix="memvos/long_shot/session")
    g.connect(previous, "session", keep, "session")
    g.note((0, -260), [760, 240],
           "MemVOS on a long shot, in chunks: each Propagate takes a chunk of frames and the session of the "
           "chunk before; its memory continues exactly where that chunk stopped, so chunk boundaries do not "
           "break the masks. Set first_frame_index to where the chunk starts in the shot (ImageFromBatch's "
           "batch_index). Duplicate a chunk row for more chunks; each chunk's outputs are saved as it finishes. "
           "Save Session keeps the memory so a later run can go on with Load Session.\n\nMemory stays bounded "
           "(XMem's long-term memory), whatever the length of the shot.")
    return g.to_json()


def long_shot_from_video():
    ours, info = _tools()
    g = Graph(ours, info)
    video, session = _video_shot(g)
    first = g.add("MemVOSGetFrames", (COLUMN, -380), title="The frame to paint on", start_frame=0, frame_count=1)
    g.connect(video, "VIDEO", first, "frames")
    look = g.add("PreviewImage", (2 * COLUMN, -380), size=[300, 260])
    g.connect(first, "images", look, "images")
    chain = _annotate(g, session, (video, "VIDEO"), COLUMN, 0, [(0, 1), (0, 2)])
    prop = g.add("MemVOSPropagate", (3 * COLUMN - 40, 0), size=[380, 600], direction="forward")
    g.connect(chain, "session", prop, "session")
    g.connect(video, "VIDEO", prop, "frames")
    refine = g.add("MemVOSRefine", (4 * COLUMN, 0), size=[360, 440], fill_holes=True, grow_px=1, feather_px=1.0)
    g.connect(prop, "masks", refine, "masks")
    g.connect(video, "VIDEO", refine, "frames")
    matte = g.add("MemVOSSaveMasks", (5 * COLUMN, 0), size=[360, 330], filename_prefix="memvos/long_shot/matte")
    g.connect(refine, "masks", matte, "masks")
    overlay = g.add("MemVOSComposite", (6 * COLUMN, 0), size=[380, 600], title="Refined masks over the shot")
    g.connect(video, "VIDEO", overlay, "frames")
    g.connect(refine, "masks", overlay, "masks")
    labels = g.add("MemVOSSaveMasks", (4 * COLUMN, 480), size=[360, 330], filename_prefix="memvos/long_shot/labels",
                   content="label map", video="none")
    g.connect(prop, "masks", labels, "masks")
    some = g.add("MemVOSGetMasks", (4 * COLUMN, 840), title="A few frames to look at", start_frame=4, end_frame=8)
    g.connect(prop, "masks", some, "masks")
    show = g.add("PreviewImage", (5 * COLUMN, 840), size=[300, 260])
    g.connect(some, "label_map", show, "images")
    g.note((0, -380), [360, 340],
           "MemVOS on a long shot, from a video file: Load Video's VIDEO goes straight into MemVOS, which decodes "
           "one frame at a time, so a shot of any length never sits in memory as an IMAGE batch. Propagate keeps "
           "the masks compact (and builds its full-size mask / label_map outputs only when they are connected); "
           "Refine Masks cleans the masks a chunk at a time and keeps them on disk; Save Masks streams every "
           "frame to output/memvos/long_shot: a 16-bit PNG matte per frame, named like the frames, plus an mp4, "
           "and indexed label maps; Composite shows the refined masks over the shot (its IMAGE outputs are built "
           "only when connected).\n\nPaint a keyframe: open the Keyframes node's "
           "editor, go to the frame, paint each object and save; the editor reads only the frames it shows. A "
           "folder of frames works the same through MemVOS Load Frames.")
    return g.to_json()


def compositing():
    ours, info = _tools()
    g = Graph(ours, info)
    video, session = _video_shot(g)
    chain = _annotate(g, session, (video, "VIDEO"), COLUMN, 0, [(0, 1), (0, 2), (10, 1), (10, 2)])
    prop = g.add("MemVOSPropagate", (3 * COLUMN - 40, 0), size=[380, 600], direction="both")
    g.connect(chain, "session", prop, "session")
    g.connect(video, "VIDEO", prop, "frames")
    refine = g.add("MemVOSRefine", (4 * COLUMN, 0), size=[380, 700], title="Refine Matte", temporal_radius=1,
                   feather_px=1.0, contrast=0.2, shift_edge_px=-0.5, reduce_chatter=0.5, motion_blur=0.5)
    g.connect(prop, "masks", refine, "masks")
    g.connect(video, "VIDEO", refine, "frames")
    exr = g.add("MemVOSSaveMasks", (5 * COLUMN, 0), size=[360, 420], title="EXR layers",
                filename_prefix="memvos/comp/shot", content="matte per object", png_sequence=False, video="none",
                exr="piz", foreground="clean premultiplied", layer_names="1=ellipse, 2=square")
    g.connect(refine, "masks", exr, "masks")
    g.connect(video, "VIDEO", exr, "frames")
    prores = g.add("MemVOSSaveMasks", (5 * COLUMN, 450), size=[360, 420], title="ProRes 4444",
                   filename_prefix="memvos/comp/shot_prores", png_sequence=False, video="mov (prores 4444, alpha)",
                   foreground="clean straight")
    g.connect(refine, "masks", prores, "masks")
    g.connect(video, "VIDEO", prores, "frames")
    g.note((0, -300), [760, 260],
           "MemVOS for compositing: two keyframes, propagated both ways, then Refine Matte's controls (feather, "
           "contrast, a half-pixel choke, reduce chatter on the edges, motion blur along the picture's motion; "
           "its player shows the matte over a checkerboard). Save Masks writes what Nuke, Fusion, After Effects "
           "and Resolve read natively into output/memvos/comp: a half-float OpenEXR sequence (A = both objects, "
           "layers ellipse.A and square.A, RGB = the clean premultiplied foreground; frame numbers = clip "
           "indices) and a ProRes 4444 .mov with the matte as alpha and the clean foreground as straight colour, "
           "at the video's rate and colour tags.\n\nEXR needs 'pip install OpenEXR' in ComfyUI's Python. "
           "The same files from a terminal: python -m memvos_core ... --format png exr prores --foreground "
           "'clean premultiplied'.")
    return g.to_json()


def masks_to_mattes():
    ours, info = _tools()
    g = Graph(ours, info)
    parts, tracking = _shot(g)
    tracking = _annotate(g, tracking, (parts, "images"), COLUMN, 0, [(0, 1), (0, 2)])
    tracked = _propagate(g, tracking, (parts, "images"), parts, (3 * COLUMN - 40, 0), title="Track (XMem)",
                         direction="forward")
    y = 760
    matting_model = g.add("MemVOSLoadModel", (COLUMN, y), title="Matting model", weights="matanyone.pth")
    matting = g.add("MemVOSNewSession", (COLUMN, y + 150))
    g.connect(matting_model, "model", matting, "model")
    keys = g.add("MemVOSMasksToKeyframes", (2 * COLUMN, y), size=[340, 170])
    g.connect(matting, "session", keys, "session")
    g.connect(tracked, "masks", keys, "masks")
    g.connect(parts, "images", keys, "frames")
    mattes = _propagate(g, keys, (parts, "images"), parts, (3 * COLUMN - 40, y), title="Matte",
                        direction="forward")
    save = g.add("MemVOSSaveMasks", (4 * COLUMN, y), size=[360, 420], title="16-bit mattes",
                 filename_prefix="memvos/mattes/matte", content="matte per object", video="none")
    g.connect(mattes, "masks", save, "masks")
    comp = g.add("MemVOSComposite", (5 * COLUMN, y), size=[380, 640], title="New background",
                 mode="replace background", background_color="#2040a0", clean_edges=True)
    g.connect(parts, "images", comp, "frames")
    g.connect(mattes, "masks", comp, "masks")
    g.connect(parts, "fps", comp, "preview_fps")
    shown = g.add("SaveImage", (6 * COLUMN, y), size=[340, 300], filename_prefix="memvos/mattes/comp")
    g.connect(comp, "image", shown, "images")
    g.note((0, -300), [760, 260],
           "MemVOS, masks to mattes in one graph: the top row tracks the two objects with XMem (the model made "
           "for tracking; Cutie or SAM 2.1 work the same) from one painted keyframe. Masks To Keyframes hands "
           "those masks to a matting session (MatAnyone), whose Propagate turns them into learned soft alpha "
           "mattes: hair, motion blur and semi-transparent edges. Save Masks writes each object's matte as a "
           "16-bit PNG sequence into output/memvos/mattes; Composite puts the objects on a new background.\n\n"
           "matanyone.pth / matanyone2.pth are under the S-Lab License 1.0: NON-COMMERCIAL use only. They "
           "download into models/memvos on first run. Masks To Keyframes takes the frames the tracking run was "
           "annotated on; list more (e.g. 0, 40) where the tracker is good and the matte drifts: a later "
           "keyframe's matte is its mask as given (hard), the first one's is refined by the warm-up.")
    return g.to_json()


WORKFLOWS = {
    "memvos_1_one_keyframe_overlay.json": one_keyframe,
    "memvos_2_keyframes_both_directions_matte.json": keyframes_both_directions,
    "memvos_3_inpaint_handoff.json": inpaint_handoff,
    "memvos_4_long_shot_chunks.json": long_shot_in_chunks,
    "memvos_5_long_shot_from_video.json": long_shot_from_video,
    "memvos_6_compositing_exr_prores.json": compositing,
    "memvos_7_masks_to_mattes.json": masks_to_mattes,
}


def render(workflow):
    return json.dumps(workflow, indent=1, ensure_ascii=False) + "\n"


def main():
    sys.path.insert(0, HERE)
    from draw_workflow import draw
    ours, node_info = _tools()
    from pack_loader import pack_for_tests
    display_names = pack_for_tests().NODE_DISPLAY_NAME_MAPPINGS
    for name, build in WORKFLOWS.items():
        workflow = build()
        kinds = {n["type"] for n in workflow["nodes"] if n["type"] != "Note"}
        names = {k: [w[0] for w in node_info(k, ours).widgets] for k in kinds}
        picture = draw(workflow, display_names=display_names, widget_names=names)
        for folder in (CARD_DIR, TEMPLATE_DIR):
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, name), "w", encoding="utf-8", newline="\n") as f:
                f.write(render(workflow))
            # The template browser shows <name>.jpg as the workflow's thumbnail.
            picture.save(os.path.join(folder, name[:-5] + ".jpg"), quality=88, optimize=True)
    print("written", sorted(WORKFLOWS), "with pictures, into", CARD_DIR, "and", TEMPLATE_DIR)


if __name__ == "__main__":
    main()
