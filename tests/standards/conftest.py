from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _apps_built_with_built_in_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    # The judges build each app to read its documents and never serve it: the built-in secrets,
    # taken only with an explicit local environment, are enough.
    monkeypatch.setenv("PITCHIN_ENVIRONMENT", "local")
