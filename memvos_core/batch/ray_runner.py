"""Shots on Ray: one task per shot, on a local Ray instance or a running cluster.

A shot is sequential (frame t needs frame t-1's memory), so it is never split: a task runs the
whole shot on one machine, with ``num_gpus`` reserved when the shot runs on CUDA, and Ray places
tasks wherever resources are free. Outputs go where each shot's ``out`` says, so on a cluster
the paths must be on storage every machine sees under the same name.

Ray is an optional extra: nothing else in the pack imports this module or ray.
"""
from pathlib import Path

from .progress import Throttled
from .shot import BatchInterrupted, ShotRecord, one_line, sigterm_as_interrupt

INSTALL_HINT = ("--ray needs Ray, an optional extra that is not installed: pip install ray "
                "(the same Ray and Python version on every machine of the cluster), or run "
                "without --ray to use worker processes on this machine")
EVENTS_MAX = 256
POLL_S = 0.5


class RayMissing(RuntimeError):
    pass


def import_ray():
    try:
        import ray
    except ImportError:
        raise RayMissing(INSTALL_HINT) from None
    return ray


def runtime_env():
    """Ship this very memvos_core to the workers (the cluster needs torch and the pack's
    requirements installed, not the pack itself)."""
    return {"py_modules": [str(Path(__file__).resolve().parents[1])]}


def connect(address, **init_options):
    """Join Ray: ``auto`` starts a local instance (or joins one started with ``ray start`` on
    this machine), anything else is a cluster address. Returns ``(ray, started_here)``; an
    already initialised Ray (a notebook, a test) is used as it is."""
    ray = import_ray()
    if ray.is_initialized():
        return ray, False
    ray.init(address=None if address == "auto" else address, runtime_env=runtime_env(),
             log_to_driver=False, **init_options)
    return ray, True


def _task(index, args, events):
    """A Ray task: one whole shot. Progress goes to the batch's queue actor, best effort."""
    from .shot import run_shot

    def send(shot, done, total):
        try:
            events.put_nowait((shot, done, total))
        except Exception:  # queue full, or the batch already gone: progress never blocks a shot
            pass
    return run_shot(index, args, Throttled(index, send))


def needs_gpu(device, cluster_has_gpus):
    return device.startswith("cuda") or (device == "auto" and cluster_has_gpus)


def run_ray(jobs, address, workers, gpus_per_shot, progress):
    """Run ``jobs`` as Ray tasks, at most ``workers`` at once when given (else as many as the
    cluster's resources allow); the records of every shot, by index."""
    if not jobs:
        return []
    ray, started = connect(address)
    records, pending = {}, {}
    try:
        with sigterm_as_interrupt():  # ray.init installs its own SIGTERM handler (abort): ours again
            _submit_and_collect(ray, jobs, workers or len(jobs), gpus_per_shot, progress, records, pending)
        return [records[i] for i in sorted(records)]
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise BatchInterrupted(records.values()) from None
    finally:
        if started:
            ray.shutdown()


def _submit_and_collect(ray, jobs, cap, gpus_per_shot, progress, records, pending):
    """Keep ``cap`` tasks in flight; fill ``records`` as they end (``pending``: ref -> shot)."""
    from ray.util.queue import Queue
    events = Queue(maxsize=EVENTS_MAX, actor_options={"num_cpus": 0})
    try:
        gpus = ray.cluster_resources().get("GPU", 0) > 0
        task = ray.remote(_task)
        waiting = list(jobs)
        by_index = {job.index: job for job in jobs}
        while waiting or pending:
            while waiting and len(pending) < cap:
                job = waiting.pop(0)
                options = {"num_cpus": 1, "max_retries": 1}
                if needs_gpu(job.device, gpus):
                    options["num_gpus"] = gpus_per_shot
                if job.device.startswith("cuda") and not gpus:  # Ray would wait for a GPU forever
                    records[job.index] = ShotRecord(job.index, job.out, reason=(
                        f"device {job.device}: the Ray cluster has no GPUs; use device auto or cpu, "
                        "or add GPU machines"))
                    progress.finished(records[job.index])
                    continue
                pending[task.options(**options).remote(job.index, job.args, events)] = job.index
            if not pending:
                break
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            if n := events.qsize():
                for shot, done, total in events.get_nowait_batch(n):
                    if shot not in records:
                        progress.frames(shot, done, total)
            for ref in ready:
                index = pending.pop(ref)
                try:
                    record = ray.get(ref)
                except Exception as exc:  # the task itself failed: a worker crash, a lost node
                    record = ShotRecord(index, by_index[index].out, reason=f"Ray task failed: {one_line(exc)}")
                records[index] = record
                progress.finished(record)
    finally:
        events.shutdown()  # a Ray we joined lives on: don't leave our queue actor in it
