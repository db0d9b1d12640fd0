"""SAM 2.1's memory side: the memory attention (self-attention and cross-attention to the
memory, both with 2-D rotary positions; object-pointer tokens are left unrotated) and the
memory encoder (mask downsampler + pixel projection + two ConvNeXt blocks -> 64 channels)."""
import torch
import torch.nn.functional as F
from torch import nn

from .heads import Attention
from .layers import ChannelNorm, sine_table

_ROPE_CACHE = {}


def rope_table(dim, side, theta=10000.0, device="cpu"):
    """``[side*side, dim/2]`` complex rotations for a square grid: x then y frequencies."""
    key = (dim, side, theta, str(device))
    table = _ROPE_CACHE.get(key)
    if table is None:
        freqs = 1.0 / (theta ** (torch.arange(0, dim, 4)[: dim // 4].float() / dim))
        t = torch.arange(side * side, dtype=torch.float32)
        tx, ty = t % side, torch.div(t, side, rounding_mode="floor")
        fx, fy = torch.outer(tx, freqs), torch.outer(ty, freqs)
        table = torch.cat([torch.polar(torch.ones_like(fx), fx), torch.polar(torch.ones_like(fy), fy)], -1)
        table = table.to(device)
        _ROPE_CACHE[key] = table
    return table


def _rotate(x, table):
    pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(pairs * table).flatten(3).type_as(x)


class RoPEAttention(Attention):
    """Attention with the rotary code on queries and on the first ``len(k) - unrotated`` keys;
    keys longer than the queries repeat the query grid's table once per memory frame."""

    def __init__(self, dim, heads=1, kv_dim=None, theta=10000.0):
        super().__init__(dim, heads, kv_dim=kv_dim)
        self.theta = theta

    def forward(self, q, k, v, unrotated=0):
        q, k, v = self._project(q, k, v)
        n = q.shape[-2]
        side = int(round(n ** 0.5))
        if side * side != n:
            raise ValueError(f"SAM 2 memory attention needs a square feature grid, got {n} positions")
        table = rope_table(q.shape[-1], side, self.theta, q.device)
        q = _rotate(q, table)
        rotated = k.shape[-2] - unrotated
        if rotated:
            reps = rotated // n
            k = torch.cat([_rotate(k[:, :, :rotated], table.repeat(reps, 1)), k[:, :, rotated:]], dim=2)
        return self._finish(F.scaled_dot_product_attention(q, k, v))


class MemoryAttentionLayer(nn.Module):
    def __init__(self, dim=256, mem_dim=64, ffn=2048):
        super().__init__()
        self.self_attn = RoPEAttention(dim)
        self.cross_attn_image = RoPEAttention(dim, kv_dim=mem_dim)
        self.linear1 = nn.Linear(dim, ffn)
        self.linear2 = nn.Linear(ffn, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x, memory, memory_pos, unrotated):
        y = self.norm1(x)
        x = x + self.self_attn(y, y, y)
        y = self.norm2(x)
        x = x + self.cross_attn_image(y, memory + memory_pos, memory, unrotated)
        return x + self.linear2(F.relu(self.linear1(self.norm3(x))))


class MemoryAttention(nn.Module):
    def __init__(self, dim=256, mem_dim=64, num_layers=4):
        super().__init__()
        self.layers = nn.ModuleList(MemoryAttentionLayer(dim, mem_dim) for _ in range(num_layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, curr, curr_pos, memory, memory_pos, num_pointer_tokens):
        """``curr``/``curr_pos`` ``[B, HW, C]``; ``memory``/``memory_pos`` ``[B, M, mem_dim]``."""
        x = curr + 0.1 * curr_pos
        for layer in self.layers:
            x = layer(x, memory, memory_pos, num_pointer_tokens)
        return self.norm(x)


class CXBlock(nn.Module):
    def __init__(self, dim=256):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = ChannelNorm(dim)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        y = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)
        y = self.gamma * self.pwconv2(self.act(self.pwconv1(y)))
        return x + y.permute(0, 3, 1, 2)


class _Fuser(nn.Module):
    def __init__(self, dim, num_layers=2):
        super().__init__()
        self.layers = nn.ModuleList(CXBlock(dim) for _ in range(num_layers))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class _MaskDownSampler(nn.Module):
    """Four stride-2 3x3 convs (1 -> 4 -> 16 -> 64 -> 256 channels, each with a channel norm and
    GELU), then a 1x1 conv: the mask at image size -> the stride-16 grid."""

    def __init__(self, dim=256):
        super().__init__()
        layers, c = [], 1
        for _ in range(4):
            layers += [nn.Conv2d(c, c * 4, kernel_size=3, stride=2, padding=1), ChannelNorm(c * 4), nn.GELU()]
            c *= 4
        layers.append(nn.Conv2d(c, dim, kernel_size=1))
        self.encoder = nn.Sequential(*layers)

    def forward(self, x):
        return self.encoder(x)


class MemoryEncoder(nn.Module):
    def __init__(self, dim=256, out_dim=64):
        super().__init__()
        self.mask_downsampler = _MaskDownSampler(dim)
        self.pix_feat_proj = nn.Conv2d(dim, dim, kernel_size=1)
        self.fuser = _Fuser(dim)
        self.out_proj = nn.Conv2d(dim, out_dim, kernel_size=1)
        self.out_dim = out_dim

    def forward(self, pix_feat, mask_in):
        """``mask_in``: the mask already mapped to ``[-10, 10]`` at image size.
        Returns ``(features [B,64,h,w], position table [1,64,h,w])``."""
        x = self.pix_feat_proj(pix_feat) + self.mask_downsampler(mask_in)
        x = self.out_proj(self.fuser(x))
        return x, sine_table(self.out_dim, x.shape[-2], x.shape[-1], x.device).to(x.dtype)
