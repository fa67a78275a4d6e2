-- (source, id) of every published event decided here, with the answer given: the same id
-- again changes nothing and gets the same answer; the same id with other content is refused.
CREATE TABLE ingest_seen (
    source       text        NOT NULL,
    event_id     text        NOT NULL,
    event_type   text        NOT NULL,
    fingerprint  text        NOT NULL,
    outcome      text        NOT NULL,
    answer       jsonb,
    seen_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, event_id)
);

-- The publisher's external ids and what they became here, with the newest `updated_at`
-- applied: an older update arriving late is refused as stale.
CREATE TABLE ingest_subjects (
    source           text        NOT NULL,
    kind             text        NOT NULL,
    external_id      text        NOT NULL,
    internal_id      text        NOT NULL,
    federation_id    text        NOT NULL,
    organisation_id  text,
    state            text        NOT NULL DEFAULT 'active',
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (source, kind, external_id)
);
