"""An inference copy of an XMem network, rewritten for speed without changing what it computes
(results equal the original's to float rounding). The ``fuse`` engine option runs it.

Everywhere:

* each BatchNorm (in eval mode a per-channel affine map) is folded into the convolution
  before it;
* each fusion block convolves the image's features once per frame for all objects
  (:class:`ImageOnceFusion`).

On the CPU, with oneDNN (measured on an AVX-512 CPU, one thread, 854x480):

* the encoders' ResNet blocks run as oneDNN convolutions with their ReLU and residual add
  fused in, one pass over each feature map instead of three, in the channels-last layout
  (key encoder 620 -> 445 ms a frame);
* the decoder runs in the layout of its weights: NCHW unless the ``channels_last`` option
  converted the network (the CPU default: with it the whole clip ran 7 % faster on 2 threads,
  bench/bench_vs_official.py); its features are converted once at its entry when they differ.

The copy shares every parameter of the original except those it rewrites (the folded
convolutions, ~45 MB for XMem, and the split fusion weights, made on first use); the original
network is left as it is.
"""
import copy
import functools
import itertools

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...network.blocks import fold_objects

# XMem's ResNet pieces, in which every ``convN`` is followed directly by ``bnN``.
_CONV_THEN_BN = frozenset({"Bottleneck", "BasicBlock", "KeyEncoder", "ValueEncoder"})


def fused_network(network, device=None):
    """The rewritten copy of an XMem ``network`` (see the module's doc) for ``device`` (default:
    where its parameters are)."""
    device = torch.device(device) if device is not None else next(network.parameters()).device
    cpu_kernels = device.type == "cpu" and pointwise_convolutions_work()
    shared = {id(t): t for t in itertools.chain(network.parameters(), network.buffers())}
    fused = copy.deepcopy(network, shared)
    with torch.no_grad():
        for module in list(fused.modules()):
            for conv_name, bn_name in _conv_bn_pairs(module):
                _fold(module, conv_name, bn_name)
            for name, child in list(module.named_children()):
                if type(child).__name__ == "FeatureFusionBlock":
                    setattr(module, name, ImageOnceFusion(child))
        if cpu_kernels:
            _to_channels_last(fused.key_proj, shared=())   # small: 5 MB of copied weights
            for part in (fused.key_encoder, fused.value_encoder):
                _to_channels_last(part, shared)
                _fuse_activations(part)
            fused.decoder = DecoderInLayout(fused.decoder)
    return fused


# ------------------------------------------------------------------------ BatchNorm
def _conv_bn_pairs(module):
    kids = list(module.named_children())
    if isinstance(module, nn.Sequential):  # runs its children in order
        return [(a, b) for (a, ca), (b, cb) in zip(kids, kids[1:])
                if isinstance(ca, nn.Conv2d) and isinstance(cb, nn.BatchNorm2d)]
    if type(module).__name__ not in _CONV_THEN_BN:
        return []
    names = dict(kids)
    return [(name, "bn" + name[4:]) for name, child in kids
            if name.startswith("conv") and isinstance(child, nn.Conv2d)
            and isinstance(names.get("bn" + name[4:]), nn.BatchNorm2d)]


def _fold(module, conv_name, bn_name):
    conv, bn = getattr(module, conv_name), getattr(module, bn_name)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    setattr(module, conv_name, _with_weights(conv, conv.weight * scale.view(-1, 1, 1, 1), bias))
    setattr(module, bn_name, nn.Identity())


def _with_weights(conv, weight, bias):
    """A new convolution module like ``conv`` with its own weight and bias (``conv``, possibly
    the original network's, is not touched)."""
    new = copy.copy(conv)
    new._parameters = dict(conv._parameters)
    new.weight = nn.Parameter(weight, requires_grad=False)
    new.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)
    return new


