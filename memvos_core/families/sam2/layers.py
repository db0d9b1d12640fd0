"""Small building blocks shared by SAM 2.1's parts: a plain MLP, a channel-wise LayerNorm on
``[B,C,H,W]`` maps, and the sine position tables (2-D for feature maps, 1-D for time).

Parameter names follow Meta's checkpoints (``layers.N``, ``weight``/``bias``) so that the
official ``.pt`` files load with ``strict=True``.
"""
import math

import torch
from torch import nn


class MLP(nn.Module):
    """``num_layers`` linear layers with ``act`` between them (not after the last)."""

    def __init__(self, dim_in, hidden, dim_out, num_layers, act=nn.ReLU):
        super().__init__()
        dims = [dim_in] + [hidden] * (num_layers - 1) + [dim_out]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.act = act()

    def forward(self, x):
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = self.act(x)
        return x


class ChannelNorm(nn.Module):
    """LayerNorm over the channel axis of a ``[B,C,H,W]`` map (eps 1e-6, biased variance)."""

    def __init__(self, channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


def _inverse_frequencies(half, temperature, device):
    i = torch.arange(half, dtype=torch.float32, device=device)
    return temperature ** (2 * (i // 2) / half)


_SINE_CACHE = {}


def sine_table(channels, height, width, device, temperature=10000.0):
    """``[1, channels, H, W]`` normalised 2-D sine/cosine positions (y half first, then x),
    the encoding of SAM 2's neck and memory encoder. Cached per shape: it never changes."""
    key = (channels, height, width, str(device))
    table = _SINE_CACHE.get(key)
    if table is None:
        half = channels // 2
        scale, eps = 2 * math.pi, 1e-6
        ys = torch.arange(1, height + 1, dtype=torch.float32, device=device).view(-1, 1).expand(height, width)
        xs = torch.arange(1, width + 1, dtype=torch.float32, device=device).view(1, -1).expand(height, width)
        ys = ys / (height + eps) * scale
        xs = xs / (width + eps) * scale
        dim_t = _inverse_frequencies(half, temperature, device)

        def interleave(v):
            v = v[..., None] / dim_t
            return torch.stack((v[..., 0::2].sin(), v[..., 1::2].cos()), dim=-1).flatten(-2)

        table = torch.cat((interleave(ys), interleave(xs)), dim=-1).permute(2, 0, 1)[None].contiguous()
        _SINE_CACHE[key] = table
    return table


def sine_1d(positions, dim, temperature=10000.0):
    """``[N, dim]`` sines then cosines of float positions (the object pointers' time code)."""
    dim_t = _inverse_frequencies(dim // 2, temperature, positions.device)
    angles = positions.unsqueeze(-1) / dim_t
    return torch.cat([angles.sin(), angles.cos()], dim=-1)
