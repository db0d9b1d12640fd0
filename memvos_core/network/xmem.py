"""The XMem network (spec §2–3): key encoder, key projection, value encoder and decoder.

Module and attribute names are the checkpoint's key names, so the official state dict loads
with strict key matching.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import FeatureFusionBlock, HiddenReinforcer, HiddenUpdater, UpsampleBlock, broadcast_cat
from .blocks import fold_objects, unfold_objects
from .features import KeyFeatures
from .resnet import BasicBlock, Bottleneck, make_stage


class KeyEncoder(nn.Module):
    """ResNet-50 to layer3: stride-16, 8 and 4 features of the image."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.res2 = make_stage(Bottleneck, 64, 64, 3, 1)
        self.layer2 = make_stage(Bottleneck, 256, 128, 4, 2)
        self.layer3 = make_stage(Bottleneck, 512, 256, 6, 2)

    def forward(self, image):
        x = self.maxpool(self.relu(self.bn1(self.conv1(image))))
        f4 = self.res2(x)
        f8 = self.layer2(f4)
        f16 = self.layer3(f8)
        return f16, f8, f4


class KeyProjection(nn.Module):
    def __init__(self, in_dim, key_dim):
        super().__init__()
        self.key_proj = nn.Conv2d(in_dim, key_dim, 3, padding=1)
        self.d_proj = nn.Conv2d(in_dim, 1, 3, padding=1)
        self.e_proj = nn.Conv2d(in_dim, key_dim, 3, padding=1)

    def forward(self, f16, need_shrinkage, need_selection):
        shrinkage = self.d_proj(f16) ** 2 + 1 if need_shrinkage else None
        selection = torch.sigmoid(self.e_proj(f16)) if need_selection else None
        return self.key_proj(f16), shrinkage, selection


class ValueEncoder(nn.Module):
    """ResNet-18 over [RGB; object mask; other objects], fused with the image's f16."""

    def __init__(self, value_dim, hidden_dim):
        super().__init__()
        self.conv1 = nn.Conv2d(5, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = make_stage(BasicBlock, 64, 64, 2, 1)
        self.layer2 = make_stage(BasicBlock, 64, 128, 2, 2)
        self.layer3 = make_stage(BasicBlock, 128, 256, 2, 2)
        self.fuser = FeatureFusionBlock(1024, 256, value_dim, value_dim)
        self.hidden_reinforce = HiddenReinforcer(value_dim, hidden_dim) if hidden_dim > 0 else None

    def forward(self, image, f16, hidden, masks, deep_update):
        batch_size, num_objects = masks.shape[:2]
        others = other_objects(masks)
        g = broadcast_cat(image, torch.stack([masks, others], 2))
        g = self.relu(self.maxpool(self.bn1(self.conv1(fold_objects(g)))))
        g = self.layer3(self.layer2(self.layer1(g)))
        g = self.fuser(f16, unfold_objects(g, batch_size, num_objects))
        if deep_update and self.hidden_reinforce is not None:
            hidden = self.hidden_reinforce(g, hidden)
        return g, hidden


def other_objects(masks):
    """Per object, the plain (unclamped) sum of every other object's mask (spec §3.3)."""
    num_objects = masks.shape[1]
    if num_objects == 1:
        return torch.zeros_like(masks)
    # Summed over the others rather than total-minus-self, so rounding matches the reference.
    return torch.cat([masks[:, [j for j in range(num_objects) if j != i]].sum(1, keepdim=True)
                      for i in range(num_objects)], 1)


class Decoder(nn.Module):
    def __init__(self, value_dim, hidden_dim):
        super().__init__()
        self.fuser = FeatureFusionBlock(1024, value_dim + hidden_dim, 512, 512)
        self.hidden_update = HiddenUpdater([512, 256, 256 + 1], 256, hidden_dim) if hidden_dim > 0 else None
        self.up_16_8 = UpsampleBlock(512, 512, 256)
        self.up_8_4 = UpsampleBlock(256, 256, 256)
        self.pred = nn.Conv2d(256, 1, 3, padding=1)

    def forward(self, f16, f8, f4, hidden, readout, update_hidden):
        batch_size, num_objects = readout.shape[:2]
        g = readout if self.hidden_update is None else torch.cat([readout, hidden], 2)
        g16 = self.fuser(f16, g)
        g8 = self.up_16_8(f8, g16)
        g4 = self.up_8_4(f4, g8)
        logits = self.pred(F.relu(fold_objects(g4)))
        new_hidden = None
        if update_hidden and self.hidden_update is not None:
            # Joined as 4-D maps: a 5-D cat would copy channels-last features into NCHW.
            g4 = unfold_objects(torch.cat([fold_objects(g4), logits], 1), batch_size, num_objects)
            new_hidden = self.hidden_update(g16, g8, g4, hidden)
        logits = F.interpolate(logits, scale_factor=4, mode="bilinear", align_corners=False)
        return new_hidden, logits.view(batch_size, num_objects, *logits.shape[-2:])


class XMemNetwork(nn.Module):
    """XMem behind the model-family interface the engine uses (see ``features.py``)."""

    family = "xmem"
    stride = 16

    def __init__(self, key_dim=64, value_dim=512, hidden_dim=64):
        super().__init__()
        self.key_dim, self.value_dim, self.hidden_dim = key_dim, value_dim, hidden_dim
        self.key_encoder = KeyEncoder()
        self.value_encoder = ValueEncoder(value_dim, hidden_dim)
        self.key_proj = KeyProjection(1024, key_dim)
        self.decoder = Decoder(value_dim, hidden_dim)

    @property
    def dims(self):
        return {"key_dim": self.key_dim, "value_dim": self.value_dim, "hidden_dim": self.hidden_dim}

    def encode_key(self, image, need_shrinkage=True, need_selection=True):
        """image ``[B,3,H,W]`` normalised, H and W multiples of 16."""
        f16, f8, f4 = self.key_encoder(image)
        key, shrinkage, selection = self.key_proj(f16, need_shrinkage, need_selection)
        return KeyFeatures(key, shrinkage, selection, (f16, f8, f4))

    def encode_value(self, image, features, hidden, masks, deep_update):
        """masks ``[B,N,H,W]`` object probabilities -> value ``[B,N,Cv,h,w]`` and hidden."""
        return self.value_encoder(image, features[0], hidden, masks, deep_update)

    def decode(self, features, readout, hidden, update_hidden):
        """readout ``[B,N,Cv,h,w]`` -> (new hidden or None, per-object logits ``[B,N,H,W]``)."""
        return self.decoder(*features, hidden, readout, update_hidden)

    def init_hidden(self, batch_size, num_objects, grid_hw, device):
        return torch.zeros(batch_size, num_objects, self.hidden_dim, *grid_hw, device=device)
