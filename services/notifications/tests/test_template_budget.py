"""A member's template override is bounded: refused at save when it runs away, replaced at send when it fails."""

from __future__ import annotations

import time

import pytest

from pitchin_notifications.domain.messages import PlannedMessage, Priority
from pitchin_notifications.templates import OverBudget, Renderer

RUNAWAY = [
    "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",  # 10^10 steps
    "{% for a in range(10000) %}{% for b in range(10000) %}x{% endfor %}{% endfor %}",  # 10^8 characters
    "{{ 'x' * 1000000000 }}",
    "{{ 10 ** 1000000 }}",
    "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
]


@pytest.mark.parametrize("body", RUNAWAY)
def test_a_runaway_override_is_refused_at_save_within_the_budget(body: str) -> None:
    began = time.thread_time()
    with pytest.raises(Exception) as refused:
        Renderer().check("text", body)
    assert refused.type in (OverBudget, RecursionError)
    assert time.thread_time() - began < 0.5


def test_an_ordinary_override_passes_the_check_even_with_names_the_sample_lacks() -> None:
    Renderer().check("text", "Hello {{ name }}, {% for i in range(3) %}{{ i }}{% endfor %} {{ some.new.field }}")


def test_at_send_a_failing_override_gives_way_to_the_default_template() -> None:
    planned = PlannedMessage(
        template="digest",
        channel="email",
        recipient="ana@example.org",
        language="en",
        context={"name": "Ana", "items": [{"subject": "Hi", "action_url": "https://p.example/x"}]},
        priority=Priority.normal,
    )
    renderer = Renderer()
    default = renderer.render(planned)
    stored_before_the_budget = {("federation", "en", "text"): RUNAWAY[0]}
    began = time.perf_counter()
    rendered = renderer.render(planned, stored_before_the_budget)
    assert time.perf_counter() - began < 1.0
    assert rendered.text == default.text
