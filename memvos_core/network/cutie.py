"""The Cutie network (cutie-spec §2): pixel encoder, key projection, mask encoder, pixel fuser,
object transformer and summarizer, mask decoder.

Module and attribute names are the checkpoint's key names, so the official state dict loads with
strict key matching (the training-only ``aux_computer`` head is dropped on loading). Images come
in normalised and padded like XMem's; Cutie pads before normalising, which the engine's padding
reproduces (the family's ``encode_keys`` and model pad so).
"""
import torch
import torch.nn as nn

from .cutie_blocks import MaskDecoder, MaskEncoder, PixelFuser
from .cutie_transformer import ObjectSummarizer, ObjectTransformer
from .features import KeyFeatures
from .resnet import RESNET_LAYOUTS, ResNetTrunk
from .xmem import KeyProjection

VARIANTS = {"base": ("resnet50", (1024, 512, 256)), "small": ("resnet18", (256, 128, 64))}


class CutieKeyProjection(KeyProjection):
    """XMem's key/shrinkage/selection heads behind a 1x1 projection of the stride-16 feature."""

    def __init__(self, in_dim, pixel_dim, key_dim):
        super().__init__(pixel_dim, key_dim)
        self.pix_feat_proj = nn.Conv2d(in_dim, pixel_dim, 1)

    def forward(self, f16, need_shrinkage, need_selection):
        return super().forward(self.pix_feat_proj(f16), need_shrinkage, need_selection)


class CutieNetwork(nn.Module):
    """Cutie (base or small) behind the model-family interface (see ``memvos_core.families``)."""

    family = "cutie"
    stride = 16

    def __init__(self, variant="base", key_dim=64, value_dim=256, sensory_dim=256, pixel_dim=256,
                 embed_dim=256, num_queries=16, num_blocks=3, ff_dim=2048, num_heads=8,
                 up_dims=(256, 128, 128), mask_channels=2):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"Cutie variant {variant!r} is not one of {', '.join(VARIANTS)}")
        backbone, ms_dims = VARIANTS[variant]
        self.variant = variant
        self._dims = {"variant": variant, "key_dim": key_dim, "value_dim": value_dim,
                      "sensory_dim": sensory_dim, "pixel_dim": pixel_dim, "embed_dim": embed_dim,
                      "num_queries": num_queries, "num_blocks": num_blocks, "ff_dim": ff_dim,
                      "up_dims": list(up_dims)}
        self.sensory_dim = sensory_dim
        self.pixel_encoder = ResNetTrunk(*RESNET_LAYOUTS[backbone], in_ch=3, first_stage="res2")
        self.pix_feat_proj = nn.Conv2d(ms_dims[0], pixel_dim, 1)
        self.key_proj = CutieKeyProjection(ms_dims[0], pixel_dim, key_dim)
        self.mask_encoder = MaskEncoder(pixel_dim, value_dim, sensory_dim, mask_channels)
        self.mask_decoder = MaskDecoder(ms_dims, list(up_dims), sensory_dim)
        self.pixel_fuser = PixelFuser(pixel_dim, value_dim, sensory_dim, embed_dim, mask_channels)
        self.object_transformer = ObjectTransformer(embed_dim, num_queries, num_blocks, ff_dim, num_heads)
        self.object_summarizer = ObjectSummarizer(value_dim, embed_dim, num_queries)

    @property
    def dims(self):
        return dict(self._dims)

    # ----------------------------------------------------------- per frame
    def encode_key(self, image, need_shrinkage=True, need_selection=True):
        """image ``[B,3,H,W]`` normalised and padded -> key, shrinkage, selection and the private
        features ``(f16, f8, f4, pix_feat)``."""
        f16, f8, f4 = self.pixel_encoder(image)
        key, shrinkage, selection = self.key_proj(f16, need_shrinkage, need_selection)
        return KeyFeatures(key, shrinkage, selection, (f16, f8, f4, self.pix_feat_proj(f16)))

    def encode_mask(self, image, features, sensory, masks, deep_update=True, chunk_size=-1):
        """masks ``[B,N,H,W]`` (this frame's probabilities of every object) -> value
        ``[B,N,Cv,h,w]``, sensory (deep-updated, float32) and object summaries ``[B,N,Q,C+1]``."""
        value, sensory = self.mask_encoder(image, features[3], sensory, masks, deep_update, chunk_size)
        return value, sensory, self.object_summarizer(masks, value)

    def read_objects(self, features, visual_readout, sensory, last_mask, object_memory):
        """What memory gives the decoder for some objects read together (one bucket, or one chunk
        of it): the pixel readout fused with sensory memory and the last mask, then refined by
        the object transformer with these objects' memory ``[B,n,Q,C+1]``."""
        fused = self.pixel_fuser(features[3], visual_readout, sensory, last_mask)
        return self.object_transformer(fused, object_memory.unsqueeze(2))

    def decode(self, features, readout, sensory, update_sensory, chunk_size=-1):
        """readout ``[B,N,C,h,w]`` -> (new sensory or None, logits ``[B,N,4h,4w]`` at stride 4)."""
        return self.mask_decoder(features[1], features[2], readout, sensory, update_sensory, chunk_size)

    def init_hidden(self, batch_size, num_objects, grid_hw, device):
        return torch.zeros(batch_size, num_objects, self.sensory_dim, *grid_hw, device=device)

