"""The engine with Cutie against the official Cutie inference (fixture runs A-E, fp32, CPU).

Each run is stepped once; per frame the probabilities (max |dprob| <= 1e-3, argmax equal where
the reference's top-2 margin exceeds 2e-3) and the memory sizes of every bucket afterwards are
checked against the reference's, so consolidation, pruning, FIFO, buckets and permanent memory
are pinned too. Debug tensors localise a failure (frames 0 and 1 of run A).
"""
import pytest
import torch
from safetensors.torch import load_file

import cutie_fixture as cf
from memvos_core.runtime.frames import aggregate, pad_normalized

DEBUG_TOL = 1e-3  # relative to the largest reference magnitude (fixture README, "Noise")


# Run B: long-term memory after the first three consolidations (frames 4, 6, 8) holds the
# reference's prototype keys, in its order (decreasing usage).
CONSOLIDATIONS_SEEN = {4: 1, 6: 2, 8: 3}


@pytest.mark.parametrize("run", list(cf.RUNS))
def test_probabilities_and_memory_match_reference(run):
    refs = cf.reference_probs(run)
    schedule = cf.schedule(run)
    debug = load_file(str(cf.ROOT / "debug.safetensors"))
    worst, frames = 0.0, 0
    for step, t, prob, engine in cf.run_engine(run):
        expected = schedule[step]
        assert expected["frame"] == (t if t is not None else cf.annotated_frames(run)[step])
        assert cf.bucket_sizes(engine) == expected["buckets"], f"run {run} step {step}: memory sizes"
        if run == "B" and t in CONSOLIDATIONS_SEEN:
            ours = engine.memory.long_term.key(0)
            ref = torch.cat([debug[f"B/consolidation{i}/prototype_key"] for i in range(CONSOLIDATIONS_SEEN[t])], -1)
            assert ours.shape == ref.shape and (ours - ref).abs().max() <= 1e-4 * ref.abs().max(), f"frame {t}"
        if t is None:
            continue
        diff, flips = cf.compare(prob, refs[t])
        worst, frames = max(worst, diff), frames + 1
        assert diff <= 1e-3, f"run {run} frame {t}: max |dprob| {diff:.2e}"
        assert flips == 0, f"run {run} frame {t}: {flips} decisive argmax flips"
    assert frames == cf.NUM_FRAMES
    print(f"run {run}: max |dprob| {worst:.2e} over {frames} frames, no decisive argmax flip")


def test_intermediate_tensors_of_run_a_match(monkeypatch):
    """Frames 0 and 1 of run A: encoder features, keys, the memory value, sensory memory and
    object summaries of the annotation, then the read, fusion, transformer and decoder of frame 1."""
    debug = load_file(str(cf.ROOT / "debug.safetensors"))
    net = cf.network("base")
    seen = {}

    def capture(name, fn):
        def wrapped(*args, **kwargs):
            out = fn(*args, **kwargs)
            seen.setdefault(name, (args, out))
            return out
        monkeypatch.setattr(net, name, wrapped)

    for name in ("encode_key", "encode_mask", "read_objects", "decode"):
        capture(name, getattr(net, name))
    fused_seen = []
    fuse = net.pixel_fuser.forward
    monkeypatch.setattr(net.pixel_fuser, "forward", lambda *args: fused_seen.append(fuse(*args)) or fused_seen[-1])
    for step, t, _, _ in cf.run_engine("A"):
        if t == 0:
            frame0 = dict(seen)
            seen.clear()
        if t == 1:
            break

    def check(name, ours, channels=None):
        ref = debug[f"A/{name}"]
        ours = ours if channels is None else ours[..., :channels, :, :]
        assert ours.shape == ref.shape, name
        assert (ours - ref).abs().max() <= DEBUG_TOL * ref.abs().max(), name

    _, feats0 = frame0["encode_key"]
    f16, f8, f4, pix0 = feats0.features
    check("t00/f16_first16ch", f16, 16)
    check("t00/f8_first16ch", f8, 16)
    check("t00/f4_first16ch", f4, 16)
    check("t00/pix_feat_first16ch", pix0, 16)
    for name in ("key", "shrinkage", "selection"):
        check(f"t00/{name}", getattr(feats0, name))
    _, (value, sensory, summaries) = frame0["encode_mask"]
    check("t00/mask_value_first64ch", value, 64)
    check("t00/sensory_after_mask_encoder_first64ch", sensory, 64)
    check("t00/object_summaries", summaries)

    _, feats1 = seen["encode_key"]
    check("t01/pix_feat_first16ch", feats1.features[3], 16)
    for name in ("key", "shrinkage", "selection"):
        check(f"t01/{name}", getattr(feats1, name))
    (_, visual, sensory_in, _, object_memory), readout = seen["read_objects"]
    check("t01/visual_readout_first64ch", visual, 64)
    check("t01/sensory_before_decoder_first64ch", sensory_in, 64)
    check("t01/object_memory", object_memory.unsqueeze(2))
    check("t01/pixel_readout_first64ch", fused_seen[0], 64)
    check("t01/transformer_out_first64ch", readout, 64)
    _, (new_sensory, logits) = seen["decode"]
    check("t01/decoder_logits_quarter", logits)
    check("t01/sensory_after_decoder_first64ch", new_sensory, 64)


def test_small_model_features_match():
    debug = load_file(str(cf.ROOT / "debug.safetensors"))
    image, _ = pad_normalized(cf.frame_tensor(0), rgb_zero=True)
    with torch.no_grad():
        feats = cf.network("small").encode_key(image.unsqueeze(0))
    for name, ours in (("key", feats.key), ("selection", feats.selection), ("shrinkage", feats.shrinkage),
                       ("pix_feat_first16ch", feats.features[3][:, :16])):
        ref = debug[f"D/t00/{name}"]
        assert (ours - ref).abs().max() <= DEBUG_TOL * ref.abs().max(), name


def test_annotation_output_is_the_aggregated_mask():
    """A frame that is not segmented returns the soft aggregation of its mask (off 1.19e-14)."""
    _, t, prob, _ = next(cf.run_engine("A"))
    labels = torch.from_numpy(cf.annotation_labels("A", 0))
    expected = aggregate(torch.stack([(labels == o).float() for o in (1, 2)]), dim=0)
    assert t == 0 and torch.equal(prob, expected)
