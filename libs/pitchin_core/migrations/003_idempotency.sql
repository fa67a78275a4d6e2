-- Idempotency-Key (IETF httpapi draft): a POST retried with the same key and body gets
-- the first answer again instead of doing the work twice.
CREATE TABLE idempotency_keys (
    caller_key_hash  text        NOT NULL,
    idempotency_key  text        NOT NULL,
    fingerprint      text        NOT NULL,
    status_code      integer,
    response_body    bytea,
    content_type     text,
    location         text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller_key_hash, idempotency_key)
);
