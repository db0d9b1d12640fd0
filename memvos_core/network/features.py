"""What a network's key encoder returns (the engine's side of it is ``memvos_core.families``).

Every family's network provides ``encode_key(image, need_shrinkage, need_selection) ->
KeyFeatures``; the memory only ever touches keys, shrinkage and selection, and the multi-scale
``features`` are opaque to it and handed back to the same network (XMem: ``(f16, f8, f4)``;
Cutie: ``(f16, f8, f4, pix_feat)``).
"""
from typing import Any, NamedTuple, Optional

import torch


class KeyFeatures(NamedTuple):
    key: torch.Tensor                   # [B, Ck, h, w]
    shrinkage: Optional[torch.Tensor]   # [B, 1, h, w], >= 1
    selection: Optional[torch.Tensor]   # [B, Ck, h, w], in (0, 1)
    features: Any                       # network-private multi-scale features
