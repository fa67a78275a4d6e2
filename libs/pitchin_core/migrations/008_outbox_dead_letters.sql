-- Outbox rows Kafka refused for a reason that will not go away (a record larger than the
-- producer or the topic accepts, a topic name Kafka cannot have, a row that cannot be made a
-- record). The relay moves such a row here, with the reason, in the statement that deletes
-- it from the outbox, so the rows after it are published instead of waiting behind it for
-- ever. `pitchin_outbox_dead_letters_total` counts them and PitchInOutboxDeadLetters fires.
--
-- Once the cause is fixed (the topic's size limit raised, say), an operator can queue a row
-- again; it keeps its event id, so consumers that did see it once de-duplicate it:
--   WITH back AS (DELETE FROM outbox_dead_letters WHERE seq = <seq> RETURNING *)
--   INSERT INTO outbox (event_id, topic, message_key, event_type, source, subject, tenant,
--                       occurred_at, payload, traceparent, tracestate)
--   SELECT event_id, topic, message_key, event_type, source, subject, tenant,
--          occurred_at, payload, traceparent, tracestate FROM back;
CREATE TABLE outbox_dead_letters (
    seq          bigint      PRIMARY KEY,
    event_id     uuid        NOT NULL,
    topic        text        NOT NULL,
    message_key  text        NOT NULL,
    event_type   text        NOT NULL,
    source       text        NOT NULL,
    subject      text,
    tenant       text        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    payload      jsonb       NOT NULL,
    traceparent  text,
    tracestate   text,
    reason       text        NOT NULL,
    failed_at    timestamptz NOT NULL DEFAULT now()
);
