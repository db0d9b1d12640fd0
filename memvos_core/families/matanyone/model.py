"""MatAnyone behind the family interface: Cutie's memory and per-object state, plus what the
matting network adds (fixture README ``matanyone_parity``, "Runs and calling sequences"):

* an object's first annotation is closed as the official script closes its input mask
  (:mod:`.closing`), then refined by a warm-up on that frame: the frame is predicted
  ``WARMUP_STEPS`` times without reading the key-value memory (the previous mask value stands in
  for the readout), each time replacing the object's memory and object memory by the new alpha
  while its sensory state carries over; the frame's output is the last warm-up alpha;
* every memory read is gated per pixel by the uncertainty head against the previous frame's
  mask value, so the mask encoder runs on every frame (without touching the sensory state on
  frames that are not written);
* the output is each object's alpha (the raw full-resolution head clamped to [0, 1]) with the
  background ``prod(1 - alpha)``: objects are matted independently, no soft aggregation.
"""
import torch

from ..cutie.model import CutieModel, _unshared
from .closing import close_mask

# The official script prepends 10 copies of the first frame: 11 predictions of it in all.
WARMUP_STEPS = 11


def with_background(alpha):
    """``[1,N,H,W]`` alpha -> ``[N+1,H,W]`` with the background ``prod(1 - alpha)`` first."""
    return torch.cat([torch.prod(1 - alpha, dim=1, keepdim=True), alpha], 1)[0]


