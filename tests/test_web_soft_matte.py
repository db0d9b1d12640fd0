"""A soft matte in the player (headless Chromium, stub frontend, as tests/test_web_player.py): a
synthetic shot of a disc with a gradient edge, annotated on frame 0, carried through a short
matting run (MatAnyone, generated weights), shown as Refine's player shows a matte (the frames
over a checkerboard through the alpha). The alpha read back from the player's canvas is soft.
The screenshot (tests/_artifacts/player_soft_matte.png) is the README's docs/player_soft_matte.png."""
import numpy as np
import pytest
import torch
from PIL import Image

from memvos_core.families.matanyone import model as matanyone_model
from memvos_core.families.matanyone.synthetic import synthetic_matanyone_state_dict
from memvos_core.ops.matte_edges import matte_preview
from memvos_core.runtime.model import load_model
from memvos_core.session import Session
from memvos_core.session.blend import QUANT
from session_helpers import small_config
from test_web_player import Stub, preview
from web_stub_server import StubServer

NUM_FRAMES, HEIGHT, WIDTH, EDGE_PX = 3, 96, 160, 10


def soft_disc_shot():
    """Frames (float ``[T,H,W,3]``) of an orange disc whose edge fades over ``EDGE_PX`` pixels into
    a gradient background, moving right, and its true alpha ``[T,H,W]``."""
    ys, xs = torch.meshgrid(torch.arange(HEIGHT).float(), torch.arange(WIDTH).float(), indexing="ij")
    background = torch.stack([0.2 + 0.3 * xs / WIDTH, 0.35 + 0.2 * ys / HEIGHT, 0.5 + 0.0 * xs], -1)
    orange = torch.tensor([0.95, 0.55, 0.1])
    frames, alphas = [], []
    for t in range(NUM_FRAMES):
        distance = ((xs - 60 - 4 * t) ** 2 + (ys - 48) ** 2).sqrt()
        alpha = ((30 - distance) / EDGE_PX + 0.5).clamp(0, 1)
        frames.append(background * (1 - alpha[..., None]) + orange * alpha[..., None])
        alphas.append(alpha)
    return torch.stack(frames), torch.stack(alphas)


@pytest.fixture(scope="module")
def matted():
    frames, truth = soft_disc_shot()
    model = load_model(synthetic_matanyone_state_dict(), name="matanyone-synthetic.pth")
    session = Session(model, small_config("xmem++", buffer_tokens=20), internal_size=-1)
    session = session.add_label_map(0, frames[0], (truth[0] > 0.5).to(torch.uint8))
    with pytest.MonkeyPatch.context() as mp:
        # Two warm-up predictions instead of 11 (as test_matanyone_session.py): faster, and the
        # generated weights drift less far from the keyframe's disc.
        mp.setattr(matanyone_model, "WARMUP_STEPS", 2)
        _, result = session.propagate(frames)
    alpha = torch.stack([result.internal(t)[0].float() / QUANT for t in range(NUM_FRAMES)])
    return frames, alpha


@pytest.fixture(scope="module")
def served(tmp_path_factory, matted):
    frames, alpha = matted
    temp_dir = tmp_path_factory.mktemp("comfy_temp")
    shown = matte_preview(frames, alpha)
    # No label overlay: the picture is the matte itself, as Refine's player shows it.
    entry = preview.write_preview(temp_dir, shown, torch.zeros(NUM_FRAMES, HEIGHT, WIDTH, dtype=torch.int64),
                                  fps=6, object_ids=[1], keyframes=[0], max_side=WIDTH, jpeg_quality=95)
    with StubServer(dirs={"temp": temp_dir}) as server:
        yield {"url": server.url, "entry": entry}


def test_a_soft_matte_carried_from_a_keyframe_shows_soft_in_the_player(browser, served, matted, artifacts_dir):
    frames, alpha = matted
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    try:
        stub = Stub(page, served)
        stub.deliver("propagate", {"memvos_preview": [served["entry"]]})
        assert stub.js("stub.propagate.memvosPlayer.drawnFrame") == 0
        canvas = stub.canvas_rgb().astype(np.float64) / 255
        assert canvas.shape == (HEIGHT, WIDTH, 3)
        # The canvas is frame * a + checkerboard * (1 - a): solve for a where the two differ.
        full = matte_preview(frames[:1], torch.ones(1, HEIGHT, WIDTH))[0].numpy() / 255
        none = matte_preview(frames[:1], torch.zeros(1, HEIGHT, WIDTH))[0].numpy() / 255
        span = full - none
        weight = (span ** 2).sum(-1)
        clear = weight > 0.09
        seen = ((canvas - none) * span).sum(-1) / np.where(clear, weight, 1)
        want = alpha[0].numpy()
        assert np.abs(seen - want)[clear].mean() < 0.03, "the player shows the matting run's alpha"
        soft = clear & (seen > 0.1) & (seen < 0.9)
        assert soft.sum() > 50, "values strictly between 0 and 1: a soft matte, not a mask"
        node = stub.page.locator(f'.stub-node[data-node-id="{stub.js("stub.propagate.id")}"]')
        shot = artifacts_dir / "player_soft_matte.png"  # git-ignored; copied to docs/ by hand
        node.screenshot(path=str(shot))
        with Image.open(shot) as image:
            assert image.width >= 400
        assert stub.console_errors == []
    finally:
        page.close()
