"""SAM 2.1's image encoder: the Hiera trunk (windowed and global attention, query pooling at the
stage changes) and the FPN neck that turns its four stages into three 256-channel maps at
strides 4, 8 and 16 (the stride-32 level is dropped after feeding the top-down path)."""
import torch
import torch.nn.functional as F
from torch import nn

from .layers import MLP


def _to_windows(x, size):
    """``[B,H,W,C]`` -> ``[B*nw, size, size, C]`` with zero padding, and the padded size."""
    b, h, w, c = x.shape
    ph, pw = (size - h % size) % size, (size - w % size) % size
    if ph or pw:
        x = F.pad(x, (0, 0, 0, pw, 0, ph))
    hp, wp = h + ph, w + pw
    x = x.view(b, hp // size, size, wp // size, size, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, size, size, c), (hp, wp)


def _from_windows(x, size, padded, hw):
    hp, wp = padded
    b = x.shape[0] // (hp * wp // size // size)
    x = x.reshape(b, hp // size, wp // size, size, size, -1).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    return x[:, :hw[0], :hw[1], :]


def _max_pool(x, stride):
    """2x2 max pooling of a ``[B,H,W,C]`` map."""
    return F.max_pool2d(x.permute(0, 3, 1, 2), kernel_size=stride, stride=stride).permute(0, 2, 3, 1)


class PooledAttention(nn.Module):
    def __init__(self, dim, dim_out, heads, q_stride):
        super().__init__()
        self.heads = heads
        self.q_stride = q_stride
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x):
        b, h, w, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, h * w, 3, self.heads, -1).unbind(2)
        if self.q_stride:
            q = _max_pool(q.reshape(b, h, w, -1), self.q_stride)
            h, w = q.shape[1:3]
            q = q.reshape(b, h * w, self.heads, -1)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.proj(out.transpose(1, 2).reshape(b, h, w, -1))


class HieraBlock(nn.Module):
    def __init__(self, dim, dim_out, heads, window, q_stride):
        super().__init__()
        self.dim, self.dim_out, self.window, self.q_stride = dim, dim_out, window, q_stride
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = PooledAttention(dim, dim_out, heads, q_stride)
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = MLP(dim_out, 4 * dim_out, dim_out, 2, act=nn.GELU)
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)

    def forward(self, x):
        shortcut = x
        x = self.norm1(x)
        if self.dim != self.dim_out:
            shortcut = self.proj(x)
            if self.q_stride:
                shortcut = _max_pool(shortcut, self.q_stride)
        window = self.window
        h, w = x.shape[1:3]
        if window:
            x, padded = _to_windows(x, window)
        x = self.attn(x)
        if self.q_stride:
            # The pooled windows are half as wide; re-derive the padded size of the pooled map.
            window = self.window // self.q_stride[0]
            h, w = shortcut.shape[1:3]
            padded = (h + (window - h % window) % window, w + (window - w % window) % window)
        if self.window:
            x = _from_windows(x, window, padded, (h, w))
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=7, stride=4, padding=3)

    def forward(self, x):
        return self.proj(x).permute(0, 2, 3, 1)


class Hiera(nn.Module):
    """The hierarchical trunk; ``forward`` returns the last map of every stage, ``[B,C,H,W]``."""

    def __init__(self, embed_dim, heads, stages, global_blocks, window_spec, bkg_size):
        super().__init__()
        self.stage_ends = [sum(stages[:i]) - 1 for i in range(1, len(stages) + 1)]
        pool_blocks = {end + 1 for end in self.stage_ends[:-1]}
        self.patch_embed = PatchEmbed(embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, embed_dim, *bkg_size))
        self.pos_embed_window = nn.Parameter(torch.zeros(1, embed_dim, window_spec[0], window_spec[0]))
        self.blocks = nn.ModuleList()
        dim, stage = embed_dim, 0
        for i in range(sum(stages)):
            # The first block of a stage still uses the previous stage's window (then pools).
            window = 0 if i in global_blocks else window_spec[stage]
            dim_out = dim
            if i - 1 in self.stage_ends:
                dim_out, heads, stage = dim * 2, heads * 2, stage + 1
            self.blocks.append(HieraBlock(dim, dim_out, heads, window, (2, 2) if i in pool_blocks else None))
            dim = dim_out
        self.channels = [self.blocks[i].dim_out for i in self.stage_ends]

    def _position(self, h, w):
        pos = F.interpolate(self.pos_embed, size=(h, w), mode="bicubic")
        reps = [a // b for a, b in zip(pos.shape, self.pos_embed_window.shape)]
        return (pos + self.pos_embed_window.tile(reps)).permute(0, 2, 3, 1)

    def forward(self, x):
        x = self.patch_embed(x)
        x = x + self._position(*x.shape[1:3])
        outputs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.stage_ends:
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs


class _Lateral(nn.Module):
    def __init__(self, dim_in, dim):
        super().__init__()
        self.conv = nn.Conv2d(dim_in, dim, kernel_size=1)

    def forward(self, x):
        return self.conv(x)


class FpnNeck(nn.Module):
    """1x1 laterals, nearest top-down fusion on the two coarsest levels only; returns the
    stride 4, 8, 16 maps (the stride-32 one only feeds the stride-16 map)."""

    def __init__(self, trunk_channels, dim=256, top_down_levels=(2, 3)):
        super().__init__()
        # convs[0] is the coarsest stage (the checkpoints' order).
        self.convs = nn.ModuleList(_Lateral(c, dim) for c in reversed(trunk_channels))
        self.top_down_levels = set(top_down_levels)

    def forward(self, stages):
        n = len(self.convs) - 1
        out, prev = [None] * len(stages), None
        for i in range(n, -1, -1):
            lateral = self.convs[n - i](stages[i])
            if i in self.top_down_levels and prev is not None:
                prev = lateral + F.interpolate(prev.float(), scale_factor=2.0, mode="nearest")
            else:
                prev = lateral
            out[i] = prev
        return out[:-1]


class ImageEncoder(nn.Module):
    def __init__(self, trunk, neck):
        super().__init__()
        self.trunk = trunk
        self.neck = neck

    def forward(self, x):
        return self.neck(self.trunk(x))
