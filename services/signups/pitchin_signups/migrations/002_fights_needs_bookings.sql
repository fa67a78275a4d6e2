CREATE TABLE fights (
    fight_id         text PRIMARY KEY,
    federation_id    text NOT NULL,
    organisation_id  text NOT NULL,
    kind             text NOT NULL,
    title            text NOT NULL,
    description      text NOT NULL DEFAULT '',
    causes           text[] NOT NULL DEFAULT '{}',
    status           text NOT NULL DEFAULT 'open',
    opened_at        timestamptz NOT NULL,
    closed_at        timestamptz
);
CREATE INDEX fights_by_tenant ON fights (federation_id, organisation_id, opened_at);

-- The need's whole state as last published (NeedUpdatedV1), plus who is assigned.
CREATE TABLE needs (
    need_id          text PRIMARY KEY,
    fight_id         text NOT NULL REFERENCES fights (fight_id),
    federation_id    text NOT NULL,
    organisation_id  text NOT NULL,
    state            jsonb NOT NULL,
    status           text NOT NULL,
    urgency          text NOT NULL,
    deadline         timestamptz NOT NULL,
    assigned_donors  text[] NOT NULL DEFAULT '{}',
    version          integer NOT NULL,
    opened_at        timestamptz NOT NULL
);
CREATE INDEX needs_by_tenant ON needs (federation_id, organisation_id, opened_at, need_id);

CREATE TABLE bookings (
    booking_id       text PRIMARY KEY,
    event_id         text NOT NULL REFERENCES known_events (event_id),
    federation_id    text NOT NULL,
    organisation_id  text,
    donor_id         text,
    name             text NOT NULL,
    email            text NOT NULL,
    language         text NOT NULL DEFAULT 'en',
    status           text NOT NULL CHECK (status IN ('confirmed', 'waitlisted', 'cancelled')),
    waitlist_seq     bigint,
    created_at       timestamptz NOT NULL DEFAULT now(),
    confirmed_at     timestamptz,
    cancelled_at     timestamptz,
    checked_in_at    timestamptz
);
-- A person holds at most one live booking per event.
CREATE UNIQUE INDEX bookings_one_per_person ON bookings (event_id, lower(email)) WHERE status <> 'cancelled';
CREATE INDEX bookings_waitlist ON bookings (event_id, waitlist_seq) WHERE status = 'waitlisted';
