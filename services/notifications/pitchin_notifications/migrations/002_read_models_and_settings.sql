-- What notifications knows of others' data, learned from their events (never their tables).

-- Donors: contact details, preferences, consent and time zone (pitchin.donors.v1).
CREATE TABLE people (
    donor_id         text PRIMARY KEY,
    federation_id    text NOT NULL,
    organisation_id  text,
    name             text NOT NULL,
    email            text NOT NULL,
    phone            text,
    email_ok         boolean NOT NULL,
    sms_ok           boolean NOT NULL,
    language         text NOT NULL,
    time_zone        text,
    purposes         text[] NOT NULL DEFAULT '{}',
    status           text NOT NULL,
    version          integer NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Who booked which event (pitchin.bookings.v1): the recipients of event-wide messages.
CREATE TABLE attendees (
    booking_id       text PRIMARY KEY,
    event_id         text NOT NULL,
    federation_id    text NOT NULL,
    organisation_id  text,
    donor_id         text,
    name             text NOT NULL,
    email            text NOT NULL,
    language         text NOT NULL,
    status           text NOT NULL CHECK (status IN ('confirmed', 'waitlisted', 'cancelled')),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX attendees_by_event ON attendees (event_id, status, booking_id);
CREATE INDEX attendees_by_donor ON attendees (donor_id) WHERE donor_id IS NOT NULL;

-- Events (pitchin.events.v1): what a message about an event says about it.
CREATE TABLE known_events (
    event_id         text PRIMARY KEY,
    federation_id    text NOT NULL,
    organisation_id  text,
    details          jsonb NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Messages whose recipients are resolved after the event was consumed: an event-wide
-- message expanded into deliveries a batch per transaction (100,000 recipients never hold
-- the consumer or one long transaction), or a message to a donor this service has not
-- heard of yet (their sign-up travels on another topic and may arrive later).
CREATE TABLE fanouts (
    fanout_id        uuid PRIMARY KEY,
    event_id         text NOT NULL,
    event_type       text NOT NULL,
    rule_key         text NOT NULL,
    federation_id    text NOT NULL,
    organisation_id  text,
    audience         text NOT NULL,
    target           text NOT NULL,      -- the event id (event-wide) or the donor id
    statuses         text[] NOT NULL DEFAULT '{}',
    data             jsonb NOT NULL,
    traceparent      text,
    after_booking    text NOT NULL DEFAULT '',
    not_before       timestamptz NOT NULL DEFAULT now(),
    tries            integer NOT NULL DEFAULT 0,
    expanded         integer NOT NULL DEFAULT 0,
    done_at          timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, rule_key)
);
CREATE INDEX fanouts_open ON fanouts (not_before) WHERE done_at IS NULL;
CREATE TRIGGER fanouts_notify AFTER INSERT ON fanouts
    FOR EACH STATEMENT EXECUTE FUNCTION deliveries_notify();

-- Per-federation (organisation_id '') or per-organisation template text; package templates otherwise.
CREATE TABLE template_overrides (
    federation_id    text NOT NULL,
    organisation_id  text NOT NULL DEFAULT '',
    template         text NOT NULL,
    language         text NOT NULL,
    part             text NOT NULL CHECK (part IN ('subject', 'text', 'html', 'sms')),
    body             text NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (federation_id, organisation_id, template, language, part)
);

-- A federation's channels and delivery policy; without a row, the service's settings apply.
CREATE TABLE channel_config (
    federation_id        text PRIMARY KEY,
    smtp_host            text,
    smtp_port            integer,
    mail_from            text,
    sms_base_url         text,
    sms_account_sid      text,
    sms_auth_token       text,
    sms_from             text,
    sms_max_segments     integer,
    quiet_hours          text,      -- 'HH:MM-HH:MM', '' for none, NULL for the default
    max_attempts         integer,
    retry_base_seconds   double precision,
    digest_seconds       integer,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Organisations' (or a federation's) webhook endpoints.
CREATE TABLE webhook_subscriptions (
    subscription_id  uuid PRIMARY KEY,
    federation_id    text NOT NULL,
    organisation_id  text,
    url              text NOT NULL,
    secret           text NOT NULL,
    event_types      text[] NOT NULL,
    description      text NOT NULL DEFAULT '',
    status           text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    disable_after    integer NOT NULL,
    failure_streak   integer NOT NULL DEFAULT 0,
    disabled_reason  text,
    disabled_at      timestamptz,
    last_success_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_subscriptions_by_tenant ON webhook_subscriptions (federation_id, organisation_id);

-- One-click unsubscribes (RFC 8058): kept as a hash of the address so they survive erasure.
CREATE TABLE suppressions (
    federation_id    text NOT NULL,
    address_hash     text NOT NULL,
    channel          text NOT NULL,
    reason           text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (federation_id, address_hash, channel)
);
