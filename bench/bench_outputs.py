"""Compositing outputs and Refine Matte controls per 1080p frame, side by side in one run.

    python bench/bench_outputs.py [--frames 3] [--size 1920x1080] [--threads N] [--device cpu|cuda]
                                  [--exr-picture docs/exr_layers_readback.png]

Two tables: (1) each output format, written as Save Masks writes it (two objects, a soft-edged
matte each): ms per frame (wall; in parentheses process CPU time, which load from other
processes on a shared machine disturbs less) and bytes per frame on disk; (2) each Refine Matte
control and the foreground estimate on ``--device``: ms per frame. The scene is a grainy
textured picture with two soft-edged objects sliding across it. With ``--exr-picture`` the first
EXR frame (zip, with the foreground) is read back through the OpenEXR bindings and its layers are
drawn side by side into that PNG.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from memvos_core.media_io import media  # noqa: E402
from memvos_core.media_io.compositing import foreground_colour, rgba16  # noqa: E402
from memvos_core.media_io.exr_writer import ExrSequence, read_exr  # noqa: E402
from memvos_core.ops import matte_edges, refine  # noqa: E402
from memvos_core.ops.foreground import estimate_foreground_chunk  # noqa: E402
from memvos_core.media_io.video_writer import VideoWriter  # noqa: E402


def scene(count, height, width, step=6):
    gen = torch.Generator().manual_seed(0)
    texture = F.interpolate(torch.rand(1, 3, height // 16, (width + step * count) // 16 + 1, generator=gen),
                            size=(height, width + step * count), mode="bicubic", align_corners=False)
    yy, xx = torch.meshgrid(torch.arange(height).float(), torch.arange(width).float(), indexing="ij")
    frames, mattes = [], []
    for t in range(count):
        picture = texture[0, :, :, step * (count - t):step * (count - t) + width].permute(1, 2, 0)
        planes = []
        for cy, cx, r, colour in ((0.5, 0.35, 0.22, (0.85, 0.35, 0.2)), (0.4, 0.7, 0.14, (0.2, 0.45, 0.85))):
            dist = ((yy - cy * height) ** 2 + (xx - cx * width - step * t) ** 2).sqrt()
            matte = ((r * height - dist) / (0.004 * height) + 0.5).clamp(0, 1)
            picture = matte[..., None] * torch.tensor(colour) + (1 - matte[..., None]) * picture
            planes.append(matte)
        grain = torch.randn(height, width, 3, generator=gen) * 0.01
        frames.append((picture + grain).clamp(0, 1))
        mattes.append(torch.stack(planes))
    return torch.stack(frames), torch.stack(mattes)


def timed(fn):
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


def folder_bytes(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(path) for n in names)


def format_rows(frames, mattes, out):
    """(name, seconds wall, seconds cpu, bytes) for each format over all the frames."""
    count = frames.shape[0]
    union = mattes.amax(1)
    rows = []

    def png16(path):
        os.makedirs(path)
        for t in range(count):
            media.save_soft_png(union[t], os.path.join(path, f"{t:05d}.png"))

    def labels(path):
        os.makedirs(path)
        for t in range(count):
            label = torch.where(mattes[t, 0] >= 0.5, 1, 0) + torch.where(mattes[t, 1] >= 0.5, 2, 0)
            media.save_label_png(label.to(torch.uint8), os.path.join(path, f"{t:05d}.png"))

    def video(codec, path):
        with VideoWriter(path, 24, codec) as writer:
            for t in range(count):
                u16 = (union[t] * 65535).round().to(torch.int32).numpy().astype(np.uint16)
                writer.write(u16 if codec == "ffv1" else (u16 >> 8).astype(np.uint8))

    def prores(path, foreground):
        with VideoWriter(path, 24, "prores") as writer:
            for t in range(count):
                writer.write(rgba16(foreground_colour(frames[t], union[t], foreground), union[t]))

    def exr(path, compression, foreground):
        seq = ExrSequence(path, "shot", compression)
        for t in range(count):
            colour = foreground_colour(frames[t], union[t], foreground)
            seq.write(t, {"obj1": mattes[t, 0].numpy(), "obj2": mattes[t, 1].numpy()}, union[t].numpy(),
                      None if colour is None else colour.numpy())

    cases = [
        ("png16 matte (today)", "png", png16),
        ("label map png (today)", "labels", labels),
        ("mp4 h264 (today)", "v.mp4", lambda p: video("h264", p)),
        ("mkv ffv1 16-bit (today)", "v.mkv", lambda p: video("ffv1", p)),
        ("exr piz: A + 2 layers", "exr_piz", lambda p: exr(p, "piz", "none")),
        ("exr zip: A + 2 layers", "exr_zip", lambda p: exr(p, "zip", "none")),
        ("exr dwaa: A + 2 layers", "exr_dwaa", lambda p: exr(p, "dwaa", "none")),
        ("exr piz + RGB premultiplied", "exr_piz_rgb", lambda p: exr(p, "piz", "premultiplied")),
        ("exr zip + RGB premultiplied", "exr_zip_rgb", lambda p: exr(p, "zip", "premultiplied")),
        ("prores 4444: matte as grey + alpha", "p.mov", lambda p: prores(p, "none")),
        ("prores 4444: frame + alpha", "pf.mov", lambda p: prores(p, "straight")),
        ("prores 4444: clean fg + alpha", "pc.mov", lambda p: prores(p, "clean straight")),
    ]
    for name, target, write in cases:
        path = os.path.join(out, target)
        wall, cpu = timed(lambda: write(path))
        rows.append((name, wall / count, cpu / count, folder_bytes(path) / count))
        print(f"  {name}: {1000 * wall / count:.0f} ms", file=sys.stderr)
    return rows


def control_rows(frames, mattes, device):
    count = frames.shape[0]
    frames, mattes = frames.to(device), mattes.to(device)
    planes = mattes.reshape(-1, *mattes.shape[-2:])
    sync = (lambda: torch.cuda.synchronize()) if device.type == "cuda" else (lambda: None)
    cases = [
        ("feather 4 px", lambda: refine._feather(planes, 4.0)),
        ("contrast 0.5", lambda: matte_edges.contrast(planes, 0.5)),
        ("shift edge +2.5 px", lambda: matte_edges.shift_edge(planes, 2.5)),
        ("choke -2.5 px", lambda: matte_edges.shift_edge(planes, -2.5)),
        ("reduce chatter (2 frames each side)", lambda: matte_edges.reduce_chatter(mattes, frames, 2, 1.0)),
        ("motion blur 0.5, DIS flow (CPU)", lambda: matte_edges.motion_blur(mattes.cpu(), frames.cpu(), 0.5,
                                                                           method="dis")),
        ("motion blur 0.5, torch flow", lambda: matte_edges.motion_blur(mattes, frames, 0.5, method="torch")),
        ("clean foreground (multilevel)", lambda: estimate_foreground_chunk(
            frames.permute(0, 3, 1, 2), mattes.amax(1, keepdim=True))),
    ]
    rows = []
    for name, fn in cases:
        fn() if device.type == "cuda" else None  # warm-up on the GPU (kernels, allocator)
        sync()
        wall, cpu = timed(lambda: (fn(), sync()))
        rows.append((name, wall / count, cpu / count))
        print(f"  {name}: {1000 * wall / count:.0f} ms", file=sys.stderr)
    return rows


def exr_picture(out, frames, mattes, path):
    """The layers of one EXR frame read back by the OpenEXR bindings, drawn side by side."""
    from PIL import Image, ImageDraw
    seq = ExrSequence(out, "readback", "zip")
    union = mattes[0].amax(0)
    colour = foreground_colour(frames[0], union, "clean premultiplied")
    file = seq.write(1001, {"hero": mattes[0, 0].numpy(), "car": mattes[0, 1].numpy()}, union.numpy(),
                     colour.numpy())
    planes = read_exr(file)
    tiles = [("RGB (clean, premultiplied)", np.stack([planes["R"], planes["G"], planes["B"]], -1)),
             ("A", planes["A"]), ("hero.A", planes["hero.A"]), ("car.A", planes["car.A"])]
    width = 480
    height = round(width * union.shape[0] / union.shape[1])
    sheet = Image.new("RGB", (width * len(tiles), height + 28), (30, 30, 30))
    draw = ImageDraw.Draw(sheet)
    for k, (name, plane) in enumerate(tiles):
        rgb = plane if plane.ndim == 3 else np.repeat(plane[..., None], 3, -1)
        tile = Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)).resize((width, height))
        sheet.paste(tile, (k * width, 28))
        draw.text((k * width + 8, 8), f"{os.path.basename(file)}  {name}", fill=(230, 230, 230))
    sheet.save(path)
    print(f"EXR layers read back: {sorted(planes)} -> {path}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--exr-picture", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))
    frames, mattes = scene(args.frames, height, width)
    print(f"{args.frames} frames at {width}x{height}, 2 objects; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads", file=sys.stderr)
    with tempfile.TemporaryDirectory() as out:
        formats = format_rows(frames, mattes, out)
        controls = control_rows(frames, mattes, torch.device(args.device))
        if args.exr_picture:
            exr_picture(out, frames, mattes, args.exr_picture)
    print(f"\nOutputs, per {width}x{height} frame (CPU):")
    print(f"| {'format':<36} | {'ms (cpu ms)':>14} | {'bytes/frame':>12} |")
    print(f"|{'-' * 38}|{'-' * 16}|{'-' * 14}|")
    for name, wall, cpu, size in formats:
        print(f"| {name:<36} | {1000 * wall:>6.0f} ({1000 * cpu:>5.0f}) | {size:>12,.0f} |")
    print(f"\nRefine Matte controls and foreground, per {width}x{height} frame of 2 objects ({args.device}):")
    print(f"| {'control':<36} | {'ms (cpu ms)':>14} |")
    print(f"|{'-' * 38}|{'-' * 16}|")
    for name, wall, cpu in controls:
        print(f"| {name:<36} | {1000 * wall:>6.0f} ({1000 * cpu:>5.0f}) |")


if __name__ == "__main__":
    main()