def _to_channels_last(part, shared):
    """Channels-last weights for the convolutions of ``part`` that are not ``shared`` with the
    original (ids): in place for the copy's own (folded) ones, by copy otherwise."""
    for module in list(part.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Conv2d) and id(child.weight) not in shared:
                weight = child.weight.contiguous(memory_format=torch.channels_last)
                if weight is not child.weight:
                    setattr(module, name, _with_weights(child, weight, child.bias))


# ------------------------------------------------------------------ image features once
class ImageOnceFusion(nn.Module):
    """XMem's FeatureFusionBlock with its image-level input convolved once per frame.

    The block's first residual block applies two convolutions to ``[x ; g_o]`` for every
    object ``o`` (``x`` the image's features, repeated per object). A convolution of a
    concatenation is the sum of the convolutions of its parts, so the ``x`` part is computed
    once and added to every object's ``g`` part: with N objects, N-1 fewer convolutions over
    the (widest) image channels. With one channels-last object it still saves the copy of
    ``x`` into the object tensors' layout; with one NCHW object the block runs as it is."""

    def __init__(self, block):
        super().__init__()
        self.block = block
        self._split = {}  # (x channels, layout) -> (conv1 x part, conv1 g part, skip x part, skip g part)

    def _weights(self, cx, fmt):
        if (cx, fmt) not in self._split:
            b1 = self.block.block1
            self._split[cx, fmt] = tuple(w[:, part].contiguous(memory_format=fmt)
                                         for w in (b1.conv1.weight, b1.downsample.weight)
                                         for part in (slice(None, cx), slice(cx, None)))
        return self._split[cx, fmt]

    def forward(self, x, g):
        b1 = self.block.block1
        batch, objects = g.shape[:2]
        nhwc = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        if b1.downsample is None or (objects == 1 and not nhwc):
            return self.block(x, g)  # one NCHW object: the block's own concatenation is as fast
        w1x, w1g, wdx, wdg = self._weights(x.shape[1], torch.channels_last if nhwc else torch.contiguous_format)
        conv = dict(stride=b1.conv1.stride, padding=b1.conv1.padding, dilation=b1.conv1.dilation)
        skip = dict(stride=b1.downsample.stride, padding=b1.downsample.padding, dilation=b1.downsample.dilation)
        flat = fold_objects(g)

        def per_object(t):
            return t.view(batch, objects, *t.shape[1:])
        out = per_object(F.conv2d(F.relu(flat), w1g, None, **conv)) \
            + F.conv2d(F.relu(x), w1x, b1.conv1.bias, **conv).unsqueeze(1)
        res = per_object(F.conv2d(flat, wdg, None, **skip)) \
            + F.conv2d(x, wdx, b1.downsample.bias, **skip).unsqueeze(1)
        g = b1.conv2(F.relu(out)) + res
        r = per_object(self.block.attention(fold_objects(g)))
        return self.block.block2(g + r)


class DecoderInLayout(nn.Module):
    """The decoder, handed its image features in the layout of its own weights (the encoders
    may run channels-last while the decoder does not)."""

    def __init__(self, decoder):
        super().__init__()
        self.decoder = decoder
        weight = decoder.up_8_4.skip_conv.weight
        self.layout = (torch.channels_last if weight.is_contiguous(memory_format=torch.channels_last)
                       and not weight.is_contiguous() else torch.contiguous_format)

    def forward(self, f16, f8, f4, *rest):
        if self.layout is torch.contiguous_format:
            f16, f8, f4 = (to_nchw(f) for f in (f16, f8, f4))
        else:
            f16, f8, f4 = (f.contiguous(memory_format=self.layout) for f in (f16, f8, f4))
        return self.decoder(f16, f8, f4, *rest)


def to_nchw(x):
    """A channels-last map as a contiguous NCHW one, by way of a 2-D transpose per image
    (3x faster on the CPU than ``.contiguous()``: 19 vs 57 ms for 256x120x216)."""
    if x.dim() != 4 or x.is_contiguous():
        return x.contiguous()
    n, c, h, w = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(n, h * w, c)
    # 2-D transposes: torch has a fast kernel for those, not for the batched 3-D one.
    images = [image.t().contiguous() for image in rows]
    return (images[0] if n == 1 else torch.stack(images)).view(n, c, h, w)


