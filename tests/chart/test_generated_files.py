"""The chart's generated files are what the code makes; `make contracts` writes them.

- ``helm/pitchin/files/topics.yaml``: the topic table of ``pitchin_core.contracts.topics``,
  written by ``pitchin_core.contracts.docs``; the chart's KafkaTopics, KafkaUser ACLs, KEDA
  triggers and Kafka clients follow from it;
- ``helm/pitchin/files/dashboards/*.json`` and ``files/prometheus-rules.yaml``: written by
  ``deploy/observability/dashboards.py``.

Each is committed once, inside the chart (Helm reads no file outside it); everything else reads
it from there. No servers and no tools: these run with the unit tests' speed.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from pitchin_core.contracts import docs
from pitchin_testing.processes import BACKENDS

pytestmark = pytest.mark.chart

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "pitchin"


def _dashboards_script() -> ModuleType:
    """deploy/observability/dashboards.py, a script rather than a package module: loaded by path."""
    path = REPO / "deploy" / "observability" / "dashboards.py"
    spec = importlib.util.spec_from_file_location("pitchin_observability_dashboards", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


dashboards = _dashboards_script()


def test_the_chart_topic_table_is_the_code_topic_table() -> None:
    assert docs.CHART_TOPICS == CHART / "files" / "topics.yaml"
    committed = docs.CHART_TOPICS.read_text(encoding="utf-8")
    assert committed == docs.chart_topics(), "helm/pitchin/files/topics.yaml drifts from the code: run `make contracts`"


def test_the_dashboards_and_the_chart_rules_are_what_dashboards_py_makes() -> None:
    stale = [str(path.relative_to(REPO)) for path in dashboards.stale()]
    assert not stale, f"run `make contracts`; out of date: {stale}"
    assert dashboards.DASHBOARDS == CHART / "files" / "dashboards"
    names = {p.name for p in dashboards.DASHBOARDS.glob("*.json")}
    assert {"pitchin-overview.json", "pitchin-kafka.json"} | {f"pitchin-{s}.json" for s in BACKENDS} <= names
    # One committed copy: nothing outside the chart holds dashboards.
    assert not (REPO / "deploy" / "observability" / "dashboards").exists()


def test_drift_and_leftovers_are_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check bites: an edited dashboard and one the script no longer makes are both reported."""
    copy = tmp_path / "dashboards"
    shutil.copytree(dashboards.DASHBOARDS, copy)
    monkeypatch.setattr(dashboards, "DASHBOARDS", copy)
    rules = tmp_path / "prometheus-rules.yaml"
    shutil.copy(dashboards.CHART_RULES, rules)
    monkeypatch.setattr(dashboards, "CHART_RULES", rules)  # write() below must not touch the chart
    assert dashboards.stale() == []
    edited = copy / "pitchin-overview.json"
    edited.write_text(edited.read_text(encoding="utf-8").replace('"Pitch In', '"Pitch Out', 1), encoding="utf-8")
    leftover = copy / "pitchin-retired.json"
    leftover.write_text("{}\n", encoding="utf-8")
    assert dashboards.stale() == [edited, leftover]
    dashboards.write()
    assert dashboards.stale() == [] and not leftover.exists()
