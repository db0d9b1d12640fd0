"""Building blocks of the Cutie network (cutie-spec §2.3-2.4) that XMem does not have.

Object-level tensors are 5-D ``[batch, objects, channels, height, width]`` as in ``blocks.py``,
whose pieces (grouped convolutions, the residual block, the gated sensory updates) are reused.
Attribute names are the checkpoint's key names.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import (GConv2D, GroupResBlock, HiddenReinforcer, HiddenUpdater, broadcast_add,
                     broadcast_cat, fold_objects, resize_objects, unfold_objects)
from .resnet import BasicBlock, ResNetTrunk


def full_precision(x):
    """Autocast off on ``x``'s device: the parts the reference keeps in float32 (sensory
    updates, mask prediction, summaries)."""
    return torch.autocast(x.device.type, enabled=False)


class CAResBlock(nn.Module):
    """Residual block with channel attention: a 1-D convolution along the channel axis of the
    globally pooled features gates each channel (ECA-style)."""

    def __init__(self, dim):
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 3, padding=1)
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=1)
        t = int((abs(math.log2(dim)) + 1) // 2)
        k = t if t % 2 else t + 1
        self.conv = nn.Conv1d(1, 1, k, padding=(k - 1) // 2, bias=False)

    def forward(self, x):
        y = self.conv2(F.relu(self.conv1(F.relu(x))))
        b, c = y.shape[:2]
        gate = self.conv(F.adaptive_avg_pool2d(y, 1).view(b, 1, c)).transpose(-1, -2).unsqueeze(-1)
        return y * torch.sigmoid(gate) + x


class Distributor(nn.Module):
    """Projects an image-level map and per-object maps to one width and adds them."""

    def __init__(self, x_in_dim, g_in_dim, out_dim):
        super().__init__()
        self.x_transform = nn.Conv2d(x_in_dim, out_dim, 1)
        self.g_transform = GConv2D(g_in_dim, out_dim, 1)

    def forward(self, x, g):
        return broadcast_add(self.x_transform(x), self.g_transform(g))


class GroupFusion(nn.Module):
    """Fusion of an image-level map with per-object maps, then two channel-attention blocks."""

    def __init__(self, x_in_dim, g_in_dim, out_dim):
        super().__init__()
        self.distributor = Distributor(x_in_dim, g_in_dim, out_dim)
        self.block1 = CAResBlock(out_dim)
        self.block2 = CAResBlock(out_dim)

    def forward(self, x, g):
        batch_size, num_objects = g.shape[:2]
        g = fold_objects(self.distributor(x, g))
        return unfold_objects(self.block2(self.block1(g)), batch_size, num_objects)


def clamped_others(masks):
    """Per object, the other objects' masks summed (total minus itself) and clamped to 0..1."""
    return (masks.sum(1, keepdim=True) - masks).clamp(0, 1)


def object_chunks(num_objects, chunk_size):
    """Index ranges of at most ``chunk_size`` objects (``< 1``: one range)."""
    size = num_objects if chunk_size < 1 else chunk_size
    return [(i, min(i + size, num_objects)) for i in range(0, num_objects, max(size, 1))]


class MaskEncoder(ResNetTrunk):
    """ResNet-18 over ``[RGB; object mask; other objects]`` per object, fused with the pixel
    feature; the result is the memory value, and it deep-updates the sensory memory."""

    def __init__(self, pixel_dim, value_dim, sensory_dim, mask_channels=2):
        super().__init__(BasicBlock, (2, 2, 2), in_ch=3 + mask_channels, first_stage="layer1")
        self.fuser = GroupFusion(pixel_dim, 256, value_dim)
        self.sensory_update = HiddenReinforcer(value_dim, sensory_dim)

    def forward(self, image, pix_feat, sensory, masks, deep_update, chunk_size=-1):
        g = broadcast_cat(image, torch.stack([masks, clamped_others(masks)], 2))
        values, sensories = [], []
        for lo, hi in object_chunks(g.shape[1], chunk_size):  # exact: objects are independent here
            part = g[:, lo:hi]
            value = unfold_objects(ResNetTrunk.forward(self, fold_objects(part))[0], *part.shape[:2])
            value = self.fuser(pix_feat, value)
            values.append(value)
            if deep_update:
                with full_precision(value):
                    sensories.append(self.sensory_update(value.float(), sensory[:, lo:hi].float()))
        value = torch.cat(values, 1)
        return value, (torch.cat(sensories, 1) if deep_update else sensory)


