"""Suggest Frames: where an annotation would help most (XMem++ candidates plus signs of a lost object)."""
from .common import MASKS, SESSION, SUGGESTIONS, check_frames
from .compute import NodeProgress, working_budget
from .frame_source import FRAMES_INPUT
from .inputs import Input, input_types, takes_declared
from .mask_nodes import check_masks
from .model_nodes import ready_network
from .session_nodes import check_session
from ..memvos_core.ops import suggest as suggest_ops
from ..memvos_core.ops.candidates import compute_candidate_keys, select_annotation_candidates
from ..memvos_core.ops.chunking import num_frames_of


def _appearance_candidates(session, frames, dense, chosen, count, progress):
    """XMem++'s picks: the frames whose look differs most from the annotated ones. The keys are
    computed on the model's device and stay there when the whole clip's keys fit the budget
    (else they wait on the CPU and go to the device a batch at a time); the choice runs there."""
    network = ready_network(session.model)
    device = session.model.device
    budget = working_budget(device)
    key_progress, cancel = progress.stage(num_frames_of(frames))
    keys = compute_candidate_keys(network, frames, session.internal_size, device=device, store_device="auto",
                                  budget_bytes=budget, progress=key_progress, cancel=cancel)
    pick_progress, cancel = progress.stage(count)
    return select_annotation_candidates(*keys, dense, k=count, previously_chosen=chosen, return_scores=True,
                                        device=device, budget_bytes=budget, progress=pick_progress, cancel=cancel)


def report_lines(picks, masks):
    if not picks:
        return (f"No frame of clip frames {masks.clip_start}..{masks.clip_end} stands out: the masks look "
                "consistent. Scrub the preview to be sure.")
    lines = [f"Frames to annotate next (clip frames {masks.clip_start}..{masks.clip_end}), best first:"]
    for rank, s in enumerate(picks, 1):
        who = f"object {s['object_id']}" if s["object_id"] is not None else "all objects"
        lines.append(f"{rank}. frame {s['frame']} ({who}) score {s['score']:.2f}: {s['reason']}"
                     + (f" - {s['detail']}" if s["detail"] else ""))
    return "\n".join(lines)


class MemVOSSuggestFrames:
    DESCRIPTION = ("Suggests which frames to annotate next: frames whose appearance differs most from the "
                   "annotated ones (XMem++), and frames where an object vanishes, jumps in size, is uncertain, "
                   "or where forward and backward propagation disagree. Add an annotation there and propagate "
                   "again.")
    CATEGORY = "MemVOS/session"
    FUNCTION = "suggest"
    RETURN_TYPES = ("STRING", "INT", "STRING", SUGGESTIONS)
    RETURN_NAMES = ("report", "top_frame", "frames", "suggestions")
    OUTPUT_TOOLTIPS = (
        "A readable list of the suggested frames with their reasons.",
        "Clip index of the best frame to annotate next (-1 when nothing stands out).",
        "Clip indices of every suggested frame, best first, like '12, 3, 40'.",
        "The suggestions, for Composite's preview timeline.",
    )

    INPUTS = (
        Input("session", SESSION, tooltip="The session the masks were propagated from."),
        Input("frames", FRAMES_INPUT, tooltip="The frames the masks were propagated over."),
        Input("masks", MASKS, tooltip="Per-object masks from Propagate."),
        Input("count", "INT", 5, "How many frames to suggest.", 1, 100, 1),
        Input("min_gap", "INT", 3, "Suggested frames are at least this many frames apart.", 0, 100_000, 1),
        Input("appearance", "BOOLEAN", True, "Also pick frames whose look differs most from the annotated ones "
              "(XMem++; one encoder pass per frame)."),
        Input("backward_masks", MASKS, tooltip="Masks of a backward-only Propagate over the same frames, to find "
              "where the two directions disagree.", optional=True),
    )

    @classmethod
    def INPUT_TYPES(cls):
        return input_types(cls.INPUTS)

    @takes_declared(INPUTS)
    def suggest(self, session, frames, masks, count, min_gap, appearance, backward_masks):
        check_session(session)
        check_masks(masks)
        if masks.model_id and masks.model_id != session.model.model_id:
            raise ValueError("masks were propagated with another model than this session's: connect the session "
                             "and the masks of the same Propagate")
        guide = masks.aligned_frames(check_frames(frames))
        # Areas, confidences and appearance do not need the source size: the network's size will do.
        analysis_size = session.internal_size if session.internal_size > 0 else None
        dense = masks.materialise(short_side=analysis_size)
        backward = None
        if backward_masks is not None:
            check_masks(backward_masks, "backward_masks")
            if (backward_masks.clip_start, backward_masks.num_frames) != (masks.clip_start, masks.num_frames):
                raise ValueError(f"backward_masks cover clip frames {backward_masks.clip_start}.."
                                 f"{backward_masks.clip_end} but masks cover {masks.clip_start}..{masks.clip_end}: "
                                 "propagate both over the same frames")
            backward = backward_masks.materialise(list(masks.object_ids), short_side=analysis_size)
        # One bar: the signals, then (appearance) the keys of every frame and the k picks.
        progress = NodeProgress(masks.num_frames + (masks.num_frames + int(count) if appearance else 0))
        signals = suggest_ops.frame_signals(dense, list(masks.object_ids), backward_masks=backward,
                                            compute=progress.compute(masks.num_frames, session.model.device))
        annotated = sorted({k["frame"] - masks.clip_start for k in masks.keyframes
                            if masks.clip_start <= k["frame"] <= masks.clip_end})
        candidates = []
        if appearance:
            candidates = _appearance_candidates(session, guide, dense, annotated or [0], int(count), progress)
        picks = suggest_ops.rank_suggestions(signals, candidates, k=int(count), exclude=annotated,
                                             min_gap=int(min_gap))
        found = tuple({"frame": masks.clip_start + s.frame, "object_id": s.object_id, "reason": s.reason,
                       "score": float(s.score), "detail": s.detail} for s in picks)
        top = found[0]["frame"] if found else -1
        return (report_lines(found, masks), top, ", ".join(str(s["frame"]) for s in found), found)


NODE_CLASS_MAPPINGS = {"MemVOSSuggestFrames": MemVOSSuggestFrames}
NODE_DISPLAY_NAME_MAPPINGS = {"MemVOSSuggestFrames": "MemVOS Suggest Frames"}
