"""Schemathesis against every service's own OpenAPI document, on the real running services (issue 18).

A bounded number of generated requests per operation (valid and invalid, with an organiser's
key): no answer is a 5xx, and every answer keeps to what the document says (its status
codes, media types and response schemas). The document is the one each service serves.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Err

from pitchin_testing.stack import Stack

pytestmark = pytest.mark.e2e

SERVICES = ("signups", "matching", "notifications", "scheduling")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Enough to reach every field's edges (the coverage phase makes those first) in a minute or two.
EXAMPLES_PER_OPERATION = 6


@pytest.fixture(scope="module")
def fuzz_key(stack: Stack) -> str:
    return stack.issue_key(f"fed-fuzz-{uuid.uuid4().hex[:6]}", "org-fuzz", "organiser")


_RUN = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,  # the same requests every run: a failure here is reproducible
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_keeps_to_the_services_openapi(stack: Stack, fuzz_key: str, service: str) -> None:
    # Driven by hand rather than with schemathesis' pytest plugin, which does not load on pytest 9.
    schema = schemathesis.openapi.from_url(f"{stack[service].url}/openapi.json")
    failures: list[str] = []
    tried = 0
    for loaded in schema.get_all_operations():
        assert not isinstance(loaded, Err), f"{service}: an operation the schema cannot describe: {loaded}"
        operation = loaded.ok()

        @given(case=operation.as_strategy())
        @_RUN
        def call(case: Any) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {fuzz_key}"}, checks=CHECKS, timeout=15)

        tried += 1
        try:
            call()
        except Exception as failure:  # every operation's failure, not just the first
            failures.append(f"{operation.label}: {str(failure)[:600]}")
    assert tried >= 5, f"{service} documents only {tried} operations"
    assert failures == [], "\n\n".join(failures)
