-- Outbox: a state change and the events it emits commit together; the relay publishes
-- them afterwards, in seq order, and deletes them only once Kafka acknowledged them.
CREATE TABLE outbox (
    seq          bigserial PRIMARY KEY,
    event_id     uuid        NOT NULL UNIQUE,
    topic        text        NOT NULL,
    message_key  text        NOT NULL,
    event_type   text        NOT NULL,
    source       text        NOT NULL,
    subject      text,
    tenant       text        NOT NULL,
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    payload      jsonb       NOT NULL,
    traceparent  text,
    tracestate   text
);

CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pitchin_outbox_' || TG_TABLE_SCHEMA, '');
    RETURN NULL;
END $$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Inbox: the ids of the events this service has applied, written in the same
-- transaction as the effect, so a redelivered event is a no-op.
CREATE TABLE inbox (
    consumer    text        NOT NULL,
    event_id    text        NOT NULL,
    event_type  text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
