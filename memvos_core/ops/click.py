"""Click to mask: an object's mask on one frame from clicks and a box, through the image path of a
family that has one (SAM 2.1; :func:`memvos_core.families.registry.prompt_families`).

A prompt is ``{"points": [[x, y, label], ...], "box": [x0, y0, x1, y1]}`` in frame pixels (label
1 adds, 0 subtracts; the box is optional, so are the points, one of them is needed). The editor's
click route sends one per request; the Keyframes node reads a list of them, one per frame and
object (:func:`parse_prompt_list`). Both go through :class:`ClickSegmenter`, so the node's masks
are the route's masks.

The slow part is the frame's embedding (the image encoder); it is computed once per frame and
kept in a small cache bounded by bytes, on the compute device. A later click on the same frame
costs only the prompt encoder and the mask decoder.
"""
import collections
import json
import os
import threading
import weakref

import torch

from ..families.registry import family_of, prompt_families

DEFAULT_CACHE_BYTES = 256 << 20  # about 16 frames of SAM 2.1 at 1024 (16 MiB each)


def known_names():
    """The known weights that answer clicks, smallest first (as their families declare them)."""
    return tuple(w.name for f in prompt_families() for w in f.weights)


def no_weights_message():
    titles = " or ".join(f.title for f in prompt_families())
    return (f"click to mask needs {titles} weights (whichever model propagates): put one of "
            + ", ".join(known_names()) + " into models/memvos (MemVOS Load Model downloads it when you pick it "
            "there once), then click again")


class PromptError(ValueError):
    """A prompt that cannot be used; the message names the field and the fix."""


def _numbers(value, count, what):
    if not isinstance(value, (list, tuple)) or len(value) != count:
        raise PromptError(f"{what} must be a list of {count} numbers, got {json.dumps(value)[:80]}")
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        raise PromptError(f"{what} must hold numbers, got {json.dumps(value)[:80]}") from None
    if not all(abs(v) < 1e7 for v in out):  # also refuses NaN and infinities
        raise PromptError(f"{what} holds a value that is no pixel position: {json.dumps(value)[:80]}")
    return out


def check_prompt(prompt, frame_hw=None, what="prompt"):
    """``(points [[x, y]], labels [0/1], box or None)`` of a prompt dict, checked; positions
    must lie on the frame when its size ``(H, W)`` is given."""
    if not isinstance(prompt, dict):
        raise PromptError(f"{what} must be an object like {{\"points\": [[x, y, 1]], \"box\": [x0, y0, x1, y1]}}")
    raw = prompt.get("points") or []
    if not isinstance(raw, (list, tuple)):
        raise PromptError(f"{what}: points must be a list of [x, y, label] (label 1 adds, 0 subtracts)")
    points, labels = [], []
    for k, p in enumerate(raw):
        x, y, label = _numbers(p, 3, f"{what}: point {k} [x, y, label]")
        if label not in (0.0, 1.0):
            raise PromptError(f"{what}: point {k} has label {label:g}: use 1 (adds) or 0 (subtracts)")
        points.append([x, y])
        labels.append(int(label))
    box = prompt.get("box")
    if box is not None:
        box = _numbers(box, 4, f"{what}: box [x0, y0, x1, y1]")
        box = [min(box[0], box[2]), min(box[1], box[3]), max(box[0], box[2]), max(box[1], box[3])]
    if not points and box is None:
        raise PromptError(f"{what} has neither points nor a box: give at least one positive click or a box")
    if frame_hw is not None:
        h, w = frame_hw
        corners = [box[:2], box[2:]] if box is not None else []
        for x, y in points + corners:
            if not (0 <= x <= w and 0 <= y <= h):
                raise PromptError(f"{what}: position ({x:g}, {y:g}) is outside the {w}x{h} frame")
    return points, labels, box


def parse_prompt_list(text, what="prompts"):
    """The Keyframes node's prompts: a JSON list of ``{"frame": F, "object": O, "points": ...,
    "box": ...}`` (or one such object) -> ``{(frame, object): prompt}``; empty text -> ``{}``."""
    if isinstance(text, str):
        text = text.strip()
        if not text:
            return {}
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise PromptError(f"{what} is not valid JSON ({str(exc)[:80]}): write a list like "
                              '[{"frame": 0, "object": 1, "points": [[120, 80, 1]]}]') from None
    else:
        data = text
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise PromptError(f"{what} must be a list of {{frame, object, points, box}} entries")
    out = {}
    for k, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise PromptError(f"{what} entry {k} must be an object with frame, object, points and/or box")
        frame, obj = entry.get("frame"), entry.get("object")
        if not isinstance(frame, int) or isinstance(frame, bool) or frame < 0:
            raise PromptError(f"{what} entry {k}: frame must be a frame number (0 = first), got {frame!r}")
        if not isinstance(obj, int) or isinstance(obj, bool) or not 1 <= obj <= 255:
            raise PromptError(f"{what} entry {k}: object must be an object id 1..255, got {obj!r}")
        if (frame, obj) in out:
            raise PromptError(f"{what}: object {obj} on frame {frame} is given twice: merge its clicks into one entry")
        check_prompt(entry, None, f"{what} entry {k}")
        out[frame, obj] = {"points": entry.get("points") or [], "box": entry.get("box")}
    return out


