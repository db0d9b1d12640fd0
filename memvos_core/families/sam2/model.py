"""SAM 2.1 behind the engine's family interface.

Per object (objects are tracked independently, as in Meta's predictor):

* conditioning frames: every annotated frame of the object, kept for the whole shot (the
  pack's permanent keyframes). A keyframe's mask is the output on that frame (SAM 2.1's
  ``use_mask_input_as_output``), its pointer comes from the SAM heads run on the mask, its
  memory from the binarised mask. Keyframes put in before the pass (``add_permanent``) are
  read by every frame, also before they are reached, as the official predictor reads all
  prompts; their pointer is used from the frame they are reached on;
* recent frames: the last tracked frames' memory and pointers, only as many as the model
  reads (6 memories, 15 pointers), so host and device memory stay flat with shot length.

Frame positions are the engine's processing index, so a backward pass is the official reverse
tracking. The pointers' temporal code is normalised by ``min(shot length, 16) - 1`` and reads
the pointers of the last ``min(shot length, 16) - 1`` frames, as the official predictor does
with its video's frame count: the shot length is the engine's (the frames the propagation was
given, or what its caller says); unknown (a bare engine) counts as 16, exact from 16 frames.
Probabilities for the engine are the soft aggregation of the objects' sigmoids.
"""
import torch
import torch.nn.functional as F

from ...runtime.frames import aggregate
from ...memory.object_order import ObjectOrder
from ...network.features import KeyFeatures
from ..base import FamilyModel, Plan
from .network import MAX_POINTERS, NUM_MASKMEM
from .video import FrameOutput, attend_memory

_RECENT = max(NUM_MASKMEM - 1, MAX_POINTERS - 1)


class ObjectState:
    def __init__(self):
        self.cond = {}       # key -> [reached index or None, FrameOutput]; key: "p<n>" or "t<index>"
        self.recent = {}     # index -> FrameOutput


