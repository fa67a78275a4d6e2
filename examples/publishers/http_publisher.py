"""Publish into Pitch In over HTTP, as a third party would: plain httpx, no Pitch In code.

    python examples/publishers/http_publisher.py --url http://127.0.0.1:8001 \
        --source /crm/unite-west-midlands --federation fed-wm --organisation org-unite \
        --key pub_... [--secret whsec_...] [--mode binary|structured|batch]

With `--secret` requests are signed (Standard Webhooks) instead of carrying the key.
Answers 429 and 409 with Retry-After (an RSVP racing its event) are retried after the wait.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import importlib.util
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx


def signed(secret: str, body: bytes) -> dict[str, str]:
    """Standard Webhooks headers: v1 = base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}"))."""
    msg_id, timestamp = f"msg_{uuid.uuid4().hex}", str(int(time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


def structured(source: str, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": source,
        "type": event_type,
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "data": data,
    }


def send(
    client: httpx.Client, url: str, body: bytes, headers: dict[str, str], key: str | None, secret: str | None
) -> httpx.Response:
    for _ in range(60):
        auth = signed(secret, body) if secret else {"Authorization": f"Bearer {key}"}
        answer = client.post(f"{url}/v1/ingest", content=body, headers={**headers, **auth})
        if answer.status_code in (409, 429) and "retry-after" in answer.headers:
            time.sleep(min(float(answer.headers["retry-after"]), 5.0))
            continue
        return answer
    return answer


def publish(
    url: str,
    source: str,
    events: list[tuple[str, dict[str, Any]]],
    *,
    key: str | None = None,
    secret: str | None = None,
    mode: str = "binary",
) -> list[httpx.Response]:
    """Publish (type, data) pairs in order; the answers (one per request)."""
    answers = []
    with httpx.Client(timeout=30) as client:
        if mode == "batch":
            batch = [structured(source, t, d) for t, d in events]
            body = json.dumps(batch).encode()
            answers.append(send(client, url, body, {"content-type": "application/cloudevents-batch+json"}, key, secret))
            return answers
        for event_type, data in events:
            if mode == "structured":
                body = json.dumps(structured(source, event_type, data)).encode()
                headers = {"content-type": "application/cloudevents+json"}
            else:
                body = json.dumps(data).encode()
                headers = {
                    "content-type": "application/json",
                    "ce-specversion": "1.0",
                    "ce-id": str(uuid.uuid4()),
                    "ce-source": source,
                    "ce-type": event_type,
                    "ce-time": datetime.now(UTC).isoformat(),
                }
            answers.append(send(client, url, body, headers, key, secret))
    return answers


def _samples() -> Any:
    """samples.py beside this script: one example of every type."""
    spec = importlib.util.spec_from_file_location("samples", Path(__file__).with_name("samples.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8001")
    parser.add_argument("--source", required=True)
    parser.add_argument("--federation", required=True)
    parser.add_argument("--organisation", required=True)
    parser.add_argument("--key")
    parser.add_argument("--secret")
    parser.add_argument("--mode", choices=["binary", "structured", "batch"], default="binary")
    parser.add_argument("--run", default=uuid.uuid4().hex[:8])
    args = parser.parse_args()
    events = _samples().every_type(args.federation, args.organisation, args.run)
    for answer in publish(args.url, args.source, events, key=args.key, secret=args.secret, mode=args.mode):
        print(answer.status_code, answer.text)


if __name__ == "__main__":
    main()
