"""Consumer lag arithmetic: pure, so it is tested here rather than beside the running services."""

from __future__ import annotations

from pitchin_core.lag import PartitionHistory, compute_lag


def test_lag_counts_from_the_commit_or_the_beginning_and_ages_from_the_end_offset_history() -> None:
    assert compute_lag(end=10, committed=7, beginning=0) == 3
    assert compute_lag(end=10, committed=None, beginning=4) == 6  # no commit yet: auto_offset_reset=earliest
    assert compute_lag(end=10, committed=2, beginning=5) == 5  # committed offset deleted by retention
    assert compute_lag(end=10, committed=10, beginning=0) == 0
    history = PartitionHistory()
    for at, end in ((100.0, 5), (105.0, 5), (110.0, 8), (115.0, 12)):
        history.record(at, end)
    assert [end for _, end in history.samples] == [5, 8, 12]  # unchanged ends are not kept twice
    assert history.waited(committed=5, now=120.0) == 10.0  # offset 5 appeared by t=110
    assert history.waited(committed=9, now=120.0) == 5.0
    assert history.waited(committed=12, now=120.0) == 0.0
