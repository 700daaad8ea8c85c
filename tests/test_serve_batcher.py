"""The micro-batcher: concurrent callers share forwards, each gets its own results, failures reach all."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tunegate.serve.batcher import MicroBatcher


def _recording_fn(calls: list[list[int]], delay_s: float = 0.0):
    def fn(items: list[int]) -> list[int]:
        calls.append(list(items))
        if delay_s:
            threading.Event().wait(delay_s)
        return [x * 10 for x in items]

    return fn


def test_concurrent_callers_share_batches_and_get_their_own_results() -> None:
    calls: list[list[int]] = []

    async def main() -> list[list[int]]:
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(_recording_fn(calls, 0.01), pool, max_items=8, max_wait_ms=20)
            results = await asyncio.gather(*(batcher.submit([i, 100 + i]) for i in range(12)))
            await batcher.close()
            return results

    results = asyncio.run(main())
    assert results == [[i * 10, (100 + i) * 10] for i in range(12)]
    assert len(calls) < 12  # shared forwards, not one per caller
    assert max(len(c) for c in calls) <= 8  # never over max_items
    assert sorted(x for c in calls for x in c) == sorted(
        [i for i in range(12)] + [100 + i for i in range(12)]
    )


def test_a_failing_batch_fails_its_callers_and_the_batcher_keeps_serving() -> None:
    def fn(items: list[int]) -> list[int]:
        if -1 in items:
            raise ValueError("bad input in batch")
        return items

    async def main() -> None:
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(fn, pool, max_items=4, max_wait_ms=0)
            with pytest.raises(ValueError, match="bad input"):
                await batcher.submit([-1])
            assert await batcher.submit([7]) == [7]
            await batcher.close()

    asyncio.run(main())


def test_a_caller_that_gave_up_is_dropped_before_its_batch_runs() -> None:
    calls: list[list[int]] = []
    started, release = threading.Event(), threading.Event()

    def fn(items: list[int]) -> list[int]:
        calls.append(list(items))
        started.set()
        release.wait(5)
        return items

    async def main() -> None:
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(fn, pool, max_items=1, max_wait_ms=0)
            first = asyncio.ensure_future(batcher.submit([1]))
            await asyncio.to_thread(started.wait, 5)
            doomed = asyncio.ensure_future(batcher.submit([2]))
            await asyncio.sleep(0.01)
            doomed.cancel()
            release.set()
            assert await first == [1]
            assert await batcher.submit([3]) == [3]
            await batcher.close()

    asyncio.run(main())
    assert [2] not in calls
    assert calls == [[1], [3]]


def test_with_one_request_in_flight_nothing_waits_for_company() -> None:
    calls: list[list[int]] = []

    async def main() -> float:
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(
                _recording_fn(calls), pool, max_items=32, max_wait_ms=500, inflight_hint=lambda: 1
            )
            loop = asyncio.get_running_loop()
            start = loop.time()
            for i in range(5):
                await batcher.submit([i])
            elapsed = loop.time() - start
            await batcher.close()
            return elapsed

    assert asyncio.run(main()) < 0.5  # five sequential requests, none waited the 500 ms window
    assert calls == [[0], [1], [2], [3], [4]]


def test_close_finishes_queued_jobs() -> None:
    calls: list[list[int]] = []

    async def main() -> list[list[int]]:
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(_recording_fn(calls, 0.005), pool, max_items=2, max_wait_ms=1)
            pending = [asyncio.ensure_future(batcher.submit([i])) for i in range(6)]
            await asyncio.sleep(0)
            await batcher.close()
            return [p.result() for p in pending]

    assert asyncio.run(main()) == [[i * 10] for i in range(6)]


def test_two_workers_run_two_batches_at_once_and_results_stay_with_their_callers() -> None:
    both_running = threading.Barrier(2, timeout=10)  # passes only if two batches are inside fn together
    calls: list[list[int]] = []

    def fn(items: list[int]) -> list[int]:
        calls.append(list(items))
        if len(calls) <= 2:
            both_running.wait()
        return [x * 10 for x in items]

    async def main() -> list[list[int]]:
        with ThreadPoolExecutor(2) as pool:
            batcher = MicroBatcher(fn, pool, max_items=4, max_wait_ms=0, max_concurrent=2)
            results = await asyncio.gather(*(batcher.submit([i]) for i in range(16)))
            await batcher.close()
            return results

    assert asyncio.run(main()) == [[i * 10] for i in range(16)]
    assert sorted(x for c in calls for x in c) == list(range(16))
    assert max(len(c) for c in calls) <= 4


def test_a_split_batch_runs_its_parts_at_once_and_answers_in_caller_order() -> None:
    from tunegate.serve.holder import split_by_length

    texts = ["a" * n for n in (30, 2, 17, 5, 41, 9, 3, 22)]
    groups = split_by_length(texts, 2)
    assert sorted(i for g in groups for i in g) == list(range(len(texts)))
    lengths = [[len(texts[i]) for i in g] for g in groups]
    assert lengths[0] == sorted(lengths[0]) and max(lengths[0]) <= min(lengths[1])  # short part, long part
    assert abs(sum(lengths[0]) - sum(lengths[1])) <= 41  # balanced to within one text
    assert split_by_length(["x"], 4) == [[0]]

    running, overlapped = [0], [False]
    lock = threading.Lock()

    def fn(items: list[str]) -> list[int]:
        with lock:
            running[0] += 1
            overlapped[0] |= running[0] > 1
        threading.Event().wait(0.05)
        with lock:
            running[0] -= 1
        return [len(x) for x in items]

    async def main() -> list[list[int]]:
        with ThreadPoolExecutor(2) as pool:
            batcher = MicroBatcher(
                fn, pool, max_items=64, max_wait_ms=50, split=lambda items: split_by_length(items, 2)
            )
            results = await asyncio.gather(*(batcher.submit([t]) for t in texts))
            await batcher.close()
            return results

    assert asyncio.run(main()) == [[len(t)] for t in texts]
    assert overlapped[0]  # the parts of one batch ran at the same time
