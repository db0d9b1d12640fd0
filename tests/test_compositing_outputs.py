"""Compositing outputs read back by independent readers: OpenEXR layers (the official bindings)
and ProRes 4444 with alpha (PyAV's decoder), from the core writers and from Save Masks; the
foreground decontamination on a composite whose true foreground is known."""
import os

import numpy as np
import OpenEXR  # requirements-test.txt; for users an optional dependency
import pytest
import torch

from pack_loader import pack_for_tests
from comfy_stand_ins import Interrupted

PACK = pack_for_tests()
NODES = PACK.NODE_CLASS_MAPPINGS
core = PACK.memvos_core
H, W, T = 24, 40, 4


def _soft_disc(cy, cx, radius, ramp=4.0, h=H, w=W):
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    distance = ((yy - cy) ** 2 + (xx - cx) ** 2).sqrt()
    return ((radius - distance) / ramp + 0.5).clamp(0, 1)


@pytest.fixture(scope="module")
def mattes():
    """``[T,2,H,W]`` soft mattes of two objects, moving right."""
    return torch.stack([torch.stack([_soft_disc(10, 8 + 3 * t, 6), _soft_disc(14, 28, 5 + t)]) for t in range(T)])


@pytest.fixture(scope="module")
def frames():
    g = torch.Generator().manual_seed(3)
    return (torch.rand(T, H, W, 3, generator=g) * 255).round() / 255


def _mask_set(mattes, fps=12.5, clip_start=100):
    return PACK.nodes.mask_set.MaskSet(object_ids=(1, 2), clip_start=clip_start, num_frames=T, frame_hw=(H, W),
                                       frames_first_index=clip_start, frames_count=T, dense=mattes.half(), fps=fps)


def _save(masks, **widgets):
    settings = {"filename_prefix": "comp/m", "content": "matte", "object_ids": "", "png_sequence": False,
                "video": "none", "fps": 0.0, **widgets}
    return NODES["MemVOSSaveMasks"]().save(masks, **settings)


def _prores_alpha(path):
    """The decoded frames' pixel format, rate, and alpha planes as floats (PyAV's decoder)."""
    import av
    with av.open(path) as container:
        stream = container.streams.video[0]
        rate, tags = float(stream.average_rate), (stream.codec_context.color_primaries,
                                                  stream.codec_context.colorspace)
        formats, alphas, rgbs = set(), [], []
        for frame in container.decode(video=0):
            formats.add(frame.format.name)
            rgba = frame.to_ndarray(format="rgba64le").astype(np.float64) / 65535
            alphas.append(rgba[..., 3])
            rgbs.append(rgba[..., :3])
    return formats, rate, tags, np.stack(alphas), np.stack(rgbs)


def test_exr_sequence_layers_read_back_in_half_precision(tmp_path, mattes, frames):
    seq = core.media_io.exr_writer.ExrSequence(tmp_path, "shot", "zip")
    union = mattes[1].amax(0)
    path = seq.write(1001, {"hero": mattes[1, 0].numpy(), "car": mattes[1, 1].numpy()}, union.numpy(),
                     (frames[1] * union[..., None]).numpy())
    assert os.path.basename(path) == "shot.1001.exr" and os.listdir(tmp_path) == ["shot.1001.exr"]
    with OpenEXR.File(path, separate_channels=True) as exr:
        header, channels = exr.header(), exr.channels()
        assert sorted(channels) == ["A", "B", "G", "R", "car.A", "hero.A"]
        assert all(c.pixels.dtype == np.float16 for c in channels.values()), "half float"
        (x0, y0), (x1, y1) = header["dataWindow"]
        assert header["displayWindow"][1].tolist() == [W - 1, H - 1]
        ys, xs = np.nonzero(union.numpy() > 0)
        assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max(), ys.max()), "data window = what the mattes cover"
        assert header["compression"] == OpenEXR.ZIP_COMPRESSION
    back = core.media_io.exr_writer.read_exr(path)
    for name, plane in (("hero.A", mattes[1, 0]), ("car.A", mattes[1, 1]), ("A", union)):
        assert np.abs(back[name] - plane.numpy()).max() <= 2 ** -11, f"{name} within half precision"
    assert np.abs(back["G"] - (frames[1, ..., 1] * union).numpy()).max() <= 2 ** -11
    with pytest.raises(ValueError, match="layer name"):
        seq.write(1002, {"a.b": mattes[0, 0].numpy()}, union.numpy())
    with pytest.raises(ValueError, match="compression"):
        core.media_io.exr_writer.ExrSequence(tmp_path, "shot", "lzw")


