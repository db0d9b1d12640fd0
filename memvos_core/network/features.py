"""The seam between a network family and the memory engine.

A network family (XMem today, Cutie later) provides:

* ``encode_key(image, need_shrinkage, need_selection) -> KeyFeatures``
* ``encode_value(image, features, hidden, masks, deep_update) -> (value, hidden)``
* ``decode(features, readout, hidden, update_hidden) -> (hidden or None, logits)``
* ``init_hidden(batch, num_objects, grid_hw, device)``, ``stride``, ``dims``, ``family``.

The engine only ever touches keys, shrinkage, selection, values and the hidden state; the
multi-scale ``features`` are opaque to it and handed back to the same network.
"""
from typing import Any, NamedTuple, Optional

import torch


class KeyFeatures(NamedTuple):
    key: torch.Tensor                   # [B, Ck, h, w]
    shrinkage: Optional[torch.Tensor]   # [B, 1, h, w], >= 1
    selection: Optional[torch.Tensor]   # [B, Ck, h, w], in (0, 1)
    features: Any                       # network-private multi-scale features
