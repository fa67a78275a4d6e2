"""Browser tests: Playwright driving Debian's Chromium against the real services, Kafka and PostgreSQL.

`deploy/web/install.sh` installs Chromium, axe-core (into the cache outside the clone) and the
Python packages. Every page a test visits is checked with axe-core and saved as a screenshot
under test-artifacts/screenshots/.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from pitchin_testing.install import repo_root
from pitchin_testing.stack import Stack
from tests.conftest import Tenant, new_tenant

pytestmark = pytest.mark.e2e

# `stack` and `otlp` come from tests/conftest.py: the same running system as the e2e tests
# (every service of SERVICES, the web front last).

CHROMIUM = "/usr/bin/chromium"
AXE_VERSION = "4.11.0"
AXE = Path(os.environ.get("PITCHIN_CACHE", Path.home() / ".cache" / "pitchin")) / "npm" / f"axe-core-{AXE_VERSION}"
SCREENSHOTS = repo_root() / "test-artifacts" / "screenshots"
# Verified on this machine kind: without the background-networking flags Chromium keeps
# dialling hosts the closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def axe_source() -> str:
    script = AXE / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        pytest.fail(f"axe-core missing at {script}: run deploy/web/install.sh")
    return script.read_text()


T = TypeVar("T")


def off_loop(call: Callable[..., T], *args: Any) -> T:
    """Playwright's sync API runs an event loop on this thread; asyncio.run (Stack.issue_key) needs another."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call, *args).result()


@pytest.fixture(scope="session")
def browser(stack: Stack) -> Iterator[Browser]:  # the stack first: it starts before the browser's loop
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium missing: run deploy/web/install.sh")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Visitor:
    """A person at a browser: every page they reach is checked with axe and photographed."""

    page: Page
    base: str
    axe: str
    name: str
    seen: list[str] = field(default_factory=list)
    findings: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)
        self.check()

    def check(self, label: str = "") -> list[dict[str, Any]]:
        """axe-core on the page as it is now; a screenshot beside it. Serious or critical findings fail."""
        self.page.wait_for_load_state("load")
        if not self.page.evaluate("typeof window.axe !== 'undefined'"):
            # Evaluated through the DevTools protocol, so the page's CSP (script-src 'self') still holds for it.
            self.page.evaluate(self.axe)
        violations: list[dict[str, Any]] = self.page.evaluate(
            """async () => {
                const result = await axe.run(document, {resultTypes: ["violations"]});
                return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.map(n => n.target.join(" ")).slice(0, 5)}));
            }"""
        )
        step = len(self.seen) + 1
        # Named by the page's path, never its query or a signed link (tokens stay out of artifacts).
        path = urlsplit(self.page.url).path
        path = re.sub(r"/(me|record|v1/donors|bookings)/[^/]+", r"/\1/link", path)
        slug = re.sub(r"[^a-z0-9]+", "-", (label or path).lower())
        shot = SCREENSHOTS / f"{self.name}-{step:02d}-{slug.strip('-')[:60] or 'home'}.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(shot), full_page=True)
        self.seen.append(self.page.url)
        self.findings[f"{step:02d} {path}"] = violations
        bad = [v for v in violations if v["impact"] in ("serious", "critical")]
        assert not bad, f"axe on {self.page.url}: {json.dumps(bad, indent=1)}"
        return violations

    def submit(self, button: str = "button[type=submit]") -> None:
        self.page.locator(button).first.click()
        self.check()

    def error_for(self, field_name: str) -> str:
        """The message beside a field (``<p id="e-<field>">``); the field points at it with aria-describedby."""
        message = self.page.locator(f"#e-{field_name}")
        assert message.is_visible(), f"no message beside {field_name} on {self.page.url}"
        return message.inner_text()


@pytest.fixture
def visitor(browser: Browser, stack: Stack, axe_source: str, request: pytest.FixtureRequest) -> Iterator[Visitor]:
    # A reader in another zone than the events', to see times shown in their own.
    context = browser.new_context(
        timezone_id="America/New_York", locale="en-GB", viewport={"width": 390, "height": 844}
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    who = Visitor(page, stack["web"].url, axe_source, request.node.name.removeprefix("test_"))
    yield who
    report = SCREENSHOTS / f"{who.name}-axe.json"
    report.write_text(json.dumps(who.findings, indent=1))
    context.close()


@pytest.fixture
def web_tenant(stack: Stack) -> Tenant:
    """A member organisation of its own in the federation the web front serves."""
    return new_tenant(stack.web_federation_id, lambda *names: off_loop(stack.issue_key, *names))
