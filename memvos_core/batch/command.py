"""``python -m memvos_core batch SHOTS.json``: many shots, side by side, on this machine or Ray.

Every shot is checked before anything runs; finished shots (by their done-marker) are skipped,
interrupted ones continue, a failing shot is reported and the others go on. Exit code: 0 when
every shot is done or skipped, 1 when any failed, 2 when SHOTS.json is refused, 130 when
interrupted.
"""
import argparse
import sys
import time

from . import marker, spec
from .progress import BatchProgress, summary_table
from .shot import FAILED, SKIPPED, BatchInterrupted, Job, ShotRecord, sigterm_as_interrupt

EPILOG = """SHOTS.json is a list of shots, each an object whose keys are the single-shot CLI's options:
  [{"frames": "shot010/frames", "masks": "shot010/keys", "out": "masks/shot010"},
   {"frames": "shot020.mp4", "masks": "shot020/keys", "out": "masks/shot020",
    "direction": "forward", "set": {"mem_every": 3}, "soft": true}]
or {"defaults": {options for every shot}, "shots": [...]}. Relative paths are relative to the
file. Each finished shot gets <out>/memvos-done.json; a rerun skips those shots."""


def build_parser():
    ap = argparse.ArgumentParser(prog="python -m memvos_core batch", description=__doc__, epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("shots", metavar="SHOTS.json", help="the shot list")
    ap.add_argument("--workers", type=int, default=None, metavar="N",
                    help="shots at once; default: one per GPU (else 1) on this machine, "
                         "as many as the cluster's resources allow with --ray")
    ap.add_argument("--ray", metavar="auto|ADDRESS", default=None,
                    help="run one Ray task per shot: 'auto' starts a local Ray instance, an address "
                         "(e.g. ray://head:10001) joins a cluster (pip install ray)")
    ap.add_argument("--gpus-per-shot", type=float, default=1.0, metavar="G",
                    help="GPUs reserved by a shot that runs on CUDA; 0.5 puts two shots on one GPU (default: 1)")
    ap.add_argument("--quiet", action="store_true", help="no progress display (the summary still prints)")
    return ap


def plan(shots, skipped_records):
    """The shots still to run, as jobs; finished ones go to ``skipped_records``."""
    jobs = []
    for shot in shots:
        state = marker.shot_state(shot.args)
        if state == marker.DONE:
            frames = (marker.read_marker(shot.out) or {}).get("frames")
            skipped_records.append(ShotRecord(shot.index, shot.out, SKIPPED, frames))
            continue
        args = shot.args
        if state == marker.INTERRUPTED:
            args = argparse.Namespace(**{**vars(args), "resume": True})  # continue from its checkpoint
        jobs.append(Job(shot.index, args, shot.out, shot.args.device))
    return jobs


def main(argv=None):
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        ap.error("--workers must be at least 1")
    if args.gpus_per_shot <= 0:
        ap.error("--gpus-per-shot must be above 0")
    try:
        shots = spec.load_shots(args.shots)
    except spec.ShotSpecError as exc:
        for line in exc.errors[:spec.MAX_ERRORS_SHOWN]:
            print(f"error: {args.shots}: {line}", file=sys.stderr)
        if len(exc.errors) > spec.MAX_ERRORS_SHOWN:
            print(f"error: ... and {len(exc.errors) - spec.MAX_ERRORS_SHOWN} more", file=sys.stderr)
        print("nothing was run", file=sys.stderr)
        return 2
    if args.ray:
        from .ray_runner import RayMissing, import_ray
        try:
            import_ray()
        except RayMissing as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    start = time.monotonic()
    records = []
    jobs = plan(shots, records)
    progress = BatchProgress(len(shots), quiet=args.quiet)
    for record in records:
        progress.finished(record)
    interrupted = False
    try:
        with sigterm_as_interrupt():
            if args.ray:
                from .ray_runner import run_ray
                records += run_ray(jobs, args.ray, args.workers, args.gpus_per_shot, progress)
            else:
                from .local_pool import default_workers, run_local
                records += run_local(jobs, args.workers or default_workers(args.gpus_per_shot), progress)
    except (BatchInterrupted, KeyboardInterrupt) as exc:
        records += getattr(exc, "records", [])
        interrupted = True
    finally:
        progress.close()
    records.sort(key=lambda r: r.index)
    print(summary_table(records, time.monotonic() - start, len(shots)))
    if interrupted:
        print("interrupted: run the same command again to finish the other shots", file=sys.stderr)
        return 130
    return 1 if any(r.status == FAILED for r in records) else 0
