"""Batching requests across clients: one worker thread runs the model, fed
by a bounded queue, so the event loop never waits on model work.

The worker takes the oldest job, then gathers transcription jobs until it
holds ``max_batch`` of them or ``max_wait_ms`` have passed since it took
the first, and transcribes their waveforms in one
``backend.transcribe_waveforms`` call: the backend batches all their
pieces (short files whole, the speech segments of long files) by length.
Jobs with the same hotwords share a call (one call per hotword set). An
alignment job runs alone. A full queue refuses new jobs (:class:`QueueFull`)
and a job whose caller gave up (its time limit) is skipped if it has not
started.

Example
-------
>>> import asyncio
>>> class Upper:  # a stand-in backend: "transcribes" strings
...     def transcribe_waveforms(self, wavs, timestamps=False, sample_rate=None):
...         return [w.upper() for w in wavs]
>>> batcher = Batcher(Upper(), max_batch=4, max_wait_ms=50, max_queue=8)
>>> batcher.start()
>>> async def main():
...     return await asyncio.gather(*(batcher.transcribe(w) for w in ["a", "b", "c"]))
>>> asyncio.run(main())
['A', 'B', 'C']
>>> batcher.stop()

Authors: speechbrain-w2vbert contributors
"""

import asyncio
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, List, Optional, Sequence, Tuple

__all__ = ["Batcher", "QueueFull", "Job"]

logger = logging.getLogger(__name__)


class QueueFull(RuntimeError):
    """The queue holds ``max_queue`` jobs already."""


@dataclass
class Job:
    """One request's model work (``kind`` ``transcribe`` or ``align``)."""

    kind: str
    wav: Any
    hotwords: Tuple[str, ...] = ()
    text: str = ""
    future: Optional[asyncio.Future] = None
    loop: Optional[asyncio.AbstractEventLoop] = None
    abandoned: bool = False  #: the caller gave up: skip it if not started
    queued_at: float = field(default_factory=time.monotonic)


_STOP = Job("stop", None)


