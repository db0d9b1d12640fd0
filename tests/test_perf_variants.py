"""Speed options of the engine (memvos_core.runtime.perf): same masks as the plain engine, and
preallocated memory buffers that never leak into exported state."""
import pytest
import torch

from memvos_core.config import MemoryConfig
from memvos_core.runtime.engine import InferenceEngine
from memvos_core.runtime.frames import normalize
from memvos_core.memory.column import Column
from memvos_core.runtime import perf
from memvos_core.families.xmem.fused import ImageOnceFusion, fused_network, pointwise_convolutions_work
from memvos_core.runtime.perf import CompiledCalls, EngineOptions, FramesAhead, engine_options, prepare_network
from session_helpers import moving_discs

PLAIN = EngineOptions.plain()
VARIANTS = {
    "sparse": PLAIN.replace(sparse_readout=True),
    "prealloc": PLAIN.replace(preallocate=True),
    "channels_last": PLAIN.replace(channels_last=True),
    "fuse": PLAIN.replace(fuse=True),
    "key_batch": PLAIN.replace(key_batch=3),
    "cpu_default": EngineOptions.default_for("cpu"),
    "cuda_default": EngineOptions.default_for("cuda"),  # its options, run here on the CPU
    "everything": EngineOptions(sparse_readout=True, preallocate=True, channels_last=True, fuse=True, key_batch=3),
}
NUM_FRAMES = 14


def tiny_config(mode):
    """Consolidation from the 4th memory frame and long-term pruning within a few frames."""
    return MemoryConfig(memory_mode=mode, mem_every=1, top_k=8, min_mid_term_frames=2,
                        max_mid_term_frames=4, num_prototypes=6, max_long_term_elements=40)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny frames: one thread is as fast, and immune to a busy machine's thread contention.
    Variants are compared with the plain engine under the same setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def clip():
    frames, labels = moving_discs(num_frames=NUM_FRAMES, height=48, width=64, num_objects=2)
    images = [normalize(f.permute(2, 0, 1)) for f in frames]
    masks = [torch.stack([(lab == o).float() for o in (1, 2)]) for lab in labels]
    return images, masks


@pytest.fixture(scope="module")
def net_for(synthetic_weights):
    """A network per layout: channels_last converts the network it is given in place."""
    from memvos_core.network import load_network
    nets = {}

    def get(options):
        key = options.channels_last
        if key not in nets:
            nets[key] = load_network(synthetic_weights)
        return nets[key]
    return get


def run(net, mode, options, clip, start=0, stop=NUM_FRAMES, engine=None):
    """Object 1 annotated at frame 0, object 2 joins at frame 3 (a second group, partial
    annotation); XMem++ mode puts frame 0 in permanent memory. Returns (probs, engine)."""
    images, masks = clip
    if engine is None:
        engine = InferenceEngine(net, tiny_config(mode), options=options)
    probs = []
    ahead = FramesAhead(engine, images.__getitem__, range(start, stop))
    with torch.no_grad():
        for t in range(start, stop):
            _, feats = ahead.take(t)
            if t == 0:
                engine.set_num_objects(1)
                if mode == "xmem++":
                    engine.add_permanent(images[0], masks[0][:1])
                prob = engine.step(images[0], masks[0][:1], [1], write_memory=mode == "xmem", feats=feats)
            elif t == 3:
                engine.set_num_objects(2)
                prob = engine.step(images[3], masks[3], [2], feats=feats)
            else:
                prob = engine.step(images[t], feats=feats)
            probs.append(prob)
    return probs, engine


@pytest.fixture(scope="module")
def plain_runs(net_for, clip):
    return {mode: run(net_for(PLAIN), mode, PLAIN, clip) for mode in ("xmem", "xmem++")}


