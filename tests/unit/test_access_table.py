"""docs/access.md is what the services' routes say: a new route or a changed key check shows there.

The generator builds every service's app, which sets process-wide logging and tracing: it runs
in a process of its own so this test process is left as it was.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / "deploy" / "tools" / "access_table.py"


def test_the_access_table_is_what_the_routes_say() -> None:
    checked = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr[-2000:]
    table = (REPO / "docs" / "access.md").read_text(encoding="utf-8")
    # Every service's key-checked routes are there, staff-only ones named as such.
    assert "| `POST /v1/api-keys` | any key" in table
    assert "| `GET /v1/publishers` | federation staff |" in table
    for service in ("signups", "matching", "notifications", "scheduling"):
        assert f"### {service}" in table
