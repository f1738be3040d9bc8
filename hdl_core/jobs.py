"""Work that outlives a page run: background jobs, one per workspace and kind, with progress.

Embedding a folder, building the kNN graph, laying out the map and labeling take from
seconds to many minutes on a large folder. A page that starts one returns at once: the
work runs in a thread of the server process (`JobBoard.start`), keyed by the workspace it
works on and its kind ("embedding", "labeling", "map", ...), so any page of any browser
session can read its progress (`JobBoard.jobs_of`), leaving the page does not stop it, and
asking for the same work again while it runs joins the running job instead of starting a
second one.

A job reports what it is doing through `Job.progress` (done, total) and `Job.stage`
(words); its outcome is `Job.result`, or `Job.error` with the exception (messages of the
library's own errors say what to do; others are logged with their traceback). Nothing here
knows about Streamlit: the pages read the board, the CLI never needs it.

Examples
--------
>>> board = JobBoard()
>>> job = board.start("ws", "sum", lambda job: sum(range(10)), label="Adding")
>>> board.wait("ws", timeout=10)
True
>>> job.state, job.result
('done', 45)
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

log = logging.getLogger("hdl_studio")

RUNNING, DONE, FAILED = "running", "done", "failed"
_numbers = itertools.count(1)


@dataclass
class Job:
    """One piece of background work and what is known of it so far.

    Attributes
    ----------
    workspace : str
        The workspace it works on (its folder).
    kind : str
        What it does ("embedding", "labeling", "map", ...): one runs per workspace and kind.
    label : str
        What it does, in words for the user ("Running HDL on 1,000,000 images").
    number : int
        Unique in this process, increasing: tells one job from the next of the same kind.
    state : {"running", "done", "failed"}
    done, total : int
        Progress in the job's own units (total 0: unknown).
    stage : str
        What it is doing now, in words ("UMAP of 50,000 points").
    started, finished : float
        ``time.time()`` at the start and the end (finished None while running).
    result : Any
        What the work returned (state "done").
    error : BaseException or None
        What it raised (state "failed").
    tag : str
        What the caller needs to tell two jobs of a kind apart (e.g. the embedding a map is
        of); empty by default.
    """

    workspace: str
    kind: str
    label: str
    number: int = field(default_factory=lambda: next(_numbers))
    state: str = RUNNING
    done: int = 0
    total: int = 0
    stage: str = ""
    started: float = field(default_factory=time.time)
    finished: float | None = None
    result: Any = None
    error: BaseException | None = None
    tag: str = ""

    def progress(self, done: int, total: int) -> None:
        """The progress callback work receives: `done` of `total` units so far."""
        self.done, self.total = int(done), int(total)

    def say(self, stage: str) -> None:
        """Name the stage the work is in (resets the progress to unknown)."""
        self.stage, self.done, self.total = str(stage), 0, 0

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    @property
    def fraction(self) -> float | None:
        """Share done, or None when the work does not know its total."""
        return min(self.done / self.total, 1.0) if self.total > 0 else None

    @property
    def seconds(self) -> float:
        """Seconds it has run (until it finished)."""
        return (self.finished or time.time()) - self.started

    def describe(self) -> str:
        """One line for the user: what, at which stage, how far, for how long."""
        parts = [self.label]
        if self.stage:
            parts.append(self.stage)
        if self.total > 0:
            parts.append(f"{self.done:,} of {self.total:,}")
        parts.append(f"{self.seconds:.0f} s")
        return " · ".join(parts)


class JobBoard:
    """The jobs of this process: at most one running job per workspace and kind.

    Finished jobs stay on the board (the latest of each workspace and kind) until the next
    one of that kind starts, so a page opened later still finds the outcome.
    """

    def __init__(self):
        self._jobs: dict[tuple[str, str], Job] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def start(self, workspace: str, kind: str, work: Callable[[Job], Any], *,
              label: str, tag: str = "") -> Job:
        """Run ``work(job)`` in a background thread, unless a job of this workspace and kind
        is running: then that job is returned and `work` is not run.

        Parameters
        ----------
        workspace : str
            The workspace's folder.
        kind : str
        work : callable(Job)
            Does the work; reports through the job (`Job.progress`, `Job.say`); its return
            value becomes `Job.result`.
        label : str
            What it does, in words.
        tag : str, optional
            Kept as `Job.tag`.
        """
        with self._lock:
            current = self._jobs.get((workspace, kind))
            if current is not None and current.running:
                return current
            job = Job(workspace, kind, label, tag=tag)
            self._jobs[(workspace, kind)] = job
        threading.Thread(target=self._run, args=(job, work), daemon=True,
                         name=f"job-{kind}-{job.number}").start()
        return job

    def _run(self, job: Job, work: Callable[[Job], Any]) -> None:
        try:
            result = work(job)
        except BaseException as error:        # reported on the board, never lost in a thread
            if not isinstance(error, (ValueError, OSError, RuntimeError)):
                log.error("job %s failed\n%s", job.label, traceback.format_exc())
            else:
                log.info("job %s failed: %s", job.label, error)
            with self._changed:
                job.error, job.state, job.finished = error, FAILED, time.time()
                self._changed.notify_all()
            return
        with self._changed:
            job.result, job.state, job.finished = result, DONE, time.time()
            self._changed.notify_all()

    def get(self, workspace: str, kind: str) -> Job | None:
        """The running or latest job of this workspace and kind, or None."""
        with self._lock:
            return self._jobs.get((workspace, kind))

    def jobs_of(self, workspace: str) -> list[Job]:
        """Every job of a workspace on the board, running ones first, then newest first."""
        with self._lock:
            jobs = [job for (folder, _), job in self._jobs.items() if folder == workspace]
        return sorted(jobs, key=lambda job: (not job.running, -job.number))

    def running(self, workspace: str) -> list[Job]:
        return [job for job in self.jobs_of(workspace) if job.running]

    def wait(self, workspace: str | None = None, *, timeout: float | None = None) -> bool:
        """Block until no job (of `workspace`, or at all) runs; False when `timeout` ran out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while any(job.running for (folder, _), job in self._jobs.items()
                      if workspace is None or folder == workspace):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def forget(self, workspace: str) -> None:
        """Drop the finished jobs of a workspace (it was deleted or moved aside)."""
        with self._lock:
            for key in [key for key, job in self._jobs.items()
                        if key[0] == workspace and not job.running]:
                del self._jobs[key]


# The board of this process: the app's pages share it (a job started from one session is
# seen by all), and the tests wait on it.
BOARD = JobBoard()
