"""A consumer batch reads a federation's configuration once; anything else reads it each time."""

from __future__ import annotations

from pitchin_core.uow import one_transaction
from pitchin_notifications.service.messages import _once_per_batch


class Loads:
    def __init__(self) -> None:
        self.count = 0

    async def __call__(self) -> int:
        self.count += 1
        return self.count


async def test_a_batch_loads_each_key_once_and_the_next_batch_loads_again() -> None:
    loads = Loads()
    async with one_transaction():
        assert [await _once_per_batch(("config", "fed-a"), loads) for _ in range(3)] == [1, 1, 1]
        assert await _once_per_batch(("config", "fed-b"), loads) == 2
    async with one_transaction():
        assert await _once_per_batch(("config", "fed-a"), loads) == 3
    assert loads.count == 3


async def test_outside_a_batch_every_call_loads() -> None:
    loads = Loads()
    assert [await _once_per_batch(("config", "fed-a"), loads) for _ in range(2)] == [1, 2]
