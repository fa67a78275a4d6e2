-- A series is a recurrence rule; its occurrences are ordinary events (booked, reminded and
-- changed one by one), each pointing back at it.
CREATE TABLE series (
    series_id        text PRIMARY KEY,
    federation_id    text NOT NULL,
    organisation_id  text NOT NULL,
    rrule            text NOT NULL,
    time_zone        text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE events (
    event_id                  text PRIMARY KEY,
    federation_id             text NOT NULL,
    organisation_id           text NOT NULL,
    kind                      text NOT NULL,
    title                     text NOT NULL,
    description               text NOT NULL DEFAULT '',
    -- Instants in UTC plus the zone they were given in: wall-clock display and
    -- daylight-saving arithmetic need the zone, comparisons need the instant.
    starts_at                 timestamptz NOT NULL,
    ends_at                   timestamptz NOT NULL,
    time_zone                 text NOT NULL,
    venue_name                text,
    venue_address             text,
    venue_capacity            integer,
    venue_latitude            double precision,
    venue_longitude           double precision,
    online_url                text,
    livestream_platform       text,
    embed_url                 text,
    hashtag                   text,
    capacity                  integer,
    free_places               boolean NOT NULL DEFAULT true,
    booking_deadline          timestamptz,
    waitlist                  boolean NOT NULL DEFAULT true,
    co_hosts                  text[] NOT NULL DEFAULT '{}',
    supporting_organisations  text[] NOT NULL DEFAULT '{}',
    image_urls                text[] NOT NULL DEFAULT '{}',
    organiser_email           text NOT NULL,
    status                    text NOT NULL CHECK (status IN ('draft', 'published', 'live', 'ended', 'archived', 'cancelled')),
    livestream_status         text CHECK (livestream_status IN ('scheduled', 'live', 'ended', 'recording-available')),
    recording_url             text,
    series_id                 text REFERENCES series,
    version                   integer NOT NULL DEFAULT 1,
    reminder_offsets          integer[] NOT NULL DEFAULT '{}',
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);
-- The public listing pages through upcoming public events in start order.
CREATE INDEX events_public ON events (ends_at, starts_at, event_id) WHERE status IN ('published', 'live');
CREATE INDEX events_of_organisation ON events (federation_id, organisation_id, starts_at);
CREATE INDEX events_of_series ON events (series_id) WHERE series_id IS NOT NULL;

CREATE TABLE sessions (
    session_id       text PRIMARY KEY,
    event_id         text NOT NULL REFERENCES events ON DELETE CASCADE,
    federation_id    text NOT NULL,
    organisation_id  text NOT NULL,
    title            text NOT NULL,
    starts_at        timestamptz NOT NULL,
    ends_at          timestamptz NOT NULL,
    room             text,
    track            text,
    -- [{"person_id", "name", "role"}]: read whole with the session, checked for clashes in Python.
    people           jsonb NOT NULL DEFAULT '[]',
    CHECK (ends_at > starts_at)
);
CREATE INDEX sessions_of_event ON sessions (event_id, starts_at);
CREATE INDEX sessions_by_time ON sessions (federation_id, organisation_id, starts_at);

-- Durable timers. A row is claimed with FOR UPDATE SKIP LOCKED, its reminder-due event is
-- written to the outbox and fired_at is set in the same transaction: once, across restarts
-- and replicas. Rescheduling deletes the pending rows and writes new ones in its transaction.
CREATE TABLE reminders (
    reminder_id      text PRIMARY KEY,
    event_id         text NOT NULL REFERENCES events ON DELETE CASCADE,
    federation_id    text NOT NULL,
    organisation_id  text NOT NULL,
    kind             text NOT NULL,
    offset_seconds   integer NOT NULL CHECK (offset_seconds >= 0),
    due_at           timestamptz NOT NULL,
    event_version    integer NOT NULL,
    fired_at         timestamptz,
    -- The trace of the request that set the reminder: the firing span links back to it.
    traceparent      text,
    tracestate       text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reminders_pending ON reminders (due_at) WHERE fired_at IS NULL;
CREATE INDEX reminders_of_event ON reminders (event_id);

CREATE FUNCTION reminders_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pitchin_reminders_' || TG_TABLE_SCHEMA, '');
    RETURN NULL;
END $$;

-- A reminder set sooner than the timer's next wake-up wakes it.
CREATE TRIGGER reminders_notify AFTER INSERT ON reminders
    FOR EACH STATEMENT EXECUTE FUNCTION reminders_notify();

-- Who booked what, learned from signups' bookings topic (never from its tables): attendee
-- counts and each person's calendar feed.
CREATE TABLE attendees (
    booking_id       text PRIMARY KEY,
    event_id         text NOT NULL,
    federation_id    text NOT NULL,
    organisation_id  text,
    donor_id         text,
    name             text NOT NULL,
    email            text NOT NULL,
    status           text NOT NULL CHECK (status IN ('confirmed', 'waitlisted', 'cancelled')),
    updated_at       timestamptz NOT NULL
);
CREATE INDEX attendees_of_event ON attendees (event_id, status);
CREATE INDEX attendees_by_person ON attendees (federation_id, lower(email));

-- A person's feed is fetched by calendar apps that cannot send an API key: the URL carries an
-- unguessable token instead of the email address.
CREATE TABLE person_feeds (
    federation_id    text NOT NULL,
    email            text NOT NULL,
    token            text NOT NULL UNIQUE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (federation_id, email)
);