class Batcher:
    """The model's worker thread and its queue.

    Arguments
    ---------
    backend : Backend
        What runs the model (:class:`~speechbrain_w2vbert.serve.backends.Backend`).
    max_batch : int
        Transcription jobs per model call at most (their pieces are then
        batched by the backend).
    max_wait_ms : float
        Milliseconds the worker waits for more jobs after taking the first
        (0: it takes what is queued and goes).
    max_queue : int
        Jobs waiting at most; more are refused with :class:`QueueFull`.
    """

    def __init__(self, backend, max_batch: int = 16, max_wait_ms: float = 5.0, max_queue: int = 64):
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError(f"max_batch and max_queue must be >= 1 and max_wait_ms >= 0, got {max_batch}, "
                             f"{max_queue}, {max_wait_ms}")
        self.backend = backend
        self.max_batch, self.max_wait, self.max_queue = max_batch, max_wait_ms / 1000, max_queue
        self._queue: "queue.Queue[Job]" = queue.Queue(maxsize=max_queue)
        self._held: Deque[Job] = deque()  # taken while gathering, run next
        self._thread: Optional[threading.Thread] = None
        self.calls: List[int] = []  #: jobs in each model call, in order (the last 1000)
        self.totals = {"model_calls": 0, "transcribed": 0}  #: transcription calls and jobs since the start
        self.ready = threading.Event()  #: set once the warm-up call has run

    # ------------------------------------------------------------ event loop side
    def start(self, warmup: Optional[Any] = None) -> None:
        """Starts the worker thread; with ``warmup`` (a waveform) it first
        transcribes it once and only then sets :attr:`ready`."""
        self._thread = threading.Thread(target=self._run, args=(warmup,), name="w2vbert-model", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Lets the running call finish and stops the worker (queued jobs are dropped)."""
        if self._thread is None:
            return
        while True:
            try:
                self._queue.get_nowait().abandoned = True
            except queue.Empty:
                break
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    @property
    def alive(self) -> bool:
        """Whether the worker thread runs."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def queued(self) -> int:
        """Jobs waiting (not yet taken by the worker)."""
        return self._queue.qsize() + len(self._held)

    async def run(self, job: Job, timeout: Optional[float] = None):
        """Queues ``job`` and waits for its result.

        Raises
        ------
        QueueFull
            The queue is full.
        asyncio.TimeoutError
            No result within ``timeout`` seconds (the job is skipped if it
            has not started).
        Exception
            What the backend raised for this job.
        """
        job.loop = asyncio.get_running_loop()
        job.future = job.loop.create_future()
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise QueueFull(f"{self.max_queue} requests are waiting already") from None
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            job.abandoned = True
            raise

    async def transcribe(self, wav, hotwords: Sequence[str] = (), timeout: Optional[float] = None):
        """The ``Transcript`` (or ``AudioError``) of one waveform, batched with others."""
        return await self.run(Job("transcribe", wav, tuple(hotwords)), timeout)

    async def align(self, wav, text: str, timeout: Optional[float] = None):
        """The ``Alignment`` of a known transcript to one waveform."""
        return await self.run(Job("align", wav, text=text), timeout)

    # ------------------------------------------------------------ worker side
    def _next(self, timeout: Optional[float]) -> Optional[Job]:
        if self._held:
            return self._held.popleft()
        try:
            return self._queue.get(timeout=timeout) if timeout is None or timeout > 0 else self._queue.get_nowait()
        except queue.Empty:
            return None

    def _gather(self, first: Job) -> List[Job]:
        """``first`` and the transcription jobs that join it."""
        batch, later = [first], []
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.max_batch:
            job = self._next(max(0.0, deadline - time.monotonic()))
            if job is None:
                break
            if job.kind == "transcribe":
                batch.append(job)
            else:  # an alignment or the stop: after this batch
                later.append(job)
                if job is _STOP:
                    break
        self._held.extendleft(reversed(later))
        return batch

    @staticmethod
    def _deliver(job: Job, result=None, error: Optional[BaseException] = None) -> None:
        def settle():
            """Sets the result in the event loop (unless the caller gave up)."""
            if not job.future.done():
                if error is None:
                    job.future.set_result(result)
                else:
                    job.future.set_exception(error)
        try:
            job.loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the event loop is closed: nobody waits
            pass

    def _transcribe(self, jobs: List[Job]) -> None:
        groups = {}
        for job in jobs:
            groups.setdefault(job.hotwords, []).append(job)
        for hotwords, group in groups.items():
            try:
                backend = self.backend.with_hotwords(hotwords) if hotwords else self.backend
                results = backend.transcribe_waveforms([job.wav for job in group], True)
            except Exception as error:  # the backend's fault: these jobs fail, the worker goes on
                logger.exception("transcription of %d requests failed", len(group))
                for job in group:
                    self._deliver(job, error=error)
                continue
            for job, result in zip(group, results):
                self._deliver(job, result)
        self.calls = (self.calls + [len(jobs)])[-1000:]  # a new list: readers in other threads see a whole one
        self.totals = {"model_calls": self.totals["model_calls"] + 1,
                       "transcribed": self.totals["transcribed"] + len(jobs)}

    def _align(self, job: Job) -> None:
        try:
            self._deliver(job, self.backend.align_waveform(job.wav, job.text))
        except Exception as error:
            self._deliver(job, error=error)

    def _run(self, warmup) -> None:
        if warmup is not None:
            try:
                self.backend.transcribe_waveforms([warmup], True)
            except Exception:
                logger.exception("the warm-up transcription failed")
        self.ready.set()
        while True:
            first = self._next(None)
            if first is _STOP:
                return
            if first.abandoned:
                continue
            if first.kind == "align":
                self._align(first)
                continue
            jobs = [job for job in self._gather(first) if not job.abandoned]
            if jobs:
                self._transcribe(jobs)