# -------------------------------------------------------- oneDNN fused activations (CPU)
@functools.lru_cache(maxsize=None)
def pointwise_convolutions_work():
    """Whether this torch has oneDNN's fused convolution ops and they compute what conv2d does."""
    op = getattr(torch.ops.mkldnn, "_convolution_pointwise", None)
    if op is None or not torch.backends.mkldnn.is_available():
        return False
    try:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(1, 4, 5, 6, generator=gen).contiguous(memory_format=torch.channels_last)
        w = torch.randn(3, 4, 3, 3, generator=gen).contiguous(memory_format=torch.channels_last)
        b, other = torch.randn(3, generator=gen), torch.randn(1, 3, 5, 6, generator=gen)
        with torch.no_grad():
            expected = F.relu(F.conv2d(x, w, b, padding=1) + other.contiguous(memory_format=torch.channels_last))
            got = op.binary(x, other.contiguous(memory_format=torch.channels_last), w, b, [1, 1], [1, 1], [1, 1], 1,
                            "add", None, "relu", [], "")
        return bool(torch.allclose(got, expected, atol=1e-5))
    except (RuntimeError, TypeError, NotImplementedError):
        return False


def _fused_conv(conv, x, relu=False, add=None):
    """``conv(x)`` [``+ add``] [then ReLU] as one oneDNN call."""
    op = torch.ops.mkldnn._convolution_pointwise
    geometry = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
    if add is None:
        return op(x, conv.weight, conv.bias, *geometry, "relu" if relu else "none", [], "")
    return op.binary(x, add, conv.weight, conv.bias, *geometry, "add", None, "relu" if relu else None, [], "")


def _plain_float(x):
    """The fused ops take float32 CPU tensors, outside autocast."""
    return x.dtype == torch.float32 and x.device.type == "cpu" and not torch.is_autocast_enabled("cpu")


class FusedBottleneck(nn.Module):
    """A folded ResNet Bottleneck in three oneDNN calls."""

    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, x):
        b = self.block
        if not _plain_float(x):
            return b(x)
        out = _fused_conv(b.conv2, _fused_conv(b.conv1, x, relu=True), relu=True)
        skip = x if b.downsample is None else _fused_conv(b.downsample[0], x)
        return _fused_conv(b.conv3, out, relu=True, add=skip)


class FusedBasicBlock(nn.Module):
    """A folded ResNet BasicBlock in two (three with a downsample) oneDNN calls."""

    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, x):
        b = self.block
        if not _plain_float(x):
            return b(x)
        skip = x if b.downsample is None else _fused_conv(b.downsample[0], x)
        return _fused_conv(b.conv2, _fused_conv(b.conv1, x, relu=True), relu=True, add=skip)


class ConvReLU(nn.Module):
    """A stem's folded convolution with the ReLU that follows it."""

    def __init__(self, conv):
        super().__init__()
        self.conv = conv

    def forward(self, x):
        if not _plain_float(x):
            return F.relu(self.conv(x))
        return _fused_conv(self.conv, x, relu=True)


def _fuse_activations(part):
    """Swap ``part``'s folded ResNet blocks and stem for their fused forms."""
    for module in list(part.modules()):
        for name, child in list(module.named_children()):
            kind = type(child).__name__
            folded = not any(isinstance(m, nn.BatchNorm2d) for m in child.modules())
            if kind == "Bottleneck" and folded:
                setattr(module, name, FusedBottleneck(child))
            elif kind == "BasicBlock" and folded:
                setattr(module, name, FusedBasicBlock(child))
        # Stems: conv1 -> (folded bn1) -> relu, with the ReLU before or after the max-pool
        # (they commute): the ReLU moves into the convolution.
        if type(module).__name__ in ("KeyEncoder", "ValueEncoder") and isinstance(getattr(module, "bn1", None), nn.Identity):
            module.conv1 = ConvReLU(module.conv1)
            module.relu = nn.Identity()
