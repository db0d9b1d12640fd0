"""The MatAnyone / MatAnyone 2 network: Cutie's encoders, memory readout path and object
transformer, a decoder extended to full resolution with an alpha head, and an uncertainty head
that gates the memory readout against the previous frame's mask value.

Module and attribute names are the checkpoints' key names (both releases share them), so the
official files load with strict key matching. The released networks are single-object: their
mask encoder and pixel fuser have no "other objects" input; loading widens those weights by a
zero channel so Cutie's modules serve unchanged and every object is matted independently.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ...network.blocks import GConv2D, fold_objects, gated_state_update, resize_objects, unfold_objects
from ...network.cutie import CutieKeyProjection
from ...network.cutie_blocks import (FeatureProcessor, MaskEncoder, PixelFuser, UpsampleBlock,
                                     full_precision, object_chunks)
from ...network.cutie_transformer import ObjectSummarizer, ObjectTransformer
from ...network.features import KeyFeatures
from ...network.resnet import RESNET_LAYOUTS, ResNetTrunk

# Image features the decoder takes skips from, widest first: f16, f8, f4, f2 (stem) and f1
# (the normalised image itself).
MS_DIMS = (1024, 512, 256, 64, 3)
UP_DIMS = (256, 128, 128, 64, 16)


class FullScaleSensoryUpdater(nn.Module):
    """Sensory update from all five decoder scales (stride 16 down to 1, the finest with the raw
    alpha logit appended), each area-pooled to stride 16, projected and summed, then the GRU."""

    def __init__(self, g_dims, mid_dim, sensory_dim):
        super().__init__()
        self.hidden_dim = sensory_dim
        for name, dim in zip(("g16_conv", "g8_conv", "g4_conv", "g2_conv", "g1_conv"), g_dims):
            setattr(self, name, GConv2D(dim, mid_dim, 1))
        self.transform = GConv2D(mid_dim + sensory_dim, sensory_dim * 3, 3, padding=1)

    def forward(self, scales, h):
        convs = (self.g16_conv, self.g8_conv, self.g4_conv, self.g2_conv, self.g1_conv)
        g = convs[0](scales[0])
        for i, (conv, x) in enumerate(zip(convs[1:], scales[1:]), start=1):
            g = g + conv(resize_objects(x, 1 / 2 ** i, "area"))
        with full_precision(h):
            g, h = g.float(), h.float()
            return gated_state_update(self.transform(torch.cat([g, h], 2)), h, self.hidden_dim)


class MatteDecoder(nn.Module):
    """Readout -> per-object raw alpha at full resolution (and the sensory update). The
    segmentation head ``pred_seg`` is part of the checkpoints but used only in training."""

    def __init__(self, ms_dims=MS_DIMS, up_dims=UP_DIMS, sensory_dim=256):
        super().__init__()
        self.sensory_update = FullScaleSensoryUpdater([*up_dims[:4], up_dims[4] + 1], sensory_dim, sensory_dim)
        self.decoder_feat_proc = FeatureProcessor(ms_dims[1:], up_dims[:-1])
        self.up_16_8 = UpsampleBlock(up_dims[0], up_dims[1])
        self.up_8_4 = UpsampleBlock(up_dims[1], up_dims[2])
        self.up_4_2 = UpsampleBlock(up_dims[2], up_dims[3])
        self.up_2_1 = UpsampleBlock(up_dims[3], up_dims[4])
        self.pred_seg = nn.Conv2d(up_dims[-1], 1, 3, padding=1)
        self.pred_mat = nn.Conv2d(up_dims[-1], 1, 3, padding=1)

    def forward(self, skips, readout, sensory, update_sensory, chunk_size=-1):
        """skips ``(f8, f4, f2, f1)``; readout ``[B,N,C,h,w]`` -> (new sensory or None, raw alpha
        logits ``[B,N,16h,16w]`` float32, not clamped: the sensory update sees them raw)."""
        f8, f4, f2, f1 = self.decoder_feat_proc(skips)
        logits, sensories = [], []
        for lo, hi in object_chunks(readout.shape[1], chunk_size):  # objects are independent
            p16 = readout[:, lo:hi]
            batch_size, n = p16.shape[:2]
            p8 = self.up_16_8(p16, f8)
            p4 = self.up_8_4(p8, f4)
            p2 = self.up_4_2(p4, f2)
            p1 = self.up_2_1(p2, f1)
            with full_precision(p1):
                raw = unfold_objects(self.pred_mat(F.relu(fold_objects(p1).float())), batch_size, n)
            logits.append(raw[:, :, 0])
            if update_sensory:
                g1 = torch.cat([p1, raw.to(p1.dtype)], 2)
                sensories.append(self.sensory_update([p16, p8, p4, p2, g1], sensory[:, lo:hi]))
        new_sensory = torch.cat(sensories, 1) if update_sensory else None
        return new_sensory, torch.cat(logits, 1)


class UncertaintyHead(nn.Module):
    """Per stride-16 pixel, how much to trust the memory readout over the previous frame's mask
    value, from both frames' pixel features, the previous alpha and the readout's difference to
    the previous mask value. Returns logits (the gate is their sigmoid)."""

    def __init__(self, pixel_dim=256, value_dim=256):
        super().__init__()
        self.conv1x1_v2 = nn.Conv2d(pixel_dim * 2 + 1 + value_dim, 64, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv3x3 = nn.Conv2d(64, 32, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.conv3x3_out = nn.Conv2d(32, 1, 3, padding=1, bias=False)

    def forward(self, last_pix_feat, pix_feat, last_alpha, value_diff):
        """last_alpha ``[B,1,H,W]`` at any multiple of the feature size."""
        last_alpha = F.interpolate(last_alpha, size=pix_feat.shape[-2:], mode="area")
        x = torch.cat([last_pix_feat, pix_feat, last_alpha.to(pix_feat.dtype), value_diff], 1)
        x = F.relu(self.bn1(self.conv1x1_v2(x)))
        x = F.relu(self.bn2(self.conv3x3(x)))
        return self.conv3x3_out(x)


class MatAnyoneNetwork(nn.Module):
    """MatAnyone (and MatAnyone 2, identical network) behind the model-family interface.

    Features handed back by :meth:`encode_key`: ``(f16, f8, f4, pix_feat, f2, f1)``; f1 is the
    padded normalised image, which the mask encoder also needs."""

    family = "matanyone"
    stride = 16
    pads_in_rgb = True
    independent_objects = True   # each object's alpha is its own: mattes overlap, never renormalised
    # Test-time augmentation averages the variants and writes the average to every variant's
    # memory; the warm-up instead rewrites a variant's memory from its own alpha 11 times, so the
    # variants would part at every first keyframe.
    tta_refusal = ("tta_flip / tta_scales: test-time augmentation is not available with MatAnyone (each "
                   "variant would refine its first keyframe with a warm-up of its own, so they would not share "
                   "one matte); set tta_flip off and leave tta_scales empty")

    def __init__(self, key_dim=64, value_dim=256, sensory_dim=256, pixel_dim=256, embed_dim=256,
                 num_queries=16, num_blocks=3, ff_dim=2048, num_heads=8, up_dims=UP_DIMS):
        super().__init__()
        self._dims = {"key_dim": key_dim, "value_dim": value_dim, "sensory_dim": sensory_dim,
                      "pixel_dim": pixel_dim, "embed_dim": embed_dim, "num_queries": num_queries,
                      "num_blocks": num_blocks, "ff_dim": ff_dim, "up_dims": list(up_dims)}
        self.sensory_dim = sensory_dim
        self.pixel_encoder = ResNetTrunk(*RESNET_LAYOUTS["resnet50"], in_ch=3, first_stage="res2")
        self.pix_feat_proj = nn.Conv2d(MS_DIMS[0], pixel_dim, 1)
        self.key_proj = CutieKeyProjection(MS_DIMS[0], pixel_dim, key_dim)
        self.mask_encoder = MaskEncoder(pixel_dim, value_dim, sensory_dim, 2)
        self.mask_decoder = MatteDecoder(MS_DIMS, list(up_dims), sensory_dim)
        self.pixel_fuser = PixelFuser(pixel_dim, value_dim, sensory_dim, embed_dim, 2)
        self.object_transformer = ObjectTransformer(embed_dim, num_queries, num_blocks, ff_dim, num_heads)
        self.object_summarizer = ObjectSummarizer(value_dim, embed_dim, num_queries)
        self.temp_sparity = UncertaintyHead(pixel_dim, value_dim)

    @property
    def dims(self):
        return dict(self._dims)

    def encode_key(self, image, need_shrinkage=True, need_selection=True):
        """image ``[B,3,H,W]`` normalised and padded -> key features; the stem's output (stride
        2, before max-pooling) and the image are kept as the decoder's finest skips."""
        enc = self.pixel_encoder
        f2 = enc.relu(enc.bn1(enc.conv1(image)))
        f4 = enc.res2(enc.maxpool(f2))
        f8 = enc.layer2(f4)
        f16 = enc.layer3(f8)
        key, shrinkage, selection = self.key_proj(f16, need_shrinkage, need_selection)
        return KeyFeatures(key, shrinkage, selection, (f16, f8, f4, self.pix_feat_proj(f16), f2, image))

    def encode_mask(self, image, features, sensory, masks, deep_update=True, chunk_size=-1):
        """masks ``[B,N,H,W]`` (each object's alpha, independent of the others) -> value
        ``[B,N,Cv,h,w]``, sensory (deep-updated when asked, float32) and object summaries."""
        value, sensory = self.mask_encoder(image, features[3], sensory, masks, deep_update, chunk_size)
        return value, sensory, self.object_summarizer(masks, value)

    def gate(self, last_pix_feat, pix_feat, last_alpha, readout, last_value):
        """The uncertainty-gated readout: ``readout * p + last_value * (1 - p)`` per object,
        ``p = sigmoid(head(...))``. readout, last_value ``[B,n,Cv,h,w]``; last_alpha ``[B,n,H,W]``."""
        b, n = readout.shape[:2]
        rep = (lambda x: x.repeat_interleave(n, 0))   # image-level maps, once per object
        logits = self.temp_sparity(rep(last_pix_feat), rep(pix_feat), fold_objects(last_alpha.unsqueeze(2)),
                                   fold_objects(readout - last_value))
        p = torch.sigmoid(unfold_objects(logits, b, n))
        return readout * p + last_value * (1 - p)

    def read_objects(self, features, visual_readout, sensory, last_mask, object_memory):
        """As Cutie: pixel fusion with sensory memory and the last alpha, then the object
        transformer with these objects' memory ``[B,n,Q,C+1]``, but each object on its own: the
        transformer's foreground masks compare an object with the others, and the single-object
        network only ever saw its own object (the official runs one object per pass)."""
        fused = self.pixel_fuser(features[3], visual_readout, sensory, last_mask)
        b, n = fused.shape[:2]
        alone = self.object_transformer(fused.reshape(b * n, 1, *fused.shape[2:]),
                                        object_memory.reshape(b * n, 1, 1, *object_memory.shape[2:]))
        return alone.reshape(b, n, *alone.shape[2:])

    def decode(self, features, readout, sensory, update_sensory, chunk_size=-1):
        """-> (new sensory or None, raw alpha ``[B,N,H,W]`` at full padded resolution)."""
        f16, f8, f4, _, f2, f1 = features
        return self.mask_decoder((f8, f4, f2, f1), readout, sensory, update_sensory, chunk_size)

    def init_hidden(self, batch_size, num_objects, grid_hw, device):
        return torch.zeros(batch_size, num_objects, self.sensory_dim, *grid_hw, device=device)