class PixelFuser(nn.Module):
    """Memory readout + compressed [sensory; last mask; others' last mask], fused with the pixel
    feature (spec §3.5)."""

    def __init__(self, pixel_dim, value_dim, sensory_dim, embed_dim, mask_channels=2):
        super().__init__()
        self.fuser = GroupFusion(pixel_dim, value_dim, embed_dim)
        self.sensory_compress = GConv2D(sensory_dim + mask_channels, value_dim, 1)

    def forward(self, pix_feat, readout, sensory, last_mask):
        """last_mask ``[B,n,H,W]``: the previous output of these objects at any stride-16 multiple."""
        small = F.interpolate(last_mask, size=sensory.shape[-2:], mode="area")
        masks = torch.stack([small, clamped_others(small)], 2)
        compressed = self.sensory_compress(torch.cat([sensory, masks.to(sensory.dtype)], 2))
        return self.fuser(pix_feat, readout + compressed)


class UpsampleBlock(nn.Module):
    """x2 bilinear, add the (already projected) skip feature, residual block."""

    def __init__(self, in_dim, out_dim):
        super().__init__()
        self.out_conv = GroupResBlock(in_dim, out_dim, skip_kernel=1)

    def forward(self, g, skip):
        return self.out_conv(broadcast_add(skip, resize_objects(g, 2, "bilinear")))


class FeatureProcessor(nn.Module):
    """1x1 projections of the image's stride-8 and stride-4 features for the decoder."""

    def __init__(self, in_dims, out_dims):
        super().__init__()
        self.transforms = nn.ModuleList(nn.Conv2d(i, o, 1) for i, o in zip(in_dims, out_dims))

    def forward(self, features):
        return [t(f) for t, f in zip(self.transforms, features)]


class MaskDecoder(nn.Module):
    """Memory readout -> per-object logits at stride 4, and optionally the sensory update."""

    def __init__(self, ms_dims, up_dims, sensory_dim):
        super().__init__()
        self.sensory_update = HiddenUpdater([up_dims[0], up_dims[1], up_dims[2] + 1], sensory_dim, sensory_dim)
        self.decoder_feat_proc = FeatureProcessor(ms_dims[1:], up_dims[:-1])
        self.up_16_8 = UpsampleBlock(up_dims[0], up_dims[1])
        self.up_8_4 = UpsampleBlock(up_dims[1], up_dims[2])
        self.pred = nn.Conv2d(up_dims[-1], 1, 3, padding=1)

    def forward(self, f8, f4, readout, sensory, update_sensory, chunk_size=-1):
        """-> (new sensory or None, logits ``[B,N,4h,4w]`` float32)."""
        f8, f4 = self.decoder_feat_proc([f8, f4])
        logits, sensories = [], []
        for lo, hi in object_chunks(readout.shape[1], chunk_size):  # exact: objects are independent
            p16 = readout[:, lo:hi]
            batch_size, n = p16.shape[:2]
            p8 = self.up_16_8(p16, f8)
            p4 = self.up_8_4(p8, f4)
            with full_precision(p4):
                chunk_logits = unfold_objects(self.pred(F.relu(fold_objects(p4).float())), batch_size, n)
            logits.append(chunk_logits[:, :, 0])
            if update_sensory:
                g4 = torch.cat([p4, chunk_logits.to(p4.dtype)], 2)
                with full_precision(p4):
                    sensories.append(self.sensory_update(p16.float(), p8.float(), g4.float(),
                                                         sensory[:, lo:hi].float()))
        new_sensory = torch.cat(sensories, 1) if update_sensory else None
        return new_sensory, torch.cat(logits, 1)