@pytest.mark.parametrize("mode", ["xmem", "xmem++"])
@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_agrees_with_plain_engine(net_for, clip, plain_runs, name, mode):
    options = VARIANTS[name]
    probs, engine = run(net_for(options), mode, options, clip)
    ref_probs, ref_engine = plain_runs[mode]
    assert engine.memory.sizes() == ref_engine.memory.sizes()
    assert ref_engine.memory.long_term.size > 0  # consolidation happened
    for t, (p, q) in enumerate(zip(probs, ref_probs)):
        assert p.shape == q.shape
        assert (p - q).abs().max() < 1e-3, f"{name} frame {t}: max |dprob| {(p - q).abs().max():.2e}"
        # Masks agree wherever the plain engine's decision is not a near-tie.
        top2 = q.topk(2, dim=0).values
        flips = (p.argmax(0) != q.argmax(0)) & (top2[0] - top2[1] > 2e-3)
        assert not flips.any(), f"{name} frame {t}: {int(flips.sum())} mask pixels differ"


def test_pruning_happens_in_the_tiny_config(net_for, clip):
    """The buffers' in-place prune path is exercised: long-term memory reaches its limit."""
    options = VARIANTS["prealloc"]
    engine = InferenceEngine(net_for(options), tiny_config("xmem"), options=options)
    peak = 0
    for t in range(NUM_FRAMES):
        run(None, "xmem", options, clip, t, t + 1, engine)
        peak = max(peak, engine.memory.long_term.size)
    cfg = engine.config
    assert peak > cfg.max_long_term_elements - cfg.num_prototypes
    assert engine.memory.long_term.size <= cfg.max_long_term_elements


@pytest.mark.parametrize("mode", ["xmem", "xmem++"])
def test_exported_state_never_changes_when_buffers_are_written(net_for, clip, mode):
    options = VARIANTS["prealloc"]
    net = net_for(options)
    _, engine = run(net, mode, options, clip, 0, 6)
    tensors, meta = engine.state()
    frozen = {k: v.clone() for k, v in tensors.items()}
    key = engine.memory.working.column("key")
    assert key.reserve > 0 and key.storage.shape[-1] > key.size  # really a buffer
    live = [c.storage for s in (engine.memory.working, engine.memory.permanent, engine.memory.long_term)
            for c in list(s._columns.values()) + s._values if c.storage is not None]
    for k, v in tensors.items():
        assert not any(v.untyped_storage().data_ptr() == b.untyped_storage().data_ptr() for b in live), k
    # A second engine loaded from the same state writes into its own buffers.
    resumed = InferenceEngine.from_state(net, engine.config, tensors, meta, options=options)
    run(net, mode, options, clip, 6, NUM_FRAMES, engine)      # usage updates, consolidation, prune
    run(net, mode, options, clip, 6, NUM_FRAMES, resumed)
    assert resumed.memory.long_term.column("key").reserve == engine.config.max_long_term_elements
    for k, v in tensors.items():
        assert torch.equal(v, frozen[k]), f"exported {k} changed after later writes"


@pytest.mark.parametrize("saved_by,loaded_by", [("prealloc", "prealloc"), ("prealloc", "plain"),
                                                ("plain", "prealloc")])
def test_state_round_trip_continues_exactly(net_for, clip, plain_runs, saved_by, loaded_by):
    save_opts = VARIANTS.get(saved_by, PLAIN)
    load_opts = VARIANTS.get(loaded_by, PLAIN)
    net = net_for(PLAIN)
    _, engine = run(net, "xmem", save_opts, clip, 0, 7)
    tensors, meta = engine.state()
    resumed = InferenceEngine.from_state(net, engine.config, tensors, meta, options=load_opts)
    probs, _ = run(net, "xmem", load_opts, clip, 7, NUM_FRAMES, resumed)
    whole, _ = plain_runs["xmem"]
    for t, p in enumerate(probs, start=7):
        assert (p - whole[t]).abs().max() < 1e-5, t