def pick_weights(names):
    """The file to answer clicks, among weights file names: a known release name (the smallest
    first), else any name mentioning such a family's id; None without one."""
    base = {os.path.basename(n): n for n in names}
    for known in known_names():
        if known in base:
            return base[known]
    ids = [f.name for f in prompt_families()]
    return next((n for n in names if any(i in os.path.basename(n).lower() for i in ids)), None)


class ClickSegmenter:
    """A family's image path with the frames' embeddings kept (least recently used dropped first,
    at most ``cache_bytes``). ``frame_key`` names a frame for the cache: callers pass what makes
    it unique (the shot's token and the frame number)."""

    def __init__(self, network, cache_bytes=DEFAULT_CACHE_BYTES):
        self.network = network.eval()
        self.prompts = family_of(network).prompts
        self.cache_bytes = int(cache_bytes)
        self._cache = collections.OrderedDict()  # key -> FrameEmbedding
        self._lock = threading.Lock()  # the route's worker threads share one segmenter
        self.embedded = 0  # frames embedded so far (the expensive step): tests and the bench count it

    @property
    def cached_bytes(self):
        return sum(self.prompts.bytes_of(e) for e in self._cache.values())

    def embedding(self, frame_key, frame):
        """The frame's embedding; ``frame()`` gives its pixels (``H x W x 3`` uint8, or ``[3,H,W]``
        in [0,1]) and is called only when the cache misses."""
        with self._lock:
            found = self._cache.get(frame_key)
            if found is not None:
                self._cache.move_to_end(frame_key)
                return found
            found = self.prompts.embed(self.network, frame())
            self.embedded += 1
            self._cache[frame_key] = found
            while len(self._cache) > 1 and self.cached_bytes > self.cache_bytes:
                self._cache.popitem(last=False)
            return found

    def forget(self, frame_key):
        with self._lock:
            self._cache.pop(frame_key, None)

    def candidates(self, frame_key, frame, prompt):
        """``(masks bool [M,H,W], scores [M], best index)``: three candidates for a lone click
        (ambiguous: whole, part, subpart), one otherwise; ``best`` has the highest predicted IoU."""
        emb = self.embedding(frame_key, frame)
        points, labels, box = check_prompt(prompt, emb.frame_hw)
        multimask = len(points) == 1 and box is None
        with self._lock:
            logits, ious, _ = self.prompts.predict(self.network, emb, points or None, labels or None, box, multimask=multimask)
        return (logits > 0).cpu(), ious.float().cpu(), int(torch.argmax(ious))

    def mask(self, frame_key, frame, prompt):
        """The object's mask (bool ``[H,W]``): the best candidate."""
        masks, _, best = self.candidates(frame_key, frame, prompt)
        return masks[best]

    def labels(self, frame_key, frame, prompts, frame_hw):
        """uint8 ``[H,W]`` object ids from ``{object id: prompt}``; a higher id wins where two
        objects' masks overlap (as a later mask does in the Keyframes node's mask input)."""
        labels = torch.zeros(frame_hw, dtype=torch.uint8)
        for oid in sorted(prompts):
            labels[self.mask(frame_key, frame, prompts[oid])] = oid
        return labels


_LOADED = {}  # (path, mtime, size, device) -> ClickSegmenter; one at a time
_LOAD_LOCK = threading.Lock()


def segmenter_for_file(path, device, cache_bytes=DEFAULT_CACHE_BYTES):
    """A :class:`ClickSegmenter` on a weights file of a family with an image path, kept while the
    file and device stay the same (the network is loaded once, its embeddings reused across requests)."""
    from ..families.registry import load_network
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_mtime_ns, stat.st_size, str(device))
    with _LOAD_LOCK:
        if key not in _LOADED:
            _LOADED.clear()  # the previous file's network and embeddings go before the new one loads
            network = load_network(path)
            if family_of(network).prompts is None:
                raise ValueError(f"{os.path.basename(path)} is a {family_of(network).title} file, which cannot "
                                 f"answer clicks: {no_weights_message()}")
            _LOADED[key] = ClickSegmenter(network.to(device), cache_bytes)
        return _LOADED[key]


_BY_NETWORK = weakref.WeakKeyDictionary()  # a loaded model's network -> its segmenter


def segmenter_for_network(network, cache_bytes=DEFAULT_CACHE_BYTES):
    """The :class:`ClickSegmenter` of an already loaded network with an image path (the one Load Model gave
    the session), kept as long as the network lives."""
    with _LOAD_LOCK:
        found = _BY_NETWORK.get(network)
        if found is None:
            found = _BY_NETWORK[network] = ClickSegmenter(network, cache_bytes)
        return found
