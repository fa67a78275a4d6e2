"""One pipeline for what other systems publish, whichever door it came through.

Reading (`envelope`: Kafka binary mode; HTTP binary, structured and batch mode) gives an
`Envelope` that never raises; `validation` checks it against the publisher's registration
(`publishers`) and the public contract (`pitchin_core.contracts.ingest`); the `pipeline`
then decides it in one transaction of the service's unit of work: (source, id) claimed in
`ingest_seen`, the owning service's use case applied in a savepoint of that transaction (so
its outbox rows, the external-id record and the answer commit together), or the rejection
recorded and, for Kafka, staged on `pitchin.ingest.rejections.v1` through the outbox. The
doors are `kafka_door` (`subscribe_ingest`) and signups' `POST /v1/ingest`, whose limits
are in `http_door`; publishers' webhook signatures are checked by `pitchin_core.signing`.

Everything a service or test uses is importable from here.
"""

from pitchin_core.ingest.envelope import (
    Envelope,
    envelope_from_http_binary,
    envelope_from_kafka,
    envelope_from_structured,
)
from pitchin_core.ingest.http_door import MAX_BATCH, MAX_BODY_BYTES, RateLimiter
from pitchin_core.ingest.kafka_door import NOT_YET_PATIENCE_SECONDS, subscribe_ingest
from pitchin_core.ingest.metrics import ingest_counter
from pitchin_core.ingest.pipeline import (
    Answer,
    AppliesMany,
    Apply,
    ApplyMany,
    NotYet,
    Pipeline,
    Subject,
    check_fresh,
    rounds,
    save_subject,
    save_subjects,
    stage,
    subject_of,
    subjects_of,
    unknown,
)
from pitchin_core.ingest.publishers import (
    ACCEPTED_OUTCOMES,
    REGISTRY_TTL_SECONDS,
    REJECTED_OUTCOME,
    Credentials,
    PublisherSummary,
    Registration,
    Registry,
    SourceTaken,
    learn_publisher,
    new_publisher_key,
    publisher_summaries,
    register_publisher,
    revoke_publisher,
)
from pitchin_core.ingest.validation import (
    FORWARDED_PREFIX,
    Accepted,
    Rejection,
    external_event_id,
    fingerprint,
    forwarded_id,
    original_id,
    validate,
)

# The test harness (libs/pitchin_testing/stack.py) mints publishers' secrets under this name.

__all__ = [
    "ACCEPTED_OUTCOMES",
    "FORWARDED_PREFIX",
    "MAX_BATCH",
    "MAX_BODY_BYTES",
    "NOT_YET_PATIENCE_SECONDS",
    "REGISTRY_TTL_SECONDS",
    "REJECTED_OUTCOME",
    "Accepted",
    "Answer",
    "AppliesMany",
    "Apply",
    "ApplyMany",
    "Credentials",
    "Envelope",
    "NotYet",
    "Pipeline",
    "PublisherSummary",
    "RateLimiter",
    "Registration",
    "Registry",
    "Rejection",
    "SourceTaken",
    "Subject",
    "check_fresh",
    "envelope_from_http_binary",
    "envelope_from_kafka",
    "envelope_from_structured",
    "external_event_id",
    "fingerprint",
    "forwarded_id",
    "ingest_counter",
    "learn_publisher",
    "new_publisher_key",
    "original_id",
    "publisher_summaries",
    "register_publisher",
    "revoke_publisher",
    "rounds",
    "save_subject",
    "save_subjects",
    "stage",
    "subject_of",
    "subjects_of",
    "subscribe_ingest",
    "unknown",
    "validate",
]