def test_column_buffer_grows_and_copies_on_export():
    col = Column(reserve=4)
    col.append(torch.arange(3.0).view(1, 1, 3))
    exported = col.export()
    col.append(torch.arange(3.0, 6.0).view(1, 1, 3))   # past the reserve: storage doubles
    assert col.storage.shape[-1] >= 6 and col.data.flatten().tolist() == [0, 1, 2, 3, 4, 5]
    col.add_(10)
    col.set(col.data[..., 2:])                          # a view of its own storage
    assert col.data.flatten().tolist() == [12, 13, 14, 15]
    assert exported.flatten().tolist() == [0, 1, 2]
    plain = Column()
    plain.append(torch.ones(1, 1, 2))
    shared = plain.export()
    plain.add_(1)
    assert shared.flatten().tolist() == [1, 1] and plain.data.flatten().tolist() == [2, 2]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's own imports behind torch.compile
def test_options_are_checked_and_compile_wraps_the_network(net_for):
    with pytest.raises(ValueError, match="key_batch"):
        EngineOptions(key_batch=0)
    with pytest.raises(ValueError, match="compile"):
        EngineOptions(compile="fast")
    net = net_for(PLAIN)
    calls = prepare_network(net, PLAIN.replace(compile="default"))  # compiles lazily, on first call
    assert isinstance(calls, CompiledCalls) and calls.stride == net.stride
    assert prepare_network(net, PLAIN.replace(compile="default")) is calls


class RecordingEngine:
    def __init__(self, key_batch):
        self.options = EngineOptions(key_batch=key_batch)
        self.batches = []

    def encode_keys(self, images):
        self.batches.append(list(images))
        return [f"feats{i}" for i in images]


def test_frames_ahead_encodes_each_stepped_frame_once_in_batches():
    prepared = []

    def prepare(i):
        prepared.append(i)
        return i
    engine = RecordingEngine(key_batch=3)
    ahead = FramesAhead(engine, prepare, [5, 6, 7, 8, 9, 10, 11])
    assert ahead.take(5) == (5, "feats5")
    assert [ahead.take(i) for i in (6, 7)] == [(6, "feats6"), (7, "feats7")]
    assert ahead.take(9) == (9, "feats9")        # the loop skipped frame 8: never encoded
    assert ahead.take(11) == (11, "feats11")
    assert engine.batches == [[5, 6, 7], [9, 10, 11]]
    assert prepared == [5, 6, 7, 9, 10, 11]


def test_frames_ahead_without_batching_or_encode_keys_prepares_one_frame():
    assert FramesAhead(RecordingEngine(key_batch=1), lambda i: i * 10, [0, 1]).take(1) == (10, None)

    class TTALike:  # no options, no encode_keys
        pass
    assert FramesAhead(TTALike(), lambda i: i, [0, 1, 2]).take(0) == (0, None)


def test_sparse_readout_falls_back_to_dense_where_the_device_has_no_kernel(net_for, clip, plain_runs, monkeypatch):
    assert perf.sparse_readout_supported(torch.device("cpu"))
    monkeypatch.setattr(perf, "_torch_version", lambda: (2, 9))
    assert not perf.sparse_readout_supported(torch.device("mps"))
    monkeypatch.setattr(perf, "_torch_version", lambda: (2, 10))
    assert perf.sparse_readout_supported(torch.device("mps"))
    # An engine on a device without the kernel reads memory densely, with the same results.
    monkeypatch.setattr(perf, "sparse_readout_supported", lambda device: False)
    options = VARIANTS["sparse"]
    probs, engine = run(net_for(options), "xmem", options, clip)
    assert engine.options == PLAIN and not engine.memory.sparse_readout
    for p, q in zip(probs, plain_runs["xmem"][0]):
        assert torch.equal(p, q)


def test_engine_options_override_applies_to_engines_made_inside(net_for):
    net = net_for(PLAIN)
    chosen = PLAIN.replace(preallocate=True)
    with engine_options(chosen):
        assert InferenceEngine(net, tiny_config("xmem")).options == chosen
        assert InferenceEngine(net, tiny_config("xmem"), options=PLAIN).options == PLAIN
    assert InferenceEngine(net, tiny_config("xmem")).options == EngineOptions.default_for("cpu")


