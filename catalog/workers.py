"""A bounded pool of threads for CPU-heavy work (graph questions), so the event loop keeps
answering /healthz and small queries while it runs.

Bounded twice: at most ``threads`` jobs run and ``waiting`` more wait for a thread; past that a
job is refused at once (``WorkersBusyError``, ``UNAVAILABLE``) instead of queueing without end.
Jobs of one group (a request: many aliased questions) take turns, so one request holds at most
one thread and one place in the queue, and the others' jobs interleave with its own.

A job gets a ``cancelled()`` callable that turns true when the task awaiting it is cancelled
(the request timed out, its client left) or the pool closes; the job checks it in its loops and
stops (``metadata.graph.Deadline`` does).

Python threads share the GIL: a thread that wants it (the event loop after every socket or
database hand-off) gets it from a computing job after ``sys.getswitchinterval()`` at most. While
jobs run that interval is 1 ms instead of the default 5 ms, so those hand-offs stay short.
What a job cannot yield is one long C call: a full collection of the garbage collector over the
objects it built (about 0.2 s for a million), a large numpy conversion.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from metadata.errors import CatalogError, UnavailableError

T = TypeVar("T")

#: Jobs that may wait for a thread, per thread, before further ones are refused.
WAITING_PER_THREAD = 4
#: Seconds a computing thread may keep the GIL from one that waits, while jobs run.
SWITCH_INTERVAL = 0.001


_switching = threading.Lock()
_jobs_awaited = 0  # by every pool of the process (tests run several); guarded by _switching
_usual_interval = sys.getswitchinterval()


def _awaiting(change: int) -> None:
    """Count a job awaited (+1) or done (-1): the short switch interval holds while any is."""
    global _jobs_awaited, _usual_interval
    with _switching:
        if change > 0 and not _jobs_awaited:
            _usual_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(_usual_interval, SWITCH_INTERVAL))
        _jobs_awaited += change
        if not _jobs_awaited:
            sys.setswitchinterval(_usual_interval)


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


class WorkersBusyError(UnavailableError):
    """Every worker thread is busy and the queue for them is full; the caller may retry soon."""


@dataclass
class _Turn:
    group: object  # held, so its id() is not reused while the entry exists
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


def _call(work: Callable[[Callable[[], bool]], T], stop: threading.Event) -> T:
    if stop.is_set():  # its request ended, or the pool closed, while it waited for a thread
        raise WorkersBusyError("stopped before it started: the request ended or the hub stops")
    try:
        return work(stop.is_set)
    except CatalogError as err:
        # The traceback would keep the job's frames (and all it built) alive as long as the
        # error is: drop it, so a question past its budget releases its memory at once.
        raise err.with_traceback(None) from None


class Workers:
    """A bounded pool of worker threads with a bounded queue, shared by every request."""

    def __init__(self, threads: int, *, waiting: int | None = None, name: str = "capahub") -> None:
        self.threads = threads
        self.waiting = WAITING_PER_THREAD * threads if waiting is None else waiting
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._held = 0  # jobs submitted and not ended: running or waiting for a thread
        self._stops: set[threading.Event] = set()
        self._turns: dict[int, _Turn] = {}
        self._closed = False

    @property
    def pending(self) -> int:
        """Jobs running or waiting for a thread right now (cancelled ones until they stop)."""
        return self._held

    def _admit(self) -> bool:
        with self._lock:
            if self._closed or self._held >= self.threads + self.waiting:
                return False
            self._held += 1
            return True

    def _release(self, _: object) -> None:
        with self._lock:
            self._held -= 1

    @contextlib.asynccontextmanager
    async def turn(self, group: object | None) -> AsyncIterator[None]:
        """Wait until no other job of ``group`` (e.g. one request) is being run."""
        if group is None:
            yield
            return
        key = id(group)
        entry = self._turns.get(key)
        if entry is None:
            entry = self._turns[key] = _Turn(group)
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if not entry.users:
                del self._turns[key]

    async def run(self, work: Callable[[Callable[[], bool]], T]) -> T:
        """Run ``work(cancelled)`` on a worker thread and return what it returns.

        Raises:
            WorkersBusyError: every thread is busy and ``waiting`` jobs wait already.
        """
        if self._closed:
            raise WorkersBusyError("the hub is shutting down; try again in a moment")
        if not self._admit():
            raise WorkersBusyError(
                f"the hub is busy: {_count(self.threads, 'worker thread')} answering and "
                f"{_count(self.waiting, 'more question')} waiting; try again in a few seconds",
                retry_after=1,
            )
        stop = threading.Event()
        _awaiting(+1)  # before the job can start
        try:
            try:
                future: Future[T] = self._pool.submit(_call, work, stop)
            except BaseException:
                self._release(None)
                raise
            # Released when the job has really ended (or was taken off the queue), not when
            # its awaiting task gives up: a cancelled job holds its thread until it stops.
            future.add_done_callback(self._release)
            self._stops.add(stop)
            try:
                return await asyncio.wrap_future(future)
            except asyncio.CancelledError:
                stop.set()  # a running job stops at its next check; a waiting one never starts
                raise
            finally:
                self._stops.discard(stop)
        finally:
            _awaiting(-1)

    def close(self) -> None:
        """Stop every job soon (cancelled), refuse new ones and let the threads end."""
        self._closed = True
        for stop in list(self._stops):
            stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)


__all__ = ["SWITCH_INTERVAL", "WAITING_PER_THREAD", "Workers", "WorkersBusyError"]
