"""The SAM 2.1 network: image encoder, SAM heads, memory attention, memory encoder and the
object-pointer parts, with the parameter names of Meta's checkpoints.

The four released sizes differ only in the Hiera trunk (:data:`SIZES`, from the official
``configs/sam2.1/*.yaml``); every other part is the same. The image size ``S`` is a setting
(1024 as released): frames are resized to ``S x S``, the stride-16 grid is ``S/16``.

Methods are the per-object steps of the tracker, batch size 1 unless said otherwise:
:meth:`embed_image`, :meth:`sam_heads`, :meth:`mask_as_output`, :meth:`attend_memory`,
:meth:`encode_memory`.
"""
import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import image_size_problem
from .heads import MaskDecoder, PromptEncoder, choose_masks
from .hiera import FpnNeck, Hiera, ImageEncoder
from .layers import MLP, sine_1d, sine_table
from .memory_net import MemoryAttention, MemoryEncoder

NO_OBJECT_SCORE = -1024.0   # logits of every mask of an object judged absent
MASK_OUT_SCALE, MASK_OUT_BIAS = 20.0, -10.0  # a binary mask as logits (and the memory input)
NUM_MASKMEM = 7              # the prompt frames' slot + 6 previous frames
MAX_POINTERS = 16


@dataclass(frozen=True)
class Sam2Size:
    name: str
    embed_dim: int
    heads: int
    stages: tuple
    global_blocks: tuple
    window_spec: tuple
    bkg_size: tuple


SIZES = {
    "tiny": Sam2Size("tiny", 96, 1, (1, 2, 7, 2), (5, 7, 9), (8, 4, 14, 7), (7, 7)),
    "small": Sam2Size("small", 96, 1, (1, 2, 11, 2), (7, 10, 13), (8, 4, 14, 7), (7, 7)),
    "base_plus": Sam2Size("base_plus", 112, 2, (2, 3, 16, 3), (12, 16, 20), (8, 4, 14, 7), (14, 14)),
    "large": Sam2Size("large", 144, 2, (2, 6, 36, 4), (23, 33, 43), (8, 4, 16, 8), (7, 7)),
}