def test_prores_4444_alpha_read_back(tmp_path, mattes, frames):
    path = str(tmp_path / "m.mov")
    colour = {"primaries": 9, "trc": 1, "space": 9, "range": 1}
    with core.media_io.video_writer.VideoWriter(path, 23.976, "prores", colour=colour) as writer:
        for t in range(T):
            writer.write(core.media_io.compositing.rgba16(frames[t], mattes[t, 0]))
    formats, rate, tags, alphas, rgbs = _prores_alpha(path)
    assert formats == {"yuva444p12le"} and len(alphas) == T and abs(rate - 23.976) < 1e-3
    assert tags == (9, 9), "the colour tags given"
    assert np.abs(alphas - mattes[:, 0].numpy()).max() <= 1 / 1023, "alpha within 10-bit quantisation"
    assert np.abs(rgbs - frames.numpy()).mean() < 0.02, "colour through 4:4:4 YUV"
    with pytest.raises(ValueError, match="ProRes takes uint16 RGBA"):
        with core.media_io.video_writer.VideoWriter(str(tmp_path / "bad.mov"), 24, "prores") as writer:
            writer.write(np.zeros((H, W), np.uint8))
    assert not os.path.exists(tmp_path / "bad.mov") and not os.path.exists(tmp_path / ".bad.mov.part")


def test_save_masks_writes_exr_and_prores(comfy, mattes, frames):
    masks = _mask_set(mattes)
    returned = _save(masks, video="mov (prores 4444, alpha)", exr="piz", foreground="clean premultiplied",
                     layer_names="1=hero", frames=frames)
    relative = returned["result"][0]
    assert relative == "comp/m_00001.mov"
    folder = os.path.join(comfy.dirs["output"], "comp")
    exr_folder = os.path.join(folder, "m_00001_exr")
    assert sorted(os.listdir(exr_folder)) == [f"m_00001.{100 + t:04d}.exr" for t in range(T)], "clip indices"
    union = mattes.amax(1)
    back = core.media_io.exr_writer.read_exr(os.path.join(exr_folder, "m_00001.0102.exr"))
    assert sorted(back) == ["A", "B", "G", "R", "hero.A", "obj2.A"]
    mattes16 = mattes.half().float()  # what the MaskSet holds
    assert np.abs(back["obj2.A"] - mattes16[2, 1].numpy()).max() <= 2 ** -11
    assert np.abs(back["A"] - mattes16[2].amax(0).numpy()).max() <= 2 ** -11
    assert (back["R"] <= back["A"] + 2 ** -10).all(), "premultiplied colour never exceeds the alpha"
    formats, rate, _, alphas, _ = _prores_alpha(os.path.join(comfy.dirs["output"], relative))
    assert rate == 12.5 and len(alphas) == T and formats == {"yuva444p12le"}
    assert np.abs(alphas - union.numpy()).max() <= 1 / 1023 + 2 ** -11
    with pytest.raises(ValueError, match="frames is not connected"):
        _save(masks, exr="zip", foreground="straight")
    with pytest.raises(ValueError, match="layer_names"):
        _save(masks, exr="zip", layer_names="7=ghost")


def test_save_masks_cancel_leaves_no_half_written_exr_or_prores(comfy, mattes):
    masks = _mask_set(mattes)
    comfy.interrupt_after = comfy.checks + 4  # two checks a frame: cancelled before frame 2
    try:
        with pytest.raises(Interrupted):
            _save(masks, filename_prefix="cut/m", video="mov (prores 4444, alpha)", exr="dwaa")
    finally:
        comfy.interrupt_after = None
    folder = os.path.join(comfy.dirs["output"], "cut")
    names = [os.path.join(d, n) for d, _, files in os.walk(folder) for n in files]
    assert sorted(os.path.basename(n) for n in names) == ["m_00001.0100.exr", "m_00001.0101.exr"], \
        "finished frames stay; no .part, no unfinished video"


def test_missing_openexr_is_one_line_naming_the_fix(monkeypatch):
    import builtins
    real = builtins.__import__

    def no_openexr(name, *args, **kwargs):
        if name == "OpenEXR":
            raise ImportError("No module named 'OpenEXR'")
        return real(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_openexr)
    with pytest.raises(ImportError) as caught:
        core.media_io.exr_writer.openexr()
    assert "pip install OpenEXR" in str(caught.value) and "\n" not in str(caught.value)


def test_clean_foreground_removes_the_old_background_at_soft_edges():
    """A composite of a known foreground over a known background: the recovered foreground at
    the soft edge is far closer to the truth than the frame itself (the naive foreground)."""
    h, w = 48, 64
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    fg = torch.stack([0.8 + 0.1 * torch.sin(xx / 10), 0.3 + 0.1 * torch.cos(yy / 8), 0.2 + 0 * xx], -1)
    bg = torch.stack([0.1 + 0 * xx, 0.8 + 0.1 * torch.sin(yy / 5 + xx / 15), 0.2 + 0.1 * torch.cos(xx / 5)], -1)
    alpha = _soft_disc(24, 32, 15, ramp=6.0, h=h, w=w)
    image = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    estimate = core.ops.foreground.estimate_foreground(image[None], alpha[None])[0]
    edge = (alpha > 0.05) & (alpha < 0.95)
    naive_error = (image - fg).abs()[edge].mean()
    error = (estimate - fg).abs()[edge].mean()
    assert error < naive_error / 8, (float(error), float(naive_error))
    inside = alpha > 0.999
    assert (estimate - image).abs()[inside].max() < 0.02, "opaque pixels keep the frame's colour"
    rgba = core.ops.foreground.foreground_rgba(estimate[None], alpha[None], "premultiplied")
    assert torch.allclose(rgba[0, ..., :3], estimate * alpha[..., None]) and torch.equal(rgba[0, ..., 3], alpha)


