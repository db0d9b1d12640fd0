"""Rebuild the example media in examples_workflows/media/ from the test clip (run by hand).

The clip is the 16-frame synthetic shot of tests/fixtures/xmem_parity (two moving objects on a
textured background), cropped by one row and one column to 108x186 because H.264 in yuv420p
needs even sizes. The masks are the two objects of annotation frames 0 and 10, one grayscale
PNG per object and frame (white = object), read by ComfyUI's LoadImageMask with channel "red",
and the same annotations as one indexed PNG per frame for the Keyframes node.
Needs PyAV (``pip install av``), which ComfyUI itself depends on; the pack does not.
"""
import os
import sys
from fractions import Fraction

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FIXTURE = os.path.join(REPO, "tests", "fixtures", "xmem_parity")
MEDIA = os.path.join(os.path.dirname(HERE), "media")
HEIGHT, WIDTH = 108, 186
FPS = 8
CLIP_NAME = "memvos_example_clip.mp4"
MASKS = {  # (frame, object id) -> file name
    (0, 1): "memvos_example_mask_f00_obj1.png",
    (0, 2): "memvos_example_mask_f00_obj2.png",
    (10, 1): "memvos_example_mask_f10_obj1.png",
    (10, 2): "memvos_example_mask_f10_obj2.png",
}
KEYFRAMES = {0: "memvos_example_keyframe_f00.png", 10: "memvos_example_keyframe_f10.png"}  # objects 1 and 2


def clip_frames():
    folder = os.path.join(FIXTURE, "clip", "frames")
    names = sorted(n for n in os.listdir(folder) if n.endswith(".png"))
    return [np.array(Image.open(os.path.join(folder, n)).convert("RGB"))[:HEIGHT, :WIDTH] for n in names]


def write_clip(frames, path):
    import av
    with av.open(path, mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(FPS, 1))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "12", "preset": "veryslow"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_masks():
    for (frame, object_id), name in MASKS.items():
        labels = np.array(Image.open(os.path.join(FIXTURE, "run_D", "annotations", f"{frame:05d}.png")))
        mask = (labels[:HEIGHT, :WIDTH] == object_id).astype(np.uint8) * 255
        Image.fromarray(mask, "L").save(os.path.join(MEDIA, name), optimize=True)


def write_keyframes():
    """The same annotations as one indexed PNG per frame (pixel value = object id, DAVIS palette):
    the files the examples' Keyframes node names, as its editor would have saved them."""
    sys.path.insert(0, REPO)
    from memvos_core.media_io.media import label_image
    for frame, name in KEYFRAMES.items():
        labels = np.array(Image.open(os.path.join(FIXTURE, "run_D", "annotations", f"{frame:05d}.png")))
        label_image(labels[:HEIGHT, :WIDTH].astype(np.uint8)).save(os.path.join(MEDIA, name), optimize=True)


def main():
    os.makedirs(MEDIA, exist_ok=True)
    frames = clip_frames()
    if len(frames) != 16:
        sys.exit(f"expected 16 fixture frames, found {len(frames)}")
    write_clip(frames, os.path.join(MEDIA, CLIP_NAME))
    write_masks()
    write_keyframes()
    print("written", sorted(os.listdir(MEDIA)))


if __name__ == "__main__":
    main()
