"""The SAM 2.1 image path (click tool) against the official image predictor (run E)."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from memvos_core.families.sam2.checkpoint import build_sam2
from memvos_core.families.sam2.image import embed_frame, predict
from sam2_fixture import CLIP, FIXTURE, compare_with_reference, generated_state

RUN = os.path.join(FIXTURE, "run_E")


@pytest.fixture(scope="module")
def embedded():
    net = build_sam2(generated_state(), "generated", 1024)
    rgb = np.array(Image.open(os.path.join(CLIP, "frames", "00000.png")).convert("RGB"))
    return net, embed_frame(net, rgb)


def test_run_E_matches_the_official_image_predictor(embedded):
    net, emb = embedded
    calls = [c["args"] for c in json.load(open(os.path.join(RUN, "config.json")))["calls"] if c["call"] == "predict"]
    cand = {"image_embed_first16ch": emb.feat[:, :16]}
    for i, a in enumerate(calls):
        masks, ious, low = predict(net, emb, a.get("point_coords"), a.get("point_labels"), a.get("box"),
                                   multimask=a["multimask_output"])
        assert masks.shape == ((3 if a["multimask_output"] else 1), 109, 187)
        cand[f"predict{i}/masks_logits"] = masks
        cand[f"predict{i}/iou_predictions"] = ious
        cand[f"predict{i}/low_res_logits"] = low
    ok, worst, first = compare_with_reference(RUN, cand)
    assert ok, (worst, first)
    assert worst["dprob"] < 2e-4  # float16 storage of the reference accounts for ~1e-4


def test_the_embedding_is_reused_and_a_previous_mask_refines(embedded):
    net, emb = embedded
    a1 = predict(net, emb, [[40, 46]], [1])
    a2 = predict(net, emb, [[40, 46]], [1])
    assert torch.equal(a1[0], a2[0])
    best = int(torch.argmax(a1[1]))
    refined = predict(net, emb, [[40, 46], [4, 46]], [1, 0], mask_logits=a1[2][best], multimask=False)
    assert refined[0].shape == (1, 109, 187) and not torch.equal(refined[0][0], a1[0][best])


def test_bad_prompts_get_one_clear_error(embedded):
    net, emb = embedded
    with pytest.raises(ValueError, match="needs a prompt"):
        predict(net, emb)
    with pytest.raises(ValueError, match="one label"):
        predict(net, emb, [[1, 2], [3, 4]], [1])
    with pytest.raises(ValueError, match="1 \\(positive\\) or 0"):
        predict(net, emb, [[1, 2]], [5])