def test_cli_writes_exr_and_prores_in_frame_order(synthetic_weights_file, tmp_path, capsys):
    """A keyframe on frame 10 carried backwards: frames 10 down to 0 become final in that order,
    yet the ProRes holds every frame in order, at the source's rate, with the same alpha as the
    EXRs."""
    import av
    import shutil
    media = os.path.join(os.path.dirname(__file__), "..", "examples_workflows", "media")
    masks = tmp_path / "masks"
    masks.mkdir()
    shutil.copy(os.path.join(media, "cli_masks", "00010.png"), masks / "00010.png")
    out = tmp_path / "sh010"
    from memvos_core.command.cli import main
    rc = main(["--frames", os.path.join(media, "memvos_example_clip.mp4"), "--masks", str(masks),
               "--out", str(out), "--weights", str(synthetic_weights_file), "--size", "32", "--quiet",
               "--direction", "backward", "--format", "png", "exr", "prores", "--exr-compression", "zip",
               "--foreground", "straight"])
    said = capsys.readouterr().out
    assert rc == 0 and "EXR frames in" in said and "sh010.mov" in said
    exrs = sorted(os.listdir(out / "exr"))
    assert exrs == [f"sh010.{t:04d}.exr" for t in range(16)]
    with av.open(os.path.join(media, "memvos_example_clip.mp4")) as container:
        source_rate = float(container.streams.video[0].average_rate)
    formats, rate, tags, alphas, _ = _prores_alpha(str(out / "sh010.mov"))
    assert formats == {"yuva444p12le"} and rate == source_rate and len(alphas) == 16
    assert tags == (1, 1), "BT.709 where the source leaves its tags unspecified"
    for t in (0, 5, 10, 15):
        back = core.media_io.exr_writer.read_exr(out / "exr" / exrs[t])
        assert sorted(back) == ["A", "B", "G", "R", "obj1.A", "obj2.A"]
        assert np.abs(alphas[t] - back["A"]).max() <= 1 / 1023 + 2 ** -11 + 1 / 65535, f"frame {t} in order"
    assert alphas[0].max() > 0.5 and not (out / ".memvos-cache").exists(), "the waiting mattes are gone"


class _Result:
    """What MaskWriter reads of a propagation result."""

    def __init__(self, mattes):
        self.mattes, self.object_ids = mattes, [1, 2]

    def probabilities(self, index):
        objects = self.mattes[index] * 0.5
        return torch.cat([1 - objects.sum(0, keepdim=True), objects])


def test_mask_writer_encodes_prores_in_order_from_mattes_that_came_backwards(tmp_path, mattes, frames):
    from memvos_core.command.streaming import MaskWriter
    (tmp_path / "out").mkdir()
    writer = MaskWriter(tmp_path / "out", [f"{t:05d}" for t in range(T)],
                        prores_cache=tmp_path / "cache", frames=(frames * 255).to(torch.uint8),
                        foreground="premultiplied")
    result = _Result(mattes)
    for index in (2, 1, 0, 3):  # frames before the keyframe become final backwards
        writer(index, result)
    path = writer.encode_prores(str(tmp_path / "out" / "v.mov"), range(T), 25.0)
    formats, rate, _, alphas, rgbs = _prores_alpha(path)
    union = (mattes * 0.5).amax(1).numpy()
    assert rate == 25.0 and np.abs(alphas - union).max() <= 1 / 1023 + 1 / 65535, "in frame order"
    assert np.abs(rgbs - frames.numpy() * union[..., None]).mean() < 0.02, "premultiplied colour"


def test_replace_background_with_clean_edges_has_no_fringe():
    """The composite over a new background against the truth: far closer with clean edges."""
    h, w = 40, 56
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    fg = torch.stack([0.9 + 0 * xx, 0.5 + 0.2 * torch.sin(yy / 6), 0.1 + 0 * xx], -1)
    green = torch.tensor([0.1, 0.9, 0.2]).expand(h, w, 3)
    alpha = _soft_disc(20, 28, 12, ramp=6.0, h=h, w=w)
    frame = alpha[..., None] * fg + (1 - alpha[..., None]) * green
    truth = alpha[..., None] * fg + (1 - alpha[..., None]) * torch.tensor([0.0, 0.0, 1.0])
    ops = core.ops.composite
    naive = ops.replace_background(frame[None], alpha[None], "#0000ff")[0]
    clean = ops.replace_background(frame[None], alpha[None], "#0000ff", clean_edges=True)[0]
    edge = (alpha > 0.05) & (alpha < 0.95)
    assert (clean - truth).abs()[edge].mean() < (naive - truth).abs()[edge].mean() / 5
    rgba = ops.matte(frame[None], alpha[None], clean_edges=True)[0]
    assert torch.equal(rgba[..., 3], alpha) and (rgba[..., :3] - fg).abs()[edge].mean() < 0.05
