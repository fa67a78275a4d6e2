from datetime import UTC, datetime

from pitchin_core.signing import new_webhook_secret, webhook_signature
from pitchin_notifications.domain import webhooks

# Published by the Standard Webhooks project (reference libraries' tests and docs).
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signature_reproduces_the_specs_test_vector() -> None:
    assert webhook_signature(SECRET, MSG_ID, TIMESTAMP, BODY) == SIGNATURE
    assert webhook_signature(SECRET.removeprefix("whsec_"), MSG_ID, TIMESTAMP, BODY) == SIGNATURE


def test_a_receiver_verifies_it_and_rejects_tampering_and_replays() -> None:
    at = datetime.fromtimestamp(TIMESTAMP + 10, UTC)
    headers = {
        "Webhook-Id": MSG_ID,
        "Webhook-Timestamp": str(TIMESTAMP),
        "Webhook-Signature": f"v1,bm9wZQ== {SIGNATURE}",
    }
    assert webhooks.verify(SECRET, headers, BODY, at)
    assert not webhooks.verify(SECRET, headers, BODY + b" ", at)
    assert not webhooks.verify(SECRET, {**headers, "Webhook-Id": "msg_other"}, BODY, at)
    assert not webhooks.verify(SECRET, headers, BODY, datetime.fromtimestamp(TIMESTAMP + 3600, UTC))
    assert not webhooks.verify(SECRET, {"webhook-id": MSG_ID}, BODY, at)


def test_headers_and_payload_shape() -> None:
    body = webhooks.payload("org.pitchin.booking.confirmed.v1", datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC), {"a": 1})
    assert body == b'{"data":{"a":1},"timestamp":"2027-01-02T03:04:05Z","type":"org.pitchin.booking.confirmed.v1"}'
    headers = webhooks.headers(SECRET, MSG_ID, TIMESTAMP, body)
    assert headers["webhook-id"] == MSG_ID and headers["webhook-timestamp"] == str(TIMESTAMP)
    assert webhooks.verify(SECRET, headers, body, datetime.fromtimestamp(TIMESTAMP, UTC))


def test_secrets_and_subscription_patterns() -> None:
    secret = new_webhook_secret(bytes(range(32)))
    assert secret.startswith("whsec_") and len(secret) == 6 + 44
    assert webhooks.wants(["*"], "org.pitchin.offer.made.v1")
    assert webhooks.wants(["org.pitchin.booking.*"], "org.pitchin.booking.promoted.v1")
    assert not webhooks.wants(["org.pitchin.booking.*", "org.pitchin.offer.made.v1"], "org.pitchin.offer.expired.v1")
