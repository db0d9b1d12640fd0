"""Building blocks of the XMem network (spec §2.2).

Object-level tensors are 5-D, ``[batch, objects, channels, height, width]``: every object is
processed as an independent batch item with shared weights, so the "group" modules fold the two
leading axes into one before the 2-D op and unfold afterwards.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def fold_objects(g):
    flat = g.flatten(start_dim=0, end_dim=1)
    if flat.shape[0] == 1 and flat.dim() > 1:
        # A channels-last map viewed with an object axis and flattened back keeps a stray
        # stride on its size-1 batch axis, which sends resizes and other kernels down a slow
        # generic path (~0.3 s a 480p frame); give it the stride a fresh tensor would have.
        flat = flat.as_strided(flat.shape, (flat.numel(),) + flat.stride()[1:])
    return flat


def unfold_objects(x, batch_size, num_objects):
    return x.view(batch_size, num_objects, *x.shape[1:])


def resize_objects(g, scale, mode):
    align = False if mode == "bilinear" else None
    out = F.interpolate(fold_objects(g), scale_factor=scale, mode=mode, align_corners=align)
    return unfold_objects(out, *g.shape[:2])


class GConv2D(nn.Conv2d):
    """A Conv2d applied to every object of a 5-D tensor."""

    def forward(self, g):
        return unfold_objects(super().forward(fold_objects(g)), *g.shape[:2])


def broadcast_cat(image_level, g):
    """Concatenate an image-level map in front of every object's channels."""
    x = image_level.unsqueeze(1).expand(-1, g.shape[1], -1, -1, -1)
    return torch.cat([x, g], 2)


def broadcast_add(image_level, g):
    return image_level.unsqueeze(1).expand(-1, g.shape[1], -1, -1, -1) + g


class GroupResBlock(nn.Module):
    """Pre-activation residual block over objects; the skip sees the un-activated input.
    ``skip_kernel``: the skip projection's size when the widths differ (XMem 3x3, Cutie 1x1)."""

    def __init__(self, in_dim, out_dim, skip_kernel=3):
        super().__init__()
        self.downsample = (None if in_dim == out_dim
                           else GConv2D(in_dim, out_dim, skip_kernel, padding=skip_kernel // 2))
        self.conv1 = GConv2D(in_dim, out_dim, 3, padding=1)
        self.conv2 = GConv2D(out_dim, out_dim, 3, padding=1)

    def forward(self, g):
        out = self.conv2(F.relu(self.conv1(F.relu(g))))
        skip = g if self.downsample is None else self.downsample(g)
        return out + skip


class ChannelGate(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        # Indices 0..3 are part of the checkpoint key names (mlp.1 / mlp.3).
        self.mlp = nn.Sequential(
            nn.Flatten(), nn.Linear(channels, channels // reduction), nn.ReLU(),
            nn.Linear(channels // reduction, channels))

    def forward(self, x):
        avg = self.mlp(F.avg_pool2d(x, x.shape[2:], stride=x.shape[2:]))
        mx = self.mlp(F.max_pool2d(x, x.shape[2:], stride=x.shape[2:]))
        return x * torch.sigmoid(avg + mx)[:, :, None, None]


class _SpatialConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, x):
        return self.conv(x)


class SpatialGate(nn.Module):
    def __init__(self):
        super().__init__()
        self.spatial = _SpatialConv()

    def forward(self, x):
        pooled = torch.cat([x.max(1, keepdim=True)[0], x.mean(1, keepdim=True)], 1)
        return x * torch.sigmoid(self.spatial(pooled))


class CBAM(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.ChannelGate = ChannelGate(channels)
        self.SpatialGate = SpatialGate()

    def forward(self, x):
        return self.SpatialGate(self.ChannelGate(x))


class FeatureFusionBlock(nn.Module):
    """Fuses an image-level feature map with per-object features (spec §2.2)."""

    def __init__(self, x_in_dim, g_in_dim, g_mid_dim, g_out_dim):
        super().__init__()
        self.block1 = GroupResBlock(x_in_dim + g_in_dim, g_mid_dim)
        self.attention = CBAM(g_mid_dim)
        self.block2 = GroupResBlock(g_mid_dim, g_out_dim)

    def forward(self, x, g):
        batch_size, num_objects = g.shape[:2]
        g = self.block1(broadcast_cat(x, g))
        r = unfold_objects(self.attention(fold_objects(g)), batch_size, num_objects)
        return self.block2(g + r)


def gated_state_update(gates, h, hidden_dim):
    """XMem's GRU-like update: the candidate does not see a reset-gated state (spec §2.2)."""
    forget = torch.sigmoid(gates[:, :, :hidden_dim])
    update = torch.sigmoid(gates[:, :, hidden_dim:2 * hidden_dim])
    candidate = torch.tanh(gates[:, :, 2 * hidden_dim:])
    return forget * h * (1 - update) + update * candidate


class HiddenReinforcer(nn.Module):
    """Deep update of the sensory memory from a freshly encoded memory value."""

    def __init__(self, g_dim, hidden_dim):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.transform = GConv2D(g_dim + hidden_dim, hidden_dim * 3, 3, padding=1)

    def forward(self, g, h):
        return gated_state_update(self.transform(torch.cat([g, h], 2)), h, self.hidden_dim)


class HiddenUpdater(nn.Module):
    """Sensory-memory update from the decoder's three scales."""

    def __init__(self, g_dims, mid_dim, hidden_dim):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.g16_conv = GConv2D(g_dims[0], mid_dim, 1)
        self.g8_conv = GConv2D(g_dims[1], mid_dim, 1)
        self.g4_conv = GConv2D(g_dims[2], mid_dim, 1)
        self.transform = GConv2D(mid_dim + hidden_dim, hidden_dim * 3, 3, padding=1)

    def forward(self, g16, g8, g4, h):
        g = (self.g16_conv(g16) + self.g8_conv(resize_objects(g8, 0.5, "area"))
             + self.g4_conv(resize_objects(g4, 0.25, "area")))
        return gated_state_update(self.transform(torch.cat([g, h], 2)), h, self.hidden_dim)


class UpsampleBlock(nn.Module):
    def __init__(self, skip_dim, g_up_dim, g_out_dim):
        super().__init__()
        self.skip_conv = nn.Conv2d(skip_dim, g_up_dim, 3, padding=1)
        self.out_conv = GroupResBlock(g_up_dim, g_out_dim)

    def forward(self, skip, g):
        return self.out_conv(broadcast_add(self.skip_conv(skip), resize_objects(g, 2, "bilinear")))
