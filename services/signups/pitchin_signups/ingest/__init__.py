"""What other systems publish into signups (docs/ingest.md).

`apply` turns each ingested type into the command signups' HTTP API takes; `routes` is the
HTTP door (`POST /v1/ingest`), `osdi` the OSDI helpers in front of it. The Kafka door is
subscribed with signups' other consumers in `handlers.py`.
"""
