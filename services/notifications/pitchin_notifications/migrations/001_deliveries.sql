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
    template         text NOT NULL DEFAULT '',
    language         text NOT NULL DEFAULT 'en',
    -- 0 urgent (ignores quiet hours), 1 normal, 2 low (digested)
    priority         smallint NOT NULL DEFAULT 1 CHECK (priority BETWEEN 0 AND 2),
    -- event-wide fan-out (reminders to everyone booked) yields to one-to-one traffic
    bulk             boolean NOT NULL DEFAULT false,
    person_ref       text,
    subscription_id  uuid,
    recipient        text NOT NULL,
    subject          text NOT NULL,
    body_text        text NOT NULL,
    body_html        text,
    action_url       text,
    unsubscribe_url  text,
    segments         integer,
    -- pending: waiting or due; held: waiting for a digest; digested: sent inside digest_id;
    -- suppressed: the person unsubscribed or withdrew before it went; dead: gave up
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'held', 'sent', 'dead', 'digested', 'suppressed')),
    digest_id        uuid,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    provider_ref     text,
    traceparent      text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz
);
CREATE INDEX deliveries_due ON deliveries (channel, bulk, priority, next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_held ON deliveries (federation_id, channel, recipient) WHERE status = 'held';
CREATE INDEX deliveries_by_tenant ON deliveries (federation_id, organisation_id, created_at DESC);
CREATE INDEX deliveries_by_person ON deliveries (person_ref) WHERE person_ref IS NOT NULL;
CREATE INDEX deliveries_by_subscription ON deliveries (subscription_id, status) WHERE subscription_id IS NOT NULL;

-- After the last attempt: what was given up on and why, for people to look at and re-send.
CREATE TABLE dead_letters (
    delivery_id      uuid PRIMARY KEY REFERENCES deliveries ON DELETE CASCADE,
    federation_id    text NOT NULL,
    organisation_id  text,
    channel          text NOT NULL,
    event_type       text NOT NULL,
    recipient        text NOT NULL,
    attempts         integer NOT NULL,
    reason           text NOT NULL,
    dead_at          timestamptz NOT NULL DEFAULT now(),
    resent_at        timestamptz
);
CREATE INDEX dead_letters_by_tenant ON dead_letters (federation_id, organisation_id, dead_at DESC);

CREATE FUNCTION deliveries_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pitchin_deliveries_' || TG_TABLE_SCHEMA, '');
    RETURN NULL;
END $$;
CREATE TRIGGER deliveries_notify AFTER INSERT ON deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION deliveries_notify();
