CREATE TABLE events (
    event_id         text PRIMARY KEY,
    federation_id    text NOT NULL,
    organisation_id  text NOT NULL,
    kind             text NOT NULL,
    title            text NOT NULL,
    description      text NOT NULL DEFAULT '',
    -- Instants in UTC plus the zone they were given in: wall-clock display and
    -- daylight-saving arithmetic need the zone, comparisons need the instant.
    starts_at        timestamptz NOT NULL,
    ends_at          timestamptz NOT NULL,
    time_zone        text NOT NULL,
    venue_name       text,
    venue_address    text,
    online_url       text,
    hashtag          text,
    capacity         integer,
    free_places      boolean NOT NULL DEFAULT true,
    organiser_email  text NOT NULL,
    status           text NOT NULL DEFAULT 'published',
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);
CREATE INDEX events_upcoming ON events (federation_id, starts_at);
