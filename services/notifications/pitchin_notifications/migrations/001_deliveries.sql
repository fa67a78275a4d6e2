-- Every message is stored before it is sent (a crash neither loses nor repeats it) and
-- keyed by (event, recipient, channel) so a redelivered event adds nothing.
CREATE TABLE deliveries (
    delivery_id      uuid PRIMARY KEY,
    idempotency_key  text NOT NULL UNIQUE,
    federation_id    text NOT NULL,
    organisation_id  text,
    event_id         text NOT NULL,
    event_type       text NOT NULL,
    channel          text NOT NULL CHECK (channel IN ('email', 'sms', 'webhook')),
    recipient        text NOT NULL,
    subject          text NOT NULL,
    body_text        text NOT NULL,
    body_html        text,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    traceparent      text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_tenant ON deliveries (federation_id, organisation_id, created_at DESC);

CREATE FUNCTION deliveries_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pitchin_deliveries_' || TG_TABLE_SCHEMA, '');
    RETURN NULL;
END $$;
CREATE TRIGGER deliveries_notify AFTER INSERT ON deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION deliveries_notify();