class Sam2Network(nn.Module):
    family = "sam2"

    def __init__(self, size="tiny", image_size=1024):
        super().__init__()
        spec = SIZES[size]
        self.size = size
        self.image_size = int(image_size)
        trunk = Hiera(spec.embed_dim, spec.heads, spec.stages, spec.global_blocks, spec.window_spec, spec.bkg_size)
        self.image_encoder = ImageEncoder(trunk, FpnNeck(trunk.channels))
        dim, mem_dim = 256, 64
        self.hidden_dim, self.mem_dim = dim, mem_dim
        self.memory_attention = MemoryAttention(dim, mem_dim)
        self.memory_encoder = MemoryEncoder(dim, mem_dim)
        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(NUM_MASKMEM, 1, 1, mem_dim))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, dim))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, dim))
        self.no_obj_ptr = nn.Parameter(torch.zeros(1, dim))
        self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, mem_dim))
        self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        self.sam_prompt_encoder = PromptEncoder(dim)
        self.sam_mask_decoder = MaskDecoder(dim)
        self.obj_ptr_proj = MLP(dim, dim, dim, 3)
        self.obj_ptr_tpos_proj = nn.Linear(dim, mem_dim)

    @property
    def grid(self):
        return self.image_size // 16

    def at_image_size(self, image_size):
        """This network resizing frames to ``image_size`` instead: the same modules and weights,
        shared (itself when the size is its own)."""
        if image_size == self.image_size:
            return self
        problem = image_size_problem(image_size)
        if problem:
            raise ValueError(problem)
        view = copy.copy(self)   # a new attribute dict over the same submodules and parameters
        view.image_size = int(image_size)
        return view

    # ------------------------------------------------------------------ image
    def embed_image(self, image):
        """Features of normalised ``[B,3,S,S]`` images: ``(stride-16 map [B,256,S/16,S/16], its
        sine positions [1,256,..], high-res maps for the decoder [stride 4, stride 8])``."""
        s4, s8, s16 = self.image_encoder(image)
        high_res = [self.sam_mask_decoder.conv_s0(s4), self.sam_mask_decoder.conv_s1(s8)]
        pos = sine_table(self.hidden_dim, s16.shape[-2], s16.shape[-1], s16.device).to(s16.dtype)
        return s16, pos, high_res

    def encode_key(self, image, need_shrinkage=True, need_selection=True):
        """The stride-16 features of normalised images at any size (resized to ``S x S``) as
        keys, with neutral shrinkage and selection: what Suggest Frames compares frames by."""
        from ...network.features import KeyFeatures
        s = self.image_size
        if image.shape[-2:] != (s, s):
            image = F.interpolate(image, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        key = self.image_encoder(image)[-1]
        ones = key.new_ones(key.shape[0], 1, *key.shape[-2:])
        return KeyFeatures(key, ones if need_shrinkage else None,
                           torch.ones_like(key) if need_selection else None, None)

    @property
    def dims(self):
        return {"size": self.size, "image_size": self.image_size}

    # -------------------------------------------------------------- SAM heads
    def decode(self, feat, high_res, coords=None, labels=None, mask_logits=None):
        """The raw decoder outputs for prompts (see :class:`.heads.MaskDecoder`).
        ``coords``/``labels``: ``[B,P,2]``/``[B,P]`` in model pixels (``None``: no point);
        ``mask_logits``: ``[B,1,S/4,S/4]`` (resized with antialiasing if it is not)."""
        pe = self.sam_prompt_encoder
        b = 1 if coords is None else coords.shape[0]
        if coords is None:
            coords = torch.zeros(b, 1, 2, device=feat.device)
            labels = -torch.ones(b, 1, dtype=torch.int32, device=feat.device)
        sparse = pe.embed_points(coords, labels, self.image_size)
        if mask_logits is not None and mask_logits.shape[-1] != 4 * self.grid:
            mask_logits = F.interpolate(mask_logits.float(), size=(4 * self.grid,) * 2, mode="bilinear",
                                        align_corners=False, antialias=True)
        dense = pe.embed_mask(mask_logits, self.grid)
        return self.sam_mask_decoder(feat, pe.dense_pe(self.grid), sparse, dense, high_res)

    def sam_heads(self, feat, high_res, coords=None, labels=None, mask_logits=None, multimask=False):
        """One object's mask on one frame, as the tracker uses it: ``(low-res logits
        [1,1,S/4,S/4], object pointer [1,256], object score [1,1], chosen IoU, all IoUs)``.
        An absent object (score <= 0) gets :data:`NO_OBJECT_SCORE` masks and the no-object
        pointer."""
        masks, ious, tokens, score = self.decode(feat, high_res, coords, labels, mask_logits)
        masks, ious = choose_masks(masks, ious, multimask)
        # The pointer comes from token 0 unless the multimask choice picks a token.
        tokens = tokens[:, 1:] if multimask else tokens[:, 0:1]
        present = score > 0
        masks = torch.where(present[:, None, None], masks, NO_OBJECT_SCORE).float()
        token = tokens[:, 0]
        if multimask:
            best = torch.argmax(ious, dim=-1)
            rows = torch.arange(masks.shape[0], device=masks.device)
            masks, token, iou = masks[rows, best].unsqueeze(1), tokens[rows, best], ious[rows, best]
        else:
            iou = ious[:, 0]
        pointer = self.obj_ptr_proj(token)
        weight = present.float()
        pointer = weight * pointer + (1 - weight) * self.no_obj_ptr
        return masks, pointer, score, iou, ious

    def mask_as_output(self, feat, high_res, mask):
        """A mask prompt (``[1,1,S,S]`` 0/1) taken as the output (SAM 2.1's setting): logits
        ``mask*20-10``, the pointer from the heads run on the mask, score +10 or -10."""
        mask = mask.float()
        high = mask * MASK_OUT_SCALE + MASK_OUT_BIAS
        low = F.interpolate(high, size=(high.shape[-2] // 4, high.shape[-1] // 4), mode="bilinear",
                            align_corners=False, antialias=True)
        _, pointer, _, _, _ = self.sam_heads(feat, high_res, mask_logits=self.mask_downsample(mask))
        present = torch.any(mask.flatten(1) > 0.0, dim=1)[..., None].float()
        score = MASK_OUT_SCALE * present + MASK_OUT_BIAS
        pointer = present * pointer + (1 - present) * self.no_obj_ptr
        return low, pointer, score

    # ------------------------------------------------------------------ memory
    def attend_memory(self, feat, pos, memory, memory_pos, num_pointer_tokens):
        """The stride-16 map conditioned on memory tokens ``[1, M, 64]`` (spatial memories,
        then ``num_pointer_tokens`` pointer tokens), as ``[1,256,h,w]``."""
        b, c, h, w = feat.shape
        curr = feat.flatten(2).transpose(1, 2)
        curr_pos = pos.flatten(2).transpose(1, 2).expand(b, -1, -1)
        out = self.memory_attention(curr, curr_pos, memory, memory_pos, num_pointer_tokens)
        return out.transpose(1, 2).reshape(b, c, h, w)

    def encode_memory(self, feat, high_res_logits, score, binarize):
        """Memory features ``[1,64,h,w]`` (float32, not yet rounded) of a mask given as logits
        at image size; the no-object code is added where the object is absent."""
        mask = (high_res_logits > 0).float() if binarize else torch.sigmoid(high_res_logits)
        mask = mask * MASK_OUT_SCALE + MASK_OUT_BIAS
        features, pos = self.memory_encoder(feat, mask)
        absent = 1 - (score > 0).float()
        features = features + absent[..., None, None] * self.no_obj_embed_spatial[..., None, None]
        return features, pos

    def pointer_positions(self, offsets, num_frames):
        """Temporal codes ``[N, 64]`` of object pointers at signed frame ``offsets``."""
        span = max(min(num_frames, MAX_POINTERS) - 1, 1)
        pos = torch.tensor(offsets, dtype=torch.float32, device=self.no_obj_ptr.device)
        return self.obj_ptr_tpos_proj(sine_1d(pos / span, self.hidden_dim))
