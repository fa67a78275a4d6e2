"""Where the node judges are (deploy/tools/install-standards-tools.sh installs them), and how to run them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ASYNCAPI_CLI_VERSION = "6.2.0"
ICAL_JS_VERSION = "2.2.1"
_CACHE = Path(os.environ.get("PITCHIN_CACHE", Path.home() / ".cache" / "pitchin"))
NPM_DIR = Path(
    os.environ.get(
        "PITCHIN_STANDARDS_NPM",
        _CACHE / "npm" / f"standards-asyncapi-{ASYNCAPI_CLI_VERSION}-icaljs-{ICAL_JS_VERSION}",
    )
)
INSTALL = "bash deploy/tools/install-standards-tools.sh"


def node_tool(relative: str) -> Path:
    """A file of the installed node judges; the test is skipped, saying how to install them, when absent.

    In CI (`PITCHIN_STANDARDS_REQUIRED=1`, set by the make target that runs the install script
    first) a missing judge fails instead, so a broken install cannot pass as a skip.
    """
    path = NPM_DIR / relative
    if shutil.which("node") is None or not path.exists():
        message = f"{path} is not installed: run `{INSTALL}`"
        if os.environ.get("PITCHIN_STANDARDS_REQUIRED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def run_node(script: str, stdin: bytes, timeout: float = 60) -> str:
    """A node ES module script (`node --input-type=module`), the judges' node_modules on its path."""
    answer = subprocess.run(
        ["node", "--input-type=module", "-e", script],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        cwd=NPM_DIR,
        check=False,
    )
    assert answer.returncode == 0, answer.stderr.decode()
    return answer.stdout.decode()
