"""Micro-batching: requests that arrive within a few milliseconds share one forward pass.

One encoder forward over 16 short texts costs about as much as three over one text each on a CPU, so
under concurrent load answering texts together multiplies throughput. The batcher collects jobs until
it holds `max_items` texts or the first job has waited `max_wait_ms`, then runs `fn(texts)` once in a
worker thread (the event loop stays free to accept and answer requests meanwhile) and hands each job
its slice of the results. It waits only while more requests are in flight than it holds
(`inflight_hint`), so one client at a time pays no waiting; under load, jobs that arrive while a batch
runs form the next one.

With `split`, a batch is cut into groups (e.g. by text length, one per worker) that run as separate
`fn` calls at the same time; the batch answers when all have. Its callers still get their results in
order.

Not a scheduler: at most `max_concurrent` batches run at a time per batcher (one per inference worker;
the next batch forms while they run), jobs start in arrival order, and a job whose caller gave up
(timeout, disconnect) is dropped before its batch runs. Written by hand because the serving
libraries that batch (Triton, TorchServe, Ray Serve) are separate servers, not a 100-line component.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

# fn(texts) -> one result per text, in order
BatchFn = Callable[[list[Any]], Sequence[Any]]
# split(items) -> groups of item indices, each computed by its own fn call, all at once
SplitFn = Callable[[list[Any]], list[list[int]]]


@dataclass
class _Job:
    items: list[Any]
    future: asyncio.Future[list[Any]]
    enqueued_s: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    def __init__(
        self,
        fn: BatchFn,
        executor: Executor,
        *,
        max_items: int = 32,
        max_wait_ms: float = 4.0,
        on_batch: Callable[[int], None] | None = None,
        inflight_hint: Callable[[], int] | None = None,
        max_concurrent: int = 1,
        split: SplitFn | None = None,
    ) -> None:
        self.fn = fn
        self.executor = executor
        self.max_items = max_items
        self.max_wait_s = max_wait_ms / 1000
        self.on_batch = on_batch  # observes batch sizes (metrics)
        self.inflight_hint = inflight_hint  # requests in progress server-wide; None: always wait
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches_run = 0
        self.max_concurrent = max_concurrent
        self.split = split  # None: one fn call per batch
        self._slots: asyncio.Semaphore | None = None  # made on the loop that runs the batcher
        self._running: set[asyncio.Task[None]] = set()
        self._jobs_running = 0  # jobs inside running batches: in flight, but not coming to this one

    def start(self) -> None:
        if self._task is None:
            self._slots = asyncio.Semaphore(self.max_concurrent)
            self._task = asyncio.get_running_loop().create_task(self._run(), name="micro-batcher")

    async def submit(self, items: list[Any]) -> list[Any]:
        """Results for `items`, computed in some batch together with other callers' items."""
        if self._task is None:
            self.start()
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(list(items), future))
        return await future

    async def close(self) -> None:
        """Finish every job already queued, then stop."""
        if self._task is None:
            return
        await self._queue.put(None)
        await self._task
        self._task = None

    async def _run(self) -> None:
        carry: _Job | None = None
        assert self._slots is not None
        while True:
            first = carry or await self._queue.get()
            carry = None
            if first is None:
                await self._finish_running()
                return
            await self._slots.acquire()  # a worker is free: this batch takes what has queued meanwhile
            jobs, count, stop = [first], len(first.items), False
            deadline = first.enqueued_s + self.max_wait_s
            while count < self.max_items:
                remaining = deadline - time.perf_counter()
                if self.inflight_hint is not None and len(jobs) + self._jobs_running >= self.inflight_hint():
                    remaining = 0  # nobody else is coming: take what is queued, wait for nothing
                try:
                    # Whatever is already queued joins without waiting; otherwise wait out the deadline.
                    job = (
                        self._queue.get_nowait()
                        if remaining <= 0
                        else await asyncio.wait_for(self._queue.get(), remaining)
                    )
                except (asyncio.QueueEmpty, TimeoutError):
                    break
                if job is None:
                    stop = True
                    break
                if count + len(job.items) > self.max_items:
                    carry = job  # a large job starts the next batch rather than overfilling this one
                    break
                jobs.append(job)
                count += len(job.items)
            self._jobs_running += len(jobs)
            task = asyncio.get_running_loop().create_task(self._run_batch(jobs))
            self._running.add(task)
            task.add_done_callback(functools.partial(self._batch_done, jobs=len(jobs)))
            if stop:
                await self._finish_running()
                await self._drain()
                return

    def _batch_done(self, task: asyncio.Task[None], *, jobs: int) -> None:
        self._running.discard(task)
        self._jobs_running -= jobs
        assert self._slots is not None
        self._slots.release()

    async def _finish_running(self) -> None:
        if self._running:
            await asyncio.gather(*self._running)

    async def _drain(self) -> None:
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if job is not None:
                await self._run_batch([job])

    async def _compute(self, items: list[Any]) -> list[Any]:
        loop = asyncio.get_running_loop()
        groups = self.split(items) if self.split is not None and len(items) > 1 else [list(range(len(items)))]
        outputs = await asyncio.gather(
            *(loop.run_in_executor(self.executor, self.fn, [items[i] for i in group]) for group in groups)
        )
        results: list[Any] = [None] * len(items)
        for group, output in zip(groups, outputs, strict=True):
            if len(output) != len(group):
                raise RuntimeError(f"batch function returned {len(output)} results for {len(group)} items")
            for i, result in zip(group, output, strict=True):
                results[i] = result
        return results

    async def _run_batch(self, jobs: list[_Job]) -> None:
        jobs = [j for j in jobs if not j.future.done()]  # callers that gave up
        if not jobs:
            return
        items = [item for job in jobs for item in job.items]
        try:
            results = await self._compute(items)
        except Exception as exc:  # every caller of the batch sees the failure; the batcher keeps running
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        self.batches_run += 1
        if self.on_batch:
            self.on_batch(len(items))
        start = 0
        for job in jobs:
            if not job.future.done():
                job.future.set_result(list(results[start : start + len(job.items)]))
            start += len(job.items)
