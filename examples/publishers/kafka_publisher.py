"""Publish into Pitch In over Kafka, as a third party would: plain aiokafka, no Pitch In code.

    python examples/publishers/kafka_publisher.py --bootstrap 127.0.0.1:19092 \
        --source /crm/unite-west-midlands --federation fed-wm --organisation org-unite \
        --topic pitchin.ingest.v1.crm-unite-west-midlands-<hash> --username <user> --password <password>

Each event is a CloudEvent in binary mode on the publisher's own topic (given with its SASL/SCRAM
credentials when it is registered, docs/ingest.md), keyed by the source. Only this publisher may
write that topic, and Pitch In refuses a record whose `ce_source` names another source.
Refusals come back on `pitchin.ingest.rejections.v1` keyed by the same source (`--rejections`).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

TOPIC = "pitchin.ingest.v1"
REJECTIONS = "pitchin.ingest.rejections.v1"


def headers_for(source: str, event_type: str, event_id: str, tenant: str) -> list[tuple[str, bytes]]:
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", event_id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", event_type.encode()),
        ("ce_time", datetime.now(UTC).isoformat().encode()),
        ("ce_tenant", tenant.encode()),
        ("content-type", b"application/json"),
    ]


def sasl(username: str, password: str) -> dict[str, Any]:
    """aiokafka's options for Pitch In's brokers: SASL/SCRAM-SHA-512 (SASL_SSL where it is off-host)."""
    return {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": username,
        "sasl_plain_password": password,
    }


async def publish(
    bootstrap: str, source: str, events: list[tuple[str, dict[str, Any]]], *, topic: str, login: dict[str, Any]
) -> list[str]:
    """Publish (type, data) pairs in order on `topic` as `login` (`sasl(...)`); the ids sent, in order."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **login, acks="all", enable_idempotence=True)
    await producer.start()
    ids = []
    try:
        for event_type, data in events:
            event_id = str(uuid.uuid4())
            tenant = data["federation_id"] + (f"/{data['organisation_id']}" if data.get("organisation_id") else "")
            await producer.send_and_wait(
                topic,
                value=json.dumps(data).encode(),
                key=source.encode(),
                headers=headers_for(source, event_type, event_id, tenant),
            )
            ids.append(event_id)
    finally:
        await producer.stop()
    return ids


async def rejections(bootstrap: str, source: str, login: dict[str, Any], seconds: float = 5.0) -> list[dict[str, Any]]:
    """This source's rejections so far (read from the beginning, for a few seconds)."""
    consumer = AIOKafkaConsumer(
        REJECTIONS, bootstrap_servers=bootstrap, **login, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    found = []
    try:
        end = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < end:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found += [json.loads(r.value) for r in records if r.key == source.encode()]
    finally:
        await consumer.stop()
    return found


def _samples() -> Any:
    """samples.py beside this script: one example of every type."""
    spec = importlib.util.spec_from_file_location("samples", Path(__file__).with_name("samples.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--source", required=True)
    parser.add_argument("--federation", required=True)
    parser.add_argument("--organisation", required=True)
    parser.add_argument("--topic", required=True, help="this publisher's own topic, pitchin.ingest.v1.<...>")
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--run", default=uuid.uuid4().hex[:8], help="makes external ids unique")
    parser.add_argument("--rejections", action="store_true", help="then print this source's rejections")
    args = parser.parse_args()
    events = _samples().every_type(args.federation, args.organisation, args.run)
    login = sasl(args.username, args.password)
    ids = asyncio.run(publish(args.bootstrap, args.source, events, topic=args.topic, login=login))
    for (event_type, _), event_id in zip(events, ids, strict=True):
        print(f"published {event_type} id={event_id}")
    if args.rejections:
        for rejection in asyncio.run(rejections(args.bootstrap, args.source, login)):
            print(json.dumps(rejection))


if __name__ == "__main__":
    main()