class MatAnyoneModel(CutieModel):
    family = "matanyone"

    def __init__(self, network, config, device, precision, options):
        super().__init__(network, config, device, precision, options)
        self.last_value = {}       # id -> [1, Cv, h, w]: the mask value of the previous frame
        self.last_pix_feat = None  # [1, C, h, w]: the previous frame's pixel feature
        self.warmed = set()        # ids whose first annotation has been warmed up
        self._decoded = None       # (feats, plan) of the frame being decoded, until observe()
        # id -> (annotation, warmed-up alpha) of its first keyframe: a keyframe committed to
        # permanent memory first (xmem++) is stepped again with the same annotation, and its
        # output must stay the warmed-up matte, not the hard annotation.
        self.refined = {}
        self._first = {}           # position -> an object's first annotation as given, until write()

    # ----------------------------------------------------------- per frame
    def read(self, feats):
        pix_feat = feats.features[3]

        def read_objects(ids, visual):
            last = self.last_mask[:, self.object_ids.positions(ids)]
            with self.autocast():
                visual = self.network.gate(self.last_pix_feat, pix_feat, last, visual,
                                           self._stack(self.last_value, ids))
                return self.network.read_objects(feats.features, visual, self._stack(self.sensory, ids), last,
                                                 self._stack(self.object_memory, ids))

        readout = self.memory.read(feats.key, feats.selection, read_objects)
        return torch.stack([readout[i] for i in self.object_ids], 1)

    def _decode(self, feats, readout, ids, update_sensory):
        with self.autocast():
            sensory, raw = self.network.decode(feats.features, readout, self._stack(self.sensory, ids),
                                               update_sensory, self.config.chunk_size)
        if update_sensory:
            self.sensory.update({i: sensory[:, j].float() for j, i in enumerate(ids)})
        return raw.float().clamp(0.0, 1.0)

    def decode(self, feats, readout, plan):
        self._decoded = (feats, plan)
        return with_background(self._decode(feats, readout, self.object_ids, plan.update_sensory))

    def annotate(self, prob, mask, valid_labels):
        """The named objects take the annotation's alpha as it is, the others keep theirs: mattes
        overlap, so one object's annotation does not erase another's."""
        alpha = mask.clone()
        self._first = {}
        for p in range(alpha.shape[0]):
            i = self.object_ids[p] if p < len(self.object_ids) else None
            named = valid_labels is None or (p + 1) in valid_labels
            if named and i in self.refined and torch.equal(self.refined[i][0], mask[p]):
                alpha[p] = self.refined[i][1]
            elif named and i not in self.warmed:
                # An object's first annotation, prepared as the official script prepares its mask.
                self._first[p] = mask[p]
                alpha[p] = close_mask(mask[p])
            elif not named and prob is not None and p < prob.shape[0] - 1:
                alpha[p] = prob[p + 1]
        return with_background(alpha.unsqueeze(0))

    def observe(self, prob):
        self.last_mask = prob[1:].unsqueeze(0)
        decoded, self._decoded = self._decoded, None
        if decoded is None:
            return
        feats, plan = decoded
        self.last_pix_feat = feats.features[3]
        if not plan.is_mem_frame:
            # Only the gate's "previous mask value" is refreshed: no write, no sensory update.
            self._encode(feats, self.object_ids, self.last_mask, deep_update=False)

    def _encode(self, feats, ids, alpha, deep_update):
        image = feats.features[5]
        with self.autocast():
            value, sensory, summaries = self.network.encode_mask(
                image, feats.features, self._stack(self.sensory, ids), alpha, deep_update, self.config.chunk_size)
        self.last_value.update({i: value[:, j].float() for j, i in enumerate(ids)})
        if deep_update:
            self.sensory.update({i: sensory[:, j].float() for j, i in enumerate(ids)})
        return value.float(), summaries

    def write(self, engine, work, write_memory, write_permanent):
        del write_memory
        ids, feats = self.object_ids, work.feats
        self.last_pix_feat = feats.features[3]
        value, summaries = self._encode(feats, ids, self.last_mask, deep_update=True)
        for j, i in enumerate(ids):
            new = summaries[:, j].float()
            self.object_memory[i] = self.object_memory[i] + new if i in self.object_memory else new
        self.memory.add(feats.key, feats.shrinkage, feats.selection, value, ids,
                        "all" if write_permanent else "first")
        fresh = [i for i in ids if i not in self.warmed]
        if fresh:
            # Remembered as given (before the closing): what a second step of this keyframe brings.
            annotations = [self._first.get(p, self.last_mask[0, p]) for p in self.object_ids.positions(fresh)]
            work.prob = self._warm_up(feats, fresh)
            refined = self.last_mask[0, self.object_ids.positions(fresh)]
            self.refined.update({i: (annotations[j], refined[j]) for j, i in enumerate(fresh)})
        self._first = {}

    def _warm_up(self, feats, ids):
        """Predict the annotated frame again and again from itself (fixture README, "First frame
        prediction") for objects annotated for the first time; returns the frame's new output."""
        positions = self.object_ids.positions(ids)
        others = [i for i in self.object_ids if i not in ids]
        for _ in range(WARMUP_STEPS):
            last = self.last_mask[:, positions]
            with self.autocast():
                readout = self.network.read_objects(feats.features, self._stack(self.last_value, ids),
                                                    self._stack(self.sensory, ids), last,
                                                    self._stack(self.object_memory, ids))
            alpha = self._decode(feats, readout, ids, True)
            last_mask = self.last_mask.clone()
            last_mask[:, positions] = alpha
            self.last_mask = last_mask
            # The frame replaces everything these objects had in memory and object memory.
            self.memory.purge_except(others)
            value, summaries = self._encode(feats, ids, alpha, deep_update=True)
            self.object_memory.update({i: summaries[:, j].float() for j, i in enumerate(ids)})
            self.memory.add(feats.key, feats.shrinkage, feats.selection, value, ids, "first")
        self.warmed.update(ids)
        return with_background(self.last_mask)

    def delete_objects(self, positions):
        gone = {self.object_ids[p] for p in positions}
        super().delete_objects(positions)
        for i in gone:
            self.last_value.pop(i, None)
            self.refined.pop(i, None)
        self.warmed -= gone

    # ---------------------------------------------------------------- state
    def state(self):
        tensors, meta = super().state()
        tensors.update({f"last_value.{i}": t for i, t in self.last_value.items()})
        if self.last_pix_feat is not None:
            tensors["last_pix_feat"] = self.last_pix_feat
        for i, (annotation, alpha) in self.refined.items():
            tensors[f"refined_annotation.{i}"], tensors[f"refined_alpha.{i}"] = annotation, alpha
        meta = {**meta, "warmed": sorted(self.warmed)}
        return _unshared(tensors), meta

    def load_state(self, tensors, meta):
        super().load_state(tensors, meta)
        self.last_value = {i: tensors[f"last_value.{i}"] for i in self.object_ids if f"last_value.{i}" in tensors}
        self.last_pix_feat = tensors.get("last_pix_feat")
        self.warmed = set(meta.get("warmed", []))
        self.refined = {i: (tensors[f"refined_annotation.{i}"], tensors[f"refined_alpha.{i}"])
                        for i in self.object_ids if f"refined_alpha.{i}" in tensors}
