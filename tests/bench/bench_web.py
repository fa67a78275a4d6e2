"""Web front: server-side render time per page under load, beside a bare FastAPI route in the same run.

Two figures per page:
  - the template alone, rendered in this process with a realistic view model (no I/O): what the
    HTML costs to make;
  - the whole page over HTTP with N requests at once against the running web front, which calls
    the real services (Kafka, PostgreSQL behind them): median and p99 latency, pages per second;
    beside the raw limit: a bare FastAPI route returning a constant, served by uvicorn in its own
    process on a loopback port like the web front's, loaded the same way.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from pitchin_core.links import sign_record_link
from pitchin_testing.ports import free_port
from pitchin_testing.stack import Stack
from pitchin_web.domain import views
from pitchin_web.messages import Translator
from pitchin_web.pages.common import templates
from tests.bench.limits import line, percentile
from tests.bench.system import running_system
from tests.e2e.helpers import create_event, eventually, sign_up, wait_until_signups_knows

CONCURRENCY = 16
REQUESTS = 800
RENDERS = 2000

BARE_APP = """
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
app = FastAPI()
@app.get("/")
async def constant() -> PlainTextResponse:
    return PlainTextResponse("ok")
"""


async def _load(url: str, total: int, concurrency: int) -> tuple[list[float], float, dict[int, int]]:
    """`total` GETs, `concurrency` at a time: latencies (ms), pages per second, statuses."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    slots = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=concurrency)) as client:
        for _ in range(20):
            await client.get(url)

        async def one() -> None:
            async with slots:
                began = time.perf_counter()
                answer = await client.get(url)
                latencies.append((time.perf_counter() - began) * 1000)
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(total)))
        return latencies, total / (time.perf_counter() - started), statuses


def _render_micros() -> dict[str, float]:
    """Template-only render time per page (µs), with view models like the live pages'."""
    env = templates()
    t = Translator()
    start = datetime.now(UTC) + timedelta(days=3)
    event = {
        "event_id": "evt_bench",
        "kind": "panel",
        "title": "Anarchists in the Boardroom",
        "description": "A panel.\n\nWith friends.",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=2)).isoformat(),
        "time_zone": "Europe/London",
        "venue_name": "Dudley CVS",
        "online_url": "https://stream.example.org/x",
        "hashtag": "Org20",
        "capacity": 60,
        "status": "published",
    }
    view = views.public_event(event, {"capacity": 60, "confirmed": 12, "waitlisted": 0}, "America/New_York", start)
    common = {"t": t, "csrf": "x" * 43, "flashes": [], "user": None, "errors": {}, "values": {}, "path": "/"}
    pages = {
        "home.html": {},
        "event.html": {"event": view, "sessions": [], "zone_known": True},
        "signup.html (step 2)": {
            "step": 2,
            "total": 3,
            "skills": {f"skill-{i}": f"Skill {i}" for i in range(10)},
            "consent_version": "2026-01",
        },
    }
    record = {
        "work": [
            {
                "need_title": f"Need {i}",
                "organisation_id": f"org-{i % 3}",
                "hours_given": 2.5,
                "thanks": "Thank you!" if i % 2 else "",
                "completed_at": start.isoformat(),
            }
            for i in range(20)
        ]
    }
    pages["record.html (20 pieces of work)"] = {
        "donor_name": "Bench Donor",
        "skills": [{"skill": "social-media", "label": "Social media", "level": "expert"}],
        "record": views.donor_record(record, "Europe/London"),
    }
    common["languages"] = {"en": "English"}
    out = {}
    for name, context in pages.items():
        template = env.get_template(name.split(" ")[0])
        template.render(**common, **context)
        began = time.perf_counter()
        for _ in range(RENDERS):
            template.render(**common, **context)
        out[name] = (time.perf_counter() - began) / RENDERS * 1e6
    return out


def main() -> None:
    print(f"web front benchmark ({CONCURRENCY} requests at once, {REQUESTS} per page)")
    for name, micros in _render_micros().items():
        print(f"  template only: {name:<40} {micros:>8.1f} µs per render")

    bare_dir = Path(tempfile.mkdtemp(prefix="pitchin-bench-web-"))
    (bare_dir / "bare_app.py").write_text(BARE_APP)
    bare_port = free_port()
    bare = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(bare_port), "--log-level", "warning"],
        cwd=bare_dir,
        env={**os.environ, "PYTHONPATH": str(bare_dir)},
    )
    try:
        with running_system(web_federation_id="fed-bench") as system:
            _measure(system.stack, bare_port)
    finally:
        bare.terminate()
        bare.wait(10)


def _measure(stack: Stack, bare_port: int) -> None:
    """Each page over HTTP against the running web front, beside the bare route."""
    key = stack.issue_key("fed-bench", "org-bench", "organiser")
    event = create_event(stack, key, starts_in=timedelta(days=5), kind="panel", title="Bench panel", capacity=100)
    event_id = event.json()["event_id"]
    web = stack["web"].url
    wait_until_signups_knows(stack, key, event_id)
    donor = sign_up(stack, key, name="Bench Donor", email="bench-donor@example.org")
    record_link = sign_record_link(stack.donor_link_secret, donor.json()["donor_id"], time.time())
    eventually(  # matching learns of the donor from Kafka
        lambda: httpx.get(f"{web}/record/{record_link}", timeout=5).status_code == 200,
        timeout=30,
        what="the donor's record page",
    )

    bare_lat, bare_rate, _ = asyncio.run(_load(f"http://127.0.0.1:{bare_port}/", REQUESTS, CONCURRENCY))
    bare_p50 = percentile(bare_lat, 50)
    print(f"  raw: bare FastAPI route (uvicorn, own process): p50 {bare_p50:.2f} ms, {bare_rate:.0f} per s")
    for label, path in (
        ("home (no service call)", "/"),
        ("sign-up step 1 (taxonomy from signups)", "/donors/signup"),
        ("public event page (scheduling x2 + signups)", f"/events/{event_id}"),
        ("event listing (scheduling)", "/events"),
        ("donor record page (signups x2 + matching)", f"/record/{record_link}"),
    ):
        latencies, rate, statuses = asyncio.run(_load(web + path, REQUESTS, CONCURRENCY))
        assert set(statuses) == {200}, statuses
        print(line(f"{label} p50", percentile(latencies, 50), "ms", "bare route p50", bare_p50, "ms"))
        print(line(f"{label} p99", percentile(latencies, 99), "ms", "bare route p99", percentile(bare_lat, 99), "ms"))
        print(line(f"{label} pages/s", rate, "per s", "bare route", bare_rate, "per s"))


if __name__ == "__main__":
    main()
