"""SAM 2.1's prompt encoder and mask decoder (the "SAM heads").

Prompts are points in model pixels (``[B,P,2]`` as ``(x, y)`` at image size ``S``) with labels
0 negative, 1 positive, 2/3 box corners, -1 padding; an optional mask prompt is a logit map at
``S/4``. The decoder returns four masks (token 0: single-mask output, 1-3: multimask), four
predicted IoUs, the four mask tokens and the object-score logit.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import MLP, ChannelNorm


class RandomFourier(nn.Module):
    """Positions in ``[0,1]^2`` -> ``sin``/``cos`` of a fixed random projection."""

    def __init__(self, half_dim):
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, half_dim))

    def encode(self, coords):
        coords = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
        coords = 2 * math.pi * coords
        return torch.cat([coords.sin(), coords.cos()], dim=-1)

    def grid(self, h, w):
        device = self.positional_encoding_gaussian_matrix.device
        ones = torch.ones((h, w), device=device, dtype=torch.float32)
        ys = (ones.cumsum(0) - 0.5) / h
        xs = (ones.cumsum(1) - 0.5) / w
        return self.encode(torch.stack([xs, ys], dim=-1)).permute(2, 0, 1)


class PromptEncoder(nn.Module):
    def __init__(self, dim=256, mask_channels=16):
        super().__init__()
        self.dim = dim
        self.pe_layer = RandomFourier(dim // 2)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_channels // 4, kernel_size=2, stride=2), ChannelNorm(mask_channels // 4), nn.GELU(),
            nn.Conv2d(mask_channels // 4, mask_channels, kernel_size=2, stride=2), ChannelNorm(mask_channels),
            nn.GELU(), nn.Conv2d(mask_channels, dim, kernel_size=1))
        self.no_mask_embed = nn.Embedding(1, dim)

    def dense_pe(self, grid):
        return self.pe_layer.grid(grid, grid).unsqueeze(0)

    def embed_points(self, coords, labels, image_size):
        """Sparse tokens ``[B, P+1, dim]``: every point plus one padding token."""
        b = coords.shape[0]
        coords = coords + 0.5  # pixel centres
        coords = torch.cat([coords, torch.zeros((b, 1, 2), device=coords.device)], dim=1)
        labels = torch.cat([labels, -torch.ones((b, 1), device=labels.device, dtype=labels.dtype)], dim=1)
        emb = self.pe_layer.encode((coords / image_size).float())
        labels = labels.unsqueeze(-1)
        emb = torch.where(labels == -1, torch.zeros_like(emb) + self.not_a_point_embed.weight, emb)
        for k, table in enumerate(self.point_embeddings):
            emb = torch.where(labels == k, emb + table.weight, emb)
        return emb

    def embed_mask(self, mask, grid):
        """Dense prompt ``[B, dim, grid, grid]``: the encoded mask logits, or the no-mask code."""
        if mask is None:
            return self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(1, -1, grid, grid)
        return self.mask_downscaling(mask)


class Attention(nn.Module):
    """Multi-head attention whose inner width may be smaller (``downsample``) or whose keys
    and values come from a narrower input (``kv_dim``)."""

    def __init__(self, dim, heads, downsample=1, kv_dim=None):
        super().__init__()
        inner = dim // downsample
        kv_dim = kv_dim or dim
        self.heads = heads
        self.q_proj = nn.Linear(dim, inner)
        self.k_proj = nn.Linear(kv_dim, inner)
        self.v_proj = nn.Linear(kv_dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def _split(self, x):
        b, n, c = x.shape
        return x.reshape(b, n, self.heads, c // self.heads).transpose(1, 2)

    def _project(self, q, k, v):
        return self._split(self.q_proj(q)), self._split(self.k_proj(k)), self._split(self.v_proj(v))

    def _finish(self, out):
        b, h, n, c = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * c))

    def forward(self, q, k, v):
        q, k, v = self._project(q, k, v)
        return self._finish(F.scaled_dot_product_attention(q, k, v))


class TwoWayBlock(nn.Module):
    def __init__(self, dim, heads, mlp_dim, skip_first_pe):
        super().__init__()
        self.self_attn = Attention(dim, heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = Attention(dim, heads, downsample=2)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_dim, dim, 2)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = Attention(dim, heads, downsample=2)
        self.skip_first_pe = skip_first_pe

    def forward(self, queries, keys, query_pe, key_pe):
        if self.skip_first_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        k = keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(queries + query_pe, k, keys))
        queries = self.norm3(queries + self.mlp(queries))
        q = queries + query_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(keys + key_pe, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    def __init__(self, dim=256, depth=2, heads=8, mlp_dim=2048):
        super().__init__()
        self.layers = nn.ModuleList(TwoWayBlock(dim, heads, mlp_dim, i == 0) for i in range(depth))
        self.final_attn_token_to_image = Attention(dim, heads, downsample=2)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(self, image, image_pe, tokens):
        keys = image.flatten(2).permute(0, 2, 1)
        key_pe = image_pe.flatten(2).permute(0, 2, 1)
        queries = tokens
        for layer in self.layers:
            queries, keys = layer(queries, keys, tokens, key_pe)
        out = self.final_attn_token_to_image(queries + tokens, keys + key_pe, keys)
        return self.norm_final_attn(queries + out), keys


class MaskDecoder(nn.Module):
    def __init__(self, dim=256, num_masks=4):
        super().__init__()
        self.transformer = TwoWayTransformer(dim)
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(num_masks, dim)
        self.obj_score_token = nn.Embedding(1, dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, kernel_size=2, stride=2), ChannelNorm(dim // 4), nn.GELU(),
            nn.ConvTranspose2d(dim // 4, dim // 8, kernel_size=2, stride=2), nn.GELU())
        self.conv_s0 = nn.Conv2d(dim, dim // 8, kernel_size=1)
        self.conv_s1 = nn.Conv2d(dim, dim // 4, kernel_size=1)
        self.output_hypernetworks_mlps = nn.ModuleList(MLP(dim, dim, dim // 8, 3) for _ in range(num_masks))
        self.iou_prediction_head = MLP(dim, 256, num_masks, 3)
        self.pred_obj_score_head = MLP(dim, dim, 1, 3)

    def forward(self, image, image_pe, sparse, dense, high_res):
        """``(masks [B,4,4h,4w], ious [B,4] (sigmoid), mask tokens [B,4,C], object score [B,1])``."""
        b = sparse.shape[0]
        head = torch.cat([self.obj_score_token.weight, self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat((head.unsqueeze(0).expand(b, -1, -1), sparse), dim=1)
        if image.shape[0] != b:
            image = torch.repeat_interleave(image, b, dim=0)
        src = image + dense
        pos = torch.repeat_interleave(image_pe, b, dim=0)
        _, c, h, w = src.shape
        hs, src = self.transformer(src, pos, tokens)
        n = self.mask_tokens.weight.shape[0]
        mask_tokens = hs[:, 2:2 + n, :]
        src = src.transpose(1, 2).reshape(b, c, h, w)
        up1, norm1, act1, up2, act2 = self.output_upscaling
        s0, s1 = high_res
        up = act1(norm1(up1(src) + s1))
        up = act2(up2(up) + s0)
        hyper = torch.stack([mlp(mask_tokens[:, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], 1)
        _, c, h, w = up.shape
        masks = (hyper @ up.view(b, c, h * w)).view(b, -1, h, w)
        ious = torch.sigmoid(self.iou_prediction_head(hs[:, 1, :]))
        return masks, ious, mask_tokens, self.pred_obj_score_head(hs[:, 0, :])


def stability(logits, delta=0.05):
    """Share of the ``> -delta`` area that is also ``> delta``, per mask (1 where empty)."""
    flat = logits.flatten(-2)
    inter = (flat > delta).sum(-1).float()
    union = (flat > -delta).sum(-1).float()
    return torch.where(union > 0, inter / union, 1.0)


def choose_masks(masks, ious, multimask, stability_thresh=0.98):
    """SAM 2's output choice: the three multimask outputs, or token 0 unless it is unstable
    (stability below the threshold), in which case the multimask output with the best IoU."""
    if multimask:
        return masks[:, 1:], ious[:, 1:]
    best = torch.argmax(ious[:, 1:], dim=-1)
    rows = torch.arange(masks.shape[0], device=masks.device)
    best_mask = masks[:, 1:][rows, best].unsqueeze(1)
    best_iou = ious[:, 1:][rows, best].unsqueeze(1)
    stable = stability(masks[:, 0:1]) >= stability_thresh
    return (torch.where(stable[..., None, None], masks[:, 0:1], best_mask),
            torch.where(stable, ious[:, 0:1], best_iou))
