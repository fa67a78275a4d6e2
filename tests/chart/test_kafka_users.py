"""The chart's publisher KafkaUsers (issue 17): one per publishing system, matching the local ACLs.

Offline: renders the chart with two publishers and compares each KafkaUser's ACL and topic with
what `pitchin_core.kafka_auth` (the one derivation, also applied to the local broker) says.
"""

from __future__ import annotations

from pitchin_core.kafka_auth import ingest_topic, publisher_grants, publisher_username
from tests.chart.test_chart import CHART, Tools, helm_template, load_yaml_documents
from tests.chart.test_chart import tools as tools  # the session fixture, shared

SOURCES = ("/crm/unite-west-midlands", "urn:crm:Acme.B")


def test_each_publisher_gets_a_user_that_writes_its_own_topic_only(tools: Tools) -> None:
    args: list[str] = ["--values", str(CHART / "values-production.yaml")]
    for i, source in enumerate(SOURCES):
        args += ["--set-string", f"kafka.users.publishers[{i}].source={source}"]
    result = helm_template(tools, *args)
    assert result.returncode == 0, result.stderr
    objects = load_yaml_documents(result.stdout)
    users = {
        o["metadata"]["annotations"]["pitchin.org/source"]: o
        for o in objects
        if o["kind"] == "KafkaUser" and "pitchin.org/source" in o["metadata"].get("annotations", {})
    }
    assert sorted(users) == sorted(SOURCES)
    topics = {o["spec"].get("topicName") for o in objects if o["kind"] == "KafkaTopic"}
    for source, user in users.items():
        assert user["metadata"]["name"] == publisher_username(source)[:63].rstrip("-")
        acls = user["spec"]["authorization"]["acls"]
        granted = {(a["resource"]["type"], a["resource"]["name"], a["resource"]["patternType"]) for a in acls}
        assert granted == {(g.resource, g.name, g.pattern) for g in publisher_grants(source)}
        assert [a["operations"] for a in acls] == [["Write", "Describe"]]
        assert ingest_topic(source) in topics


def test_no_publisher_users_without_kafka_users(tools: Tools) -> None:
    result = helm_template(tools, "--set-string", "kafka.users.publishers[0].source=/crm/x")
    assert result.returncode == 0, result.stderr
    assert not [o for o in load_yaml_documents(result.stdout) if o["kind"] == "KafkaUser"]
