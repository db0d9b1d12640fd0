"""Another run's masks as a session's keyframes: track with the model best at tracking (XMem,
Cutie, SAM 2.1, painted keyframes), then matte with the model made for mattes (MatAnyone) from
those masks, in one graph."""


def keyframes_from_masks(session, frame_at, labels_at, frame_indices, object_ids, progress=None, cancel=None):
    """``session`` with a keyframe on each of ``frame_indices`` (clip indices): the frame
    ``frame_at(i)`` annotated with the label map ``labels_at(i)`` (uint8, 0 = none) for every
    one of ``object_ids`` (an object absent there is annotated as not visible). Existing
    keyframes on those frames are replaced. ``progress(done, total)`` after each keyframe,
    ``cancel()`` before each (each encodes a frame: many keyframes of 4K take seconds)."""
    if not frame_indices:
        raise ValueError("keyframes: no frame chosen; give clip frames such as 0, 40, 80, or leave it "
                         "empty to use the masks' own keyframes")
    chosen = sorted(set(frame_indices))
    for done, i in enumerate(chosen, start=1):
        if cancel is not None:
            cancel()
        session = session.add_label_map(i, frame_at(i), labels_at(i), object_ids)
        if progress is not None:
            progress(done, len(chosen))
    return session


def parse_frame_list(text, first, last, name="keyframes"):
    """``"0, 40 80"`` -> sorted clip indices, each within ``first..last``; empty -> None."""
    parts = (text or "").replace(",", " ").split()
    if not parts:
        return None
    try:
        indices = sorted({int(p) for p in parts})
    except ValueError:
        raise ValueError(f"{name} {text!r}: give clip frame numbers separated by commas, e.g. 0, 40, 80") from None
    outside = [i for i in indices if not first <= i <= last]
    if outside:
        raise ValueError(f"{name}: frames {outside} are outside the masks (clip frames {first}..{last}): pick "
                         "frames the masks cover")
    return indices
