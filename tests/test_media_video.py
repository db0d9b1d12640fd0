"""Reading video files: each frame decoded about once in either direction, containers closed,
undecodable files refused in one line."""
import av
import numpy as np
import pytest
import torch

from memvos_core.media_io import media
from memvos_core.media_io.media import MediaError, VideoFrames

EXAMPLE = media.Path(__file__).resolve().parents[1] / "examples_workflows" / "media" / "memvos_example_clip.mp4"


def make_video(path, num_frames, gop, height=48, width=64):
    """An H.264 clip with B-frames and a keyframe every ``gop`` frames; every frame different."""
    rng = np.random.default_rng(0)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "bf": "2", "crf": "18"}
        for t in range(num_frames):
            img = np.zeros((height, width, 3), np.uint8)
            img[..., 0] = (t * 7) % 256
            img[:, (t * 3) % width:(t * 3) % width + 8, 1] = 255
            img[..., 2] = rng.integers(0, 40, (height, width))
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def reference_frames(path):
    with av.open(str(path)) as container:
        return [torch.from_numpy(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]


def test_reading_the_example_backwards_decodes_each_frame_once():
    expected = reference_frames(EXAMPLE)
    with VideoFrames(EXAMPLE) as video:
        assert len(video) == len(expected) == 16
        backwards = [video[i] for i in range(15, -1, -1)]
        assert video.decoded <= 16      # was 136: a reopen and decode from 0 per frame
    for got, want in zip(backwards[::-1], expected):
        assert torch.equal(got, want)


@pytest.mark.parametrize("gop", [1, 8, 250])
def test_backward_and_random_reads_give_the_decoded_frames(tmp_path, gop):
    path = make_video(tmp_path / "clip.mp4", 48, gop)
    expected = reference_frames(path)
    frame_bytes = 48 * 64 * 3
    with VideoFrames(path, window_bytes=12 * frame_bytes) as video:
        assert video.window == 12
        backwards = [video[i] for i in range(47, -1, -1)][::-1]
        decoded_backwards = video.decoded
        for i in (30, 31, 5, 6, 47, 0):
            assert torch.equal(video[i], expected[i]), i
    assert all(torch.equal(a, b) for a, b in zip(backwards, expected))
    if gop <= 12:
        assert decoded_backwards == 48          # windows start at keyframes: once each
    else:
        # One keyframe: each window of 12 decodes from frame 0 (48 + 36 + 24 + 12).
        assert decoded_backwards == 120


def test_forward_reading_decodes_once_and_skips_ahead_by_seeking(tmp_path):
    path = make_video(tmp_path / "clip.mp4", 64, 8)
    expected = reference_frames(path)
    with VideoFrames(path) as video:
        for i in range(10):
            assert torch.equal(video[i], expected[i])
        assert video.decoded == 10 and video.seeks == 1
        assert torch.equal(video[50], expected[50])   # keyframe 48, two more frames
        assert video.decoded == 13 and video.seeks == 2
        assert torch.equal(video[51], expected[51]) and video.decoded == 14


def test_containers_are_closed(tmp_path):
    video = VideoFrames(EXAMPLE)
    video[3]
    video.close()
    assert video._container is None
    with pytest.raises(MediaError, match="closed"):
        video[4]
    with media.open_frames(EXAMPLE) as again:
        assert again[0].shape == (108, 186, 3)
    assert again._container is None


def test_stems_sort_like_the_frames(tmp_path):
    with VideoFrames(EXAMPLE) as video:
        assert video.stems[:2] == ["00000", "00001"] and video.fps == pytest.approx(8.0)


@pytest.mark.parametrize("content", [b"", b"\x00" * 4096, b"not a video at all" * 100])
def test_undecodable_video_is_one_clear_line(tmp_path, content):
    path = tmp_path / "shot.mp4"
    path.write_bytes(content)
    with pytest.raises(MediaError) as err:
        media.open_frames(path)
    message = str(err.value)
    assert "shot.mp4" in message and "\n" not in message and ("re-encode" in message or "no video" in message)


def test_the_reader_holds_one_frame_forwards_and_at_most_its_window_backwards(tmp_path):
    # Small frames: a window of 256 MiB is thousands of them, so only what the reader really
    # holds keeps it small (it used to keep every frame read in order, as decoded av frames).
    path = make_video(tmp_path / "small.mp4", 300, 250, height=64, width=96)
    expected = reference_frames(path)
    frame_bytes = 64 * 96 * 3
    with VideoFrames(path) as video:
        for i in range(300):
            assert torch.equal(video[i], expected[i]), i
            assert video.held_bytes <= frame_bytes, i        # the frame asked for, nothing more
        assert video.decoded == 300
    with VideoFrames(path, window_bytes=40 * frame_bytes) as video:
        most = 0
        for i in range(299, -1, -1):
            assert torch.equal(video[i], expected[i]), i
            assert video.held_bytes <= 40 * frame_bytes, i
            most = max(most, video.held_bytes)
        assert most > 20 * frame_bytes                        # windows were used
        for i in range(300):                                  # and forwards again: one frame
            video[i]
        assert video.held_bytes <= frame_bytes


def test_a_frame_handed_out_is_the_callers_to_change(tmp_path):
    path = make_video(tmp_path / "clip.mp4", 24, 8)
    expected = reference_frames(path)
    with VideoFrames(path) as video:
        for i in (23, 22, 21):          # a backward window holds these
            video[i].zero_()
            assert torch.equal(video[i], expected[i]), i
