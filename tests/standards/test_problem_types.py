"""Problem details (RFC 9457): every `type` an absolute URI, and every one documented.

Bodies are judged against the `Problem` schema each service's OpenAPI document publishes, by
jsonschema-rs (schemathesis's validator) with formats checked: a relative `/problems/…` type
is not a `uri` and fails.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from pitchin_core.errors import PROBLEM_TYPES, Conflict, NotFound, Refused, problem_type
from pitchin_core.http import PROBLEM_JSON, Problem, install_error_handlers
from pitchin_core.ingest import validation
from pitchin_core.ingest.validation import Rejection

ROOT = Path(__file__).resolve().parents[2]
# The web front serves pages, not an API: it publishes no OpenAPI document.
SERVICES = ["signups", "matching", "notifications", "scheduling"]
# A type named in code: `/problems/<name>` in a string, or an f-string's fixed part before `{`.
NAMED = re.compile(r"""["']/problems/([a-z/-]+?)(["'{])""")


def document(service: str) -> dict[str, Any]:
    main = importlib.import_module(f"pitchin_{service}.main")
    openapi: dict[str, Any] = main.create_app().openapi()
    return openapi


def problem_validator(openapi: dict[str, Any]) -> jsonschema_rs.Validator:
    return jsonschema_rs.validator_for(openapi["components"]["schemas"]["Problem"], validate_formats=True)


def test_every_type_named_in_code_is_a_documented_one() -> None:
    named: set[str] = set()
    for source in [*ROOT.glob("libs/pitchin_*/**/*.py"), *ROOT.glob("services/*/pitchin_*/**/*.py")]:
        for name, end in NAMED.findall(source.read_text()):
            if end == "{":
                assert name == "ingest/", f"{source}: a type built from a value other than an ingest reason"
                continue
            named.add(name)
    assert {"validation", "clash", "idempotency", "ingest/not-found"} <= named  # the scan finds them
    # The ingest types are `ingest/<reason>`, one per reason a rejection can give.
    named |= {f"ingest/{reason}" for reason in validation._TITLES}
    assert named - PROBLEM_TYPES.keys() == set()


@pytest.mark.parametrize("service", SERVICES)
def test_each_openapi_document_describes_every_type_as_an_absolute_uri(service: str) -> None:
    openapi = document(service)
    described = openapi["components"]["schemas"]["Problem"]["properties"]["type"]
    assert described["format"] == "uri"
    for name in PROBLEM_TYPES:
        assert f"`{problem_type(name)}`" in described["description"], name
    assert described["examples"] == [problem_type(name) for name in PROBLEM_TYPES]
    valid = problem_validator(openapi)
    for example in described["examples"]:
        assert valid.is_valid({"type": example, "title": "t", "status": 400}), example
    assert not valid.is_valid({"type": "/problems/validation", "title": "t", "status": 422})


class _Body(BaseModel):
    count: int


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/refused")
    async def refused() -> None:
        raise Refused("skills.0.skill", "not in the federation's skills")

    @app.get("/clash")
    async def clash() -> None:
        raise Conflict("Booked twice", kind="/problems/clash")

    @app.get("/missing")
    async def missing() -> None:
        raise NotFound("event", "ev_1")

    @app.get("/ingest")
    async def ingest() -> None:
        raise Problem(400, "Not JSON", "body: not JSON", kind="/problems/ingest/bad-json")

    @app.post("/invalid")
    async def invalid(body: _Body) -> None:
        raise AssertionError("never reached: the body is not valid")

    return app


def test_every_answer_carries_an_absolute_documented_type() -> None:
    valid = problem_validator(document("signups"))
    client = TestClient(_app(), raise_server_exceptions=False)
    answers = [
        client.get("/refused"),
        client.get("/clash"),
        client.get("/missing"),
        client.get("/ingest"),
        client.post("/invalid", json={"count": "many"}),
        client.get("/no-such-route"),
    ]
    types = []
    for answer in answers:
        assert answer.headers["content-type"] == PROBLEM_JSON
        body = answer.json()
        errors = [str(e) for e in valid.iter_errors(body)]
        assert errors == [], (body, errors)
        types.append(body["type"])
    assert types == [
        "tag:pitchin.example,2026:problems/validation",
        "tag:pitchin.example,2026:problems/clash",
        "about:blank",
        "tag:pitchin.example,2026:problems/ingest/bad-json",
        "tag:pitchin.example,2026:problems/validation",
        "about:blank",
    ]
    # Ingest's refusals, answered over HTTP and dead-lettered on Kafka alike.
    rejection = Rejection.one(422, "schema", "data.email", "not an email")
    assert json.loads(json.dumps(rejection.problem_body()))["type"] == "tag:pitchin.example,2026:problems/ingest/schema"
    assert valid.is_valid(rejection.problem_body())