def test_fused_network_shares_weights_and_leaves_the_original_alone(synthetic_weights):
    from memvos_core.network import load_network
    net = load_network(synthetic_weights)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fused = fused_network(net)
    assert pointwise_convolutions_work()  # the CI's x86 torch has oneDNN: the CPU rewrites are tested
    decoder = fused.decoder.decoder
    assert isinstance(decoder.fuser, ImageOnceFusion) and isinstance(fused.value_encoder.fuser, ImageOnceFusion)
    assert type(fused.key_encoder.res2[0]).__name__ == "FusedBottleneck"
    assert type(fused.value_encoder.layer1[0]).__name__ == "FusedBasicBlock"
    assert isinstance(fused.key_encoder.bn1, torch.nn.Identity)
    assert isinstance(net.key_encoder.bn1, torch.nn.BatchNorm2d)
    assert decoder.up_8_4.skip_conv.weight is net.decoder.up_8_4.skip_conv.weight
    originals = {id(p) for p in net.parameters()}
    new = sum(p.numel() for p in fused.parameters() if id(p) not in originals)
    # New: the convolutions that took a BatchNorm in, and a channels-last copy of key_proj.
    folded = sum(m.weight.numel() + m.out_channels for m in fused.modules()
                 if isinstance(m, torch.nn.Conv2d) and id(m.weight) not in originals)
    assert new == folded and 11e6 < new < 13e6
    image = torch.randn(1, 3, 64, 96)
    masks = torch.rand(1, 2, 64, 96)
    hidden = torch.randn(1, 2, 64, 4, 6)
    with torch.no_grad():  # two objects: the split fusion path
        ref_feats, feats = net.encode_key(image), fused.encode_key(image)
        for a, b in zip(ref_feats.features + (ref_feats.key,), feats.features + (feats.key,)):
            assert (a - b).abs().max() <= 1e-5 * a.abs().max()
        ref_value, ref_hidden = net.encode_value(image, ref_feats.features, hidden, masks, True)
        value, new_hidden = fused.encode_value(image, ref_feats.features, hidden, masks, True)
        assert (value - ref_value).abs().max() <= 1e-5 * ref_value.abs().max()
        assert (new_hidden - ref_hidden).abs().max() <= 1e-4
        ref_out = net.decode(ref_feats.features, ref_value, hidden, True)
        for out in (fused.decode(ref_feats.features, ref_value, hidden, True),
                    fused.decode(feats.features, ref_value, hidden, True)):   # channels-last features
            assert (out[1] - ref_out[1]).abs().max() <= 1e-4 and (out[0] - ref_out[0]).abs().max() <= 1e-4
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_channels_last_maps_fold_back_with_a_fresh_batch_stride():
    """A stray stride on the size-1 batch axis sent NHWC resizes down a ~10x slower path."""
    from memvos_core.network.blocks import fold_objects, unfold_objects
    x = torch.randn(1, 8, 6, 10).contiguous(memory_format=torch.channels_last)
    g = unfold_objects(x, 1, 1)
    flat = fold_objects(g)
    assert torch.equal(flat, x) and flat.stride() == x.stride()
    two = fold_objects(torch.randn(1, 2, 8, 6, 10))
    assert two.shape == (2, 8, 6, 10) and two.is_contiguous()


def test_a_network_moved_elsewhere_gets_a_new_fused_copy_and_the_old_one_goes(synthetic_weights):
    from memvos_core.network import load_network
    net = load_network(synthetic_weights)
    fuse = PLAIN.replace(fuse=True)
    first = prepare_network(net, fuse)
    assert prepare_network(net, fuse) is first
    # Converting the network to channels-last stands in for a move to another device: its
    # placement changes, and the copy made for the old one is replaced, not kept beside it.
    second = prepare_network(net, fuse.replace(channels_last=True))
    assert second is not first and net.decoder.pred.weight.is_contiguous(memory_format=torch.channels_last)
    assert len(perf._PREPARED[net]) == 1