class Sam2Model(FamilyModel):
    family = "sam2"

    def __init__(self, network, config, device, precision, options):
        # The image size is a memory setting: the network at that size, sharing its weights.
        super().__init__(network.at_image_size(config.image_size), config, device, precision, options)
        self.object_ids = ObjectOrder()   # stable ids in order of appearance
        self.objects = {}        # id -> ObjectState
        self.pending = {}        # id -> FrameOutput of the frame being processed
        self.annotated = set()   # 1-based positions the current frame's mask annotates
        self.num_frames = MAX_POINTERS
        self.preloads = 0

    # ----------------------------------------------------------- per frame
    def pad(self, image):
        return image, (0, 0, 0, 0)   # resized to the network's square input in encode

    def plan(self, engine, mask_given, valid_labels, end):
        self._index = engine.curr_ti
        self.num_frames = min(engine.shot_length or MAX_POINTERS, MAX_POINTERS)
        n, known = engine.num_objects, len(self.object_ids)
        covers_all = valid_labels is None or set(valid_labels) >= set(range(1, n + 1))
        self.annotated = (set(valid_labels) if valid_labels is not None else set(range(1, n + 1))) if mask_given \
            else set()
        need_segment = not mask_given or (known > 0 and (n > known or not covers_all))
        return Plan(not end, need_segment, False, False)

    def _square(self, image):
        s = self.network.image_size
        if image.shape[-2:] == (s, s):
            return image
        down = image.shape[-2] > s or image.shape[-1] > s
        return F.interpolate(image, size=(s, s), mode="bilinear", align_corners=False, antialias=down)

    def encode(self, image, plan):
        with self.autocast():
            feat, pos, high_res = self.network.embed_image(self._square(image))
        b = feat.shape[0]
        # The frame's size travels with its features (frames may be encoded ahead, in batches).
        hw = torch.tensor([image.shape[-2:]], device=feat.device).expand(b, 2)
        return KeyFeatures(feat.float(), None, None, (pos.expand(b, -1, -1, -1), high_res[0].float(),
                                                      high_res[1].float(), hw))

    def encode_batch(self, images):
        return self.encode(images, None)

    def _conds(self, state):
        return [(reached, out) for reached, out in state.cond.values()]

    def read(self, feats):
        pos = feats.features[0]
        t = self._index
        with self.autocast():
            return {i: attend_memory(self.network, feats.key, pos, self._conds(self.objects[i]),
                                     self.objects[i].recent, t, self.num_frames).float()
                    for i in self.object_ids if self.objects[i].cond}

    def decode(self, feats, readout, plan):
        high_res = list(feats.features[1:3])
        h, w = (int(v) for v in feats.features[3][0])
        probs = []
        self.pending = {}
        for i in self.object_ids:
            if i not in readout:
                probs.append(torch.zeros(1, 1, h, w, device=feats.key.device))
                continue
            with self.autocast():
                low, pointer, score, iou, _ = self.network.sam_heads(readout[i], high_res, multimask=True)
            self.pending[i] = FrameOutput(low.float(), pointer.float(), score.float(), None, iou)
            up = F.interpolate(low.float(), size=(h, w), mode="bilinear", align_corners=False)
            probs.append(torch.sigmoid(up))
        return aggregate(torch.cat(probs, 0)[:, 0], dim=0)

    def add_objects(self, num_objects, grid_hw):
        for i in self.object_ids.grow_to(num_objects):
            self.objects[i] = ObjectState()

    def observe(self, prob):
        self._prob = prob

    def writes(self, plan, write_permanent):
        return plan.is_mem_frame or bool(self.annotated)

    def write(self, engine, work, write_memory, write_permanent):
        """Annotated objects: the frame becomes (or, for a keyframe put in before the pass, is
        marked reached as) one of their conditioning frames; the others keep their own output
        as a recent frame, its memory encoded from their sigmoid as the official tracker does."""
        t = engine.curr_ti
        feat = work.feats.key
        for j, i in enumerate(self.object_ids):
            state = self.objects[i]
            if j + 1 in self.annotated:
                preloaded = [k for k, (reached, _) in state.cond.items() if reached is None and k.startswith("p")]
                if not write_memory and preloaded:
                    state.cond[preloaded[0]][0] = t
                else:
                    out = self._mask_output(feat, work.feats.features[1:3], work.prob[j + 1] > 0.5)
                    state.cond[f"t{t}"] = [t, out]
                state.recent.pop(t, None)
            elif i in self.pending:
                out = self.pending[i]
                s = self.network.image_size
                high = F.interpolate(out.low, size=(s, s), mode="bilinear", align_corners=False)
                with self.autocast():
                    mem, _ = self.network.encode_memory(feat, high, out.score, binarize=False)
                out.memory = mem.float().to(torch.bfloat16)
                state.recent[t] = out
            for old in [f for f in state.recent if t - f >= _RECENT]:
                del state.recent[old]
        self.pending = {}

    def _mask_output(self, feat, high_res, mask):
        """A keyframe's mask (``[H,W]`` bool at the engine's size) as a conditioning output."""
        s = self.network.image_size
        m = mask.float()[None, None]
        if m.shape[-2:] != (s, s):
            m = (F.interpolate(m, size=(s, s), mode="bilinear", align_corners=False, antialias=True) >= 0.5).float()
        with self.autocast():
            low, pointer, score = self.network.mask_as_output(feat, list(high_res), m)
            high = F.interpolate(low.float(), size=(s, s), mode="bilinear", align_corners=False)
            mem, _ = self.network.encode_memory(feat, high, score, binarize=True)
        return FrameOutput(low.float(), pointer.float(), score.float(), mem.float().to(torch.bfloat16))

    def add_permanent(self, engine, image, mask, slot=None):
        """A keyframe put in before the pass: a conditioning frame of every object it holds
        (an object it leaves empty is marked absent there, as an empty mask prompt does)."""
        if slot is not None:
            raise ValueError("SAM 2.1's conditioning frames have no slots to rewrite: start a new propagation")
        self.add_objects(engine.num_objects, None)
        image, _ = self.pad(image.to(self.device))
        feats = self.encode(image.unsqueeze(0), None)
        key = f"p{self.preloads}"
        self.preloads += 1
        for j, i in enumerate(self.object_ids):
            self.objects[i].cond[key] = [None, self._mask_output(feats.key, feats.features[1:3], mask[j] > 0.5)]

    def delete_objects(self, positions):
        for i in self.object_ids.remove_at(positions):
            self.objects.pop(i, None)

    # ---------------------------------------------------------------- state
    @property
    def has_memory(self):
        return any(self.objects[i].cond for i in self.object_ids)

    def state(self):
        tensors, objects = {}, {}
        for i in self.object_ids:
            st = self.objects[i]
            objects[str(i)] = {"cond": [[k, r] for k, (r, _) in st.cond.items()], "recent": sorted(st.recent)}
            for k, (_, out) in st.cond.items():
                _put(tensors, f"cond.{i}.{k}", out)
            for t, out in st.recent.items():
                _put(tensors, f"recent.{i}.{t}", out)
        meta = {**self.object_ids.state(), "objects": objects, "preloads": self.preloads,
                "image_size": self.network.image_size}
        return tensors, meta

    def load_state(self, tensors, meta):
        made_at = meta.get("image_size", self.network.image_size)
        if made_at != self.network.image_size:
            raise ValueError(f"this propagation state was made at SAM 2.1 image_size {made_at}, not at the "
                             f"session's {self.network.image_size}: set image_size back to {made_at}, or "
                             "propagate again from the keyframes")
        self.object_ids = ObjectOrder.from_state(meta)
        self.preloads = meta.get("preloads", 0)
        self.objects = {}
        for i in self.object_ids:
            st, info = ObjectState(), meta["objects"][str(i)]
            for k, reached in info["cond"]:
                st.cond[k] = [reached, _get(tensors, f"cond.{i}.{k}")]
            for t in info["recent"]:
                st.recent[int(t)] = _get(tensors, f"recent.{i}.{t}")
            self.objects[i] = st


def _put(tensors, prefix, out):
    for name in ("low", "pointer", "score", "memory"):
        tensors[f"{prefix}.{name}"] = getattr(out, name)


def _get(tensors, prefix):
    return FrameOutput(*(tensors[f"{prefix}.{name}"] for name in ("low", "pointer", "score", "memory")))
