"""Cutie's object-level parts: the object summarizer (what goes into object memory) and the
object transformer (how object memory reads the pixels), cutie-spec §2.5-2.6.

Attention uses ``nn.MultiheadAttention`` so the checkpoint's packed ``in_proj`` keys load as
they are. Boolean attention masks: True = blocked.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..runtime.frames import aggregate_logits
from .blocks import GConv2D
from .cutie_blocks import CAResBlock, full_precision

PE_SCALE = 32.0
PE_TEMPERATURE = 128.0


class SinePositionalEncoding(nn.Module):
    """2-D sine encoding: per axis interleaved ``[sin, cos]`` of normalised positions (0..scale)
    times ``inv_freq`` (a checkpoint buffer); the x half comes first."""

    def __init__(self, dim, scale=PE_SCALE, temperature=PE_TEMPERATURE):
        super().__init__()
        half = -(-dim // 4) * 2
        self.scale = scale
        self.register_buffer("inv_freq", 1.0 / (temperature ** (torch.arange(0, half, 2).float() / half)))

    def _axis(self, n):
        pos = torch.arange(n, device=self.inv_freq.device, dtype=self.inv_freq.dtype)
        pos = pos / (pos[-1] + 1e-6) * self.scale
        angle = torch.outer(pos, self.inv_freq)
        return torch.stack([angle.sin(), angle.cos()], -1).flatten(-2)

    def forward(self, h, w, dtype):
        """``[h, w, dim]`` in ``dtype`` (computed in float32)."""
        ex, ey = self._axis(w), self._axis(h)
        emb = torch.cat([ex.unsqueeze(0).expand(h, -1, -1), ey.unsqueeze(1).expand(-1, w, -1)], -1)
        return emb.to(dtype)


class CrossAttention(nn.Module):
    """``x`` reads ``mem``. The residual starts from the normalised ``x`` (as the reference)."""

    def __init__(self, dim, heads, norm=True):
        super().__init__()
        self.cross_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim) if norm else nn.Identity()

    def forward(self, x, mem, x_pe, mem_pe, mask=None):
        x = self.norm(x)
        out = self.cross_attn(x + x_pe, mem + mem_pe, mem, attn_mask=mask, need_weights=False)[0]
        return x + out


class SelfAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x, pe):
        x = self.norm(x)
        qk = x + pe
        return x + self.self_attn(qk, qk, x, need_weights=False)[0]


class FFN(nn.Module):
    def __init__(self, dim, ff_dim):
        super().__init__()
        self.linear1 = nn.Linear(dim, ff_dim)
        self.linear2 = nn.Linear(ff_dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        return x + self.linear2(F.relu(self.linear1(self.norm(x))))


class PixelFFN(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv = CAResBlock(dim)

    def forward(self, tokens, shape):
        """tokens ``[(B*N), h*w, C]`` -> map ``[B, N, C, h, w]``."""
        b, n, c, h, w = shape
        grid = tokens.view(b * n, h, w, c).permute(0, 3, 1, 2).contiguous()
        return self.conv(grid).view(b, n, c, h, w)


class TransformerBlock(nn.Module):
    def __init__(self, dim, heads, ff_dim):
        super().__init__()
        self.read_from_pixel = CrossAttention(dim, heads)
        self.self_attn = SelfAttention(dim, heads)
        self.ffn = FFN(dim, ff_dim)
        self.read_from_query = CrossAttention(dim, heads, norm=False)
        self.pixel_ffn = PixelFFN(dim)

    def forward(self, queries, pixel, query_pe, pixel_pe, mask):
        tokens = pixel.flatten(3, 4).flatten(0, 1).transpose(1, 2).contiguous()
        queries = self.read_from_pixel(queries, tokens, query_pe, pixel_pe, mask)
        queries = self.ffn(self.self_attn(queries, query_pe))
        tokens = self.read_from_query(tokens, queries, pixel_pe, query_pe)
        return queries, self.pixel_ffn(tokens, pixel.shape)


def attention_mask(aux_logits, heads, num_queries):
    """Foreground/background masks of the object queries (spec §2.6.1): queries of the first
    half may only look at pixels where their object wins (ties count as wins), the second half
    only elsewhere; a row blocked everywhere is unblocked. aux_logits ``[B,N,h,w]`` ->
    ``[(B*N*heads), num_queries, h*w]``."""
    log_odds = aggregate_logits(torch.sigmoid(aux_logits), dim=1)
    foreground = (log_odds[:, 1:] >= log_odds.max(dim=1, keepdim=True)[0]).flatten(2)
    b, n, hw = foreground.shape
    half = num_queries // 2
    per_query = torch.cat([(~foreground).unsqueeze(2).expand(b, n, half, hw),
                           foreground.unsqueeze(2).expand(b, n, num_queries - half, hw)], 2)
    mask = per_query.unsqueeze(2).expand(b, n, heads, num_queries, hw).reshape(b * n * heads, num_queries, hw)
    return mask & ~mask.all(-1, keepdim=True)


class ObjectTransformer(nn.Module):
    """Object queries, initialised from object memory, alternately read and write the fused
    pixel map; the final pixel map is the memory readout the decoder gets."""

    def __init__(self, dim, num_queries, num_blocks, ff_dim, heads):
        super().__init__()
        self.heads, self.num_queries = heads, num_queries
        self.query_init = nn.Embedding(num_queries, dim)
        self.query_emb = nn.Embedding(num_queries, dim)
        self.summary_to_query_init = nn.Linear(dim, dim)
        self.summary_to_query_emb = nn.Linear(dim, dim)
        self.pixel_init_proj = GConv2D(dim, dim, 1)
        self.pixel_emb_proj = GConv2D(dim, dim, 1)
        self.spatial_pe = SinePositionalEncoding(dim)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, ff_dim) for _ in range(num_blocks))
        self.mask_pred = nn.ModuleList(nn.Sequential(nn.ReLU(), GConv2D(dim, 1, 1)) for _ in range(num_blocks + 1))

    def forward(self, pixel, object_memory):
        """pixel ``[B,N,C,h,w]``; object_memory ``[B,N,T,Q,C+1]`` (running sums, last channel the
        area) -> ``[B,N,C,h,w]``."""
        b, n, c, h, w = pixel.shape
        memory = object_memory.reshape(b * n, object_memory.shape[2], self.num_queries, c + 1)
        values = memory[..., :-1].sum(1) / (memory[..., -1:].sum(1) + 1e-4)
        queries = self.query_init.weight.unsqueeze(0).expand(b * n, -1, -1) + self.summary_to_query_init(values)
        query_pe = self.query_emb.weight.unsqueeze(0).expand(b * n, -1, -1) + self.summary_to_query_emb(values)
        pixel_emb = self.pixel_emb_proj(pixel).flatten(3, 4).flatten(0, 1).transpose(1, 2).contiguous()
        pixel_pe = self.spatial_pe(h, w, pixel.dtype).flatten(0, 1) + pixel_emb
        pixel = self.pixel_init_proj(pixel)
        mask = attention_mask(self.mask_pred[0](pixel).squeeze(2), self.heads, self.num_queries)
        for i, block in enumerate(self.blocks):
            queries, pixel = block(queries, pixel, query_pe, pixel_pe, mask)
            if i + 1 < len(self.blocks):  # the last block's mask would not be used
                mask = attention_mask(self.mask_pred[i + 1](pixel).squeeze(2), self.heads, self.num_queries)
        return pixel


class ObjectSummarizer(nn.Module):
    """Per object, ``num_summaries`` weighted sums of value features (half inside the mask,
    half outside) and their weights' areas: what object memory accumulates (spec §2.5)."""

    def __init__(self, value_dim, dim, num_summaries):
        super().__init__()
        self.num_summaries = num_summaries
        self.pos_enc = SinePositionalEncoding(dim)
        self.input_proj = nn.Linear(value_dim, dim)
        self.feature_pred = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, dim))
        self.weights_pred = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, num_summaries))

    def forward(self, masks, value):
        """masks ``[B,N,H,W]``; value ``[B,N,Cv,h,w]`` -> ``[B,N,num_summaries,dim+1]`` float32."""
        h, w = value.shape[-2:]
        m = F.interpolate(masks, size=(h, w), mode="area").unsqueeze(-1)
        half = self.num_summaries // 2
        gate = torch.cat([m.expand(-1, -1, -1, -1, half), (1 - m).expand(-1, -1, -1, -1, self.num_summaries - half)], -1)
        z = self.input_proj(value.permute(0, 1, 3, 4, 2))
        z = z + self.pos_enc(h, w, z.dtype)
        with full_precision(z):
            z = z.float()
            weights = torch.sigmoid(self.weights_pred(z)) * gate
            sums = torch.einsum("bkhwq,bkhwc->bkqc", weights, self.feature_pred(z))
            area = weights.flatten(2, 3).sum(2).unsqueeze(-1)
        return torch.cat([sums, area], -1)
