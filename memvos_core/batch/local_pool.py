"""Shots on this machine: N worker processes (spawned, so CUDA starts clean in each), one per
GPU by default, each pinned to its GPU; on CPU the cores are shared out between workers.

Workers take shots from one queue and send events back on another, bounded one; a worker
that dies (killed, out of memory) fails its shot and is replaced; a worker that notices its
batch process is gone stops.
"""
import multiprocessing as mp
import os
import queue
import traceback

from .progress import Throttled
from .shot import BatchInterrupted, ShotRecord

EVENTS_MAX = 256        # progress is dropped, never waited for, when the parent falls behind
POLL_S = 0.5
MAX_START_FAILURES = 2  # workers that die before they are ready: a broken install, not a shot


def cuda_count():
    import torch
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def default_workers(gpus_per_shot=1.0):
    """One worker per GPU (or per ``gpus_per_shot`` fraction of one), else 1."""
    gpus = cuda_count()
    return max(1, int(gpus / gpus_per_shot)) if gpus else 1


def _worker(slot, gpu, threads, tasks, events):
    """A spawned worker: runs shots until it takes the end-of-work sentinel (None)."""
    try:
        import torch
        if gpu is not None:
            torch.cuda.set_device(gpu)
        elif threads:
            torch.set_num_threads(threads)
        from .shot import run_shot
        parent = mp.parent_process()

        def check():
            if parent is not None and not parent.is_alive():
                os._exit(3)  # the batch is gone: outputs are atomic, the rerun redoes this shot

        def send(index, done, total):
            try:
                events.put_nowait(("progress", slot, index, done, total))
            except queue.Full:
                pass
        events.put(("ready", slot))
        while (job := _next_job(tasks, check)) is not None:
            events.put(("started", slot, job.index))
            record = run_shot(job.index, job.args, Throttled(job.index, send, check),
                              pin_device=None if gpu is None else f"cuda:{gpu}")
            events.put(("finished", slot, record))
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the parent reports it
        pass
    except Exception:
        traceback.print_exc()
        raise SystemExit(1)


def _next_job(tasks, check):
    """The next job, or None at the end; an idle worker also notices its batch is gone."""
    while True:
        try:
            return tasks.get(timeout=POLL_S * 4)
        except queue.Empty:
            check()


class _Pool:
    def __init__(self, jobs, workers, progress):
        self.ctx = mp.get_context("spawn")
        self.jobs = {job.index: job for job in jobs}
        self.progress = progress
        self.gpus = cuda_count()
        # CPU workers share the cores out (oversubscribed OpenMP threads crawl); an explicit
        # OMP_NUM_THREADS wins. Float sums depend on the thread count, so a batch equals
        # single-shot runs made with the same count (soft PNGs can differ in the last bit).
        self.threads = None if "OMP_NUM_THREADS" in os.environ else max(1, (os.cpu_count() or 1) // workers)
        self.tasks = self.ctx.Queue()
        self.events = self.ctx.Queue(EVENTS_MAX)
        for job in jobs:
            self.tasks.put(job)
        for _ in range(workers):
            self.tasks.put(None)
        self.procs, self.current, self.ready = {}, {}, set()
        self.records = {}
        self.start_failures = 0
        for slot in range(workers):
            self.start(slot)

    def start(self, slot):
        gpu = slot % self.gpus if self.gpus else None
        p = self.ctx.Process(target=_worker, args=(slot, gpu, self.threads, self.tasks, self.events),
                             name=f"memvos-batch-{slot}", daemon=True)
        p.start()
        self.procs[slot] = p

    def handle(self, event):
        kind, slot = event[0], event[1]
        if kind == "ready":
            self.ready.add(slot)
        elif kind == "started":
            self.current[slot] = event[2]
            self.progress.started(event[2])
        elif kind == "progress":
            self.progress.frames(*event[2:])
        elif kind == "finished":
            self.current.pop(slot, None)
            self.finish(event[2])

    def finish(self, record):
        self.records[record.index] = record
        self.progress.finished(record)

    def drain(self):
        while True:
            try:
                self.handle(self.events.get_nowait())
            except queue.Empty:
                return

    def reap(self):
        """Deal with workers that exited: fail the shot a crashed one held and replace it."""
        for slot, p in list(self.procs.items()):
            if p.is_alive() or p.exitcode is None:
                continue
            self.drain()  # its last events may still be in the queue
            del self.procs[slot]
            index = self.current.pop(slot, None)
            if p.exitcode == 0 and index is None:
                continue  # took its sentinel: no more work
            if index is not None:
                self.finish(ShotRecord(index, self.jobs[index].out,
                                       reason=f"worker process died (exit code {p.exitcode}; "
                                              "negative = killed by that signal, e.g. out of memory)"))
            elif slot not in self.ready:
                self.start_failures += 1
            self.ready.discard(slot)
            if len(self.records) < len(self.jobs) and self.start_failures < MAX_START_FAILURES:
                self.start(slot)
        if not self.procs and len(self.records) < len(self.jobs):
            for index in sorted(set(self.jobs) - set(self.records)):
                self.finish(ShotRecord(index, self.jobs[index].out,
                                       reason="no worker process could start (see the error above)"))

    def run(self):
        while len(self.records) < len(self.jobs):
            try:
                self.handle(self.events.get(timeout=POLL_S))
            except queue.Empty:
                pass
            self.reap()
        return [self.records[i] for i in sorted(self.records)]

    def stop(self):
        for p in self.procs.values():
            if p.is_alive():
                p.terminate()
        for p in self.procs.values():
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join()
        self.tasks.cancel_join_thread()  # shots never taken stay in the queue: don't wait for them


def run_local(jobs, workers, progress):
    """Run ``jobs`` on ``workers`` processes; the records of every shot, by index."""
    if not jobs:
        return []
    pool = _Pool(jobs, min(workers, len(jobs)), progress)
    try:
        return pool.run()
    except KeyboardInterrupt:
        raise BatchInterrupted(pool.records.values()) from None
    finally:
        pool.stop()
