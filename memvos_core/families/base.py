"""The interface between the engine and a model family.

The engine (:class:`~memvos_core.runtime.engine.InferenceEngine`) owns what every family shares: the
frame counter and the last memory frame, the number of objects, merging an annotation with the
prediction, soft aggregation of annotations, cropping the padding off. Everything else goes
through one :class:`FamilyModel` per engine, which holds the family's network and its state for
one clip:

* per clip: the memory (keys and values; XMem's groups or Cutie's buckets);
* per object: the sensory ("hidden") state, and for Cutie the object memory;
* per frame: for Cutie the previous output (``last_mask``), which feeds the next frame.

Per frame the engine calls, in this order: :meth:`pad`, :meth:`plan`, :meth:`encode`, then
when the frame is segmented :meth:`read` and :meth:`decode` (which may update the sensory
state), after an annotation :meth:`add_objects`, then :meth:`observe` with the final
probabilities and, when :meth:`writes` says so, :meth:`write` (which deep-updates the sensory
state). Probabilities are ``[N+1,H,W]`` over the padded frame, background first; images are
normalised ``[1,3,H,W]``.
"""
from typing import NamedTuple

from ..runtime.frames import aggregate, merge_partial_annotation
from ..runtime.precision import autocast_context


class Plan(NamedTuple):
    """What happens on this frame."""

    is_mem_frame: bool     # the frame goes into memory (regular interval, or an annotation)
    need_segment: bool     # the frame is predicted from memory
    update_sensory: bool   # the decoder updates the sensory state
    deep_update: bool      # the memory write also updates the sensory state


class FamilyModel:
    family = ""

    def __init__(self, network, config, device, precision, options):
        self.network = network
        self.config = config
        self.device = device
        self.precision = precision
        self.options = options

    def autocast(self):
        return autocast_context(self.device, self.precision)

    # --- per frame -----------------------------------------------------------
    def pad(self, image):
        """``(padded image, pads)``: how this family pads to a multiple of the stride."""
        raise NotImplementedError

    def plan(self, engine, mask_given, valid_labels, end):
        raise NotImplementedError

    def encode(self, image, plan):
        """Key features (:class:`~memvos_core.network.features.KeyFeatures`) of a padded image."""
        raise NotImplementedError

    def encode_batch(self, images):
        """Key features of a batch of padded images, for encoding frames ahead."""
        return self.encode(images, None)

    def read(self, feats):
        """The memory readout the decoder needs for the objects known before this frame."""
        raise NotImplementedError

    def decode(self, feats, readout, plan):
        """Probabilities ``[N+1,H,W]`` of the known objects; updates the sensory state when the
        plan says so."""
        raise NotImplementedError

    def annotate(self, prob, mask, valid_labels):
        """Probabilities of an annotated frame: ``mask`` (padded ``[N,H,W]``) merged with the
        prediction ``prob`` (None when the frame was not segmented), then soft-aggregated."""
        if prob is not None:
            mask = merge_partial_annotation(prob[1:], mask, valid_labels)
        return aggregate(mask, dim=0)

    def add_objects(self, num_objects, grid_hw):
        """Objects up to ``num_objects`` are known from now on (an annotation named them)."""

    def observe(self, prob):
        """The frame's final probabilities, after any annotation and augmentation average."""

    def writes(self, plan, write_permanent):
        return plan.is_mem_frame

    def write(self, engine, work, write_memory, write_permanent):
        """Encode the frame (``work``: :class:`~memvos_core.runtime.engine.FrameWork`) with its final
        probabilities into memory, and deep-update the sensory state."""
        raise NotImplementedError

    def add_permanent(self, engine, image, mask, slot=None):
        raise NotImplementedError

    def delete_objects(self, positions):
        raise ValueError(f"{self.family} cannot forget an object during a propagation: start a new one")

    # --- memory and state ----------------------------------------------------
    @property
    def has_memory(self):
        raise NotImplementedError

    def state(self):
        """``(tensors, json-able meta)`` of this clip's family state."""
        raise NotImplementedError

    def load_state(self, tensors, meta):
        raise NotImplementedError


def padded_keys(network, images, rgb_zero=False):
    """Key features of normalised ``[B,3,H,W]`` images, padded as the family pads
    (:func:`~memvos_core.runtime.frames.pad_normalized`): the usual ``encode_keys`` of a family."""
    from ..runtime.frames import pad_normalized
    return network.encode_key(pad_normalized(images, rgb_zero)[0], need_shrinkage=True, need_selection=True)
