-- Matching's read model, built only from other services' events (rebuildable from the
-- topics: `python -m pitchin_matching.rebuild`), and the offers and assignments matching
-- owns (the source of truth for pitchin.matches.v1, never truncated by a rebuild).

CREATE TABLE donors (
    donor_id         text PRIMARY KEY,
    federation_id    text NOT NULL,
    organisation_id  text,
    status           text NOT NULL,
    -- 0 for a registration, the event's version for an update, max int once withdrawn:
    -- an event older than what is stored changes nothing.
    version          integer NOT NULL,
    time_zone        text NOT NULL,
    hours_per_week   real NOT NULL,
    remote           boolean NOT NULL,
    latitude         double precision,
    longitude        double precision,
    country          text,
    languages        text[] NOT NULL,
    causes           text[] NOT NULL,
    -- Weekly availability as UTC minute-of-week intervals, flattened: {start1, end1, start2, end2, ...}.
    windows_utc      integer[] NOT NULL DEFAULT '{}',
    registered_at    timestamptz NOT NULL,
    learned_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX donors_by_federation ON donors (federation_id);

CREATE TABLE donor_skills (
    donor_id  text NOT NULL REFERENCES donors (donor_id) ON DELETE CASCADE,
    skill     text NOT NULL,
    level     smallint NOT NULL,
    PRIMARY KEY (donor_id, skill)
);
CREATE INDEX donor_skills_by_skill ON donor_skills (skill, level);

CREATE TABLE needs (
    need_id          text PRIMARY KEY,
    fight_id         text NOT NULL,
    federation_id    text NOT NULL,
    organisation_id  text,
    title            text NOT NULL,
    required_skills  jsonb NOT NULL,          -- [[skill, min level rank], ...]
    nice_to_have     text[] NOT NULL,
    estimated_hours  real NOT NULL,
    deadline         timestamptz NOT NULL,
    urgency          text NOT NULL,
    remote           boolean NOT NULL,
    latitude         double precision,
    longitude        double precision,
    country          text,
    language         text NOT NULL,
    causes           text[] NOT NULL,
    donors_wanted    integer NOT NULL,
    status           text NOT NULL,
    version          integer NOT NULL,
    -- Set when ranking found nobody to ask: the need is not re-ranked on every event until
    -- then (or until a donor joins the federation).
    retry_after      timestamptz,
    learned_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX open_needs_by_federation ON needs (federation_id) WHERE status IN ('open', 'partly-filled');

CREATE TABLE offers (
    offer_id         text PRIMARY KEY,
    need_id          text NOT NULL,
    fight_id         text NOT NULL,
    donor_id         text NOT NULL,
    federation_id    text NOT NULL,
    organisation_id  text,
    status           text NOT NULL CHECK (status IN ('pending', 'accepted', 'declined', 'expired', 'cancelled')),
    score            real NOT NULL,
    explanation      jsonb NOT NULL,
    made_at          timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    answered_at      timestamptz,
    reason           text NOT NULL DEFAULT '',
    -- A donor is asked about a need once: a decline or an expiry is an answer.
    UNIQUE (need_id, donor_id)
);
-- The durable expiry timer: the clock loop claims due rows with FOR UPDATE SKIP LOCKED.
CREATE INDEX offers_due ON offers (expires_at) WHERE status = 'pending';
CREATE INDEX offers_by_donor ON offers (donor_id, made_at);

CREATE TABLE assignments (
    assignment_id    text PRIMARY KEY,        -- the id of the offer it was accepted from
    need_id          text NOT NULL,
    fight_id         text NOT NULL,
    donor_id         text NOT NULL,
    federation_id    text NOT NULL,
    organisation_id  text,
    status           text NOT NULL CHECK (status IN ('accepted', 'confirmed', 'released')),
    accepted_at      timestamptz NOT NULL,
    confirmed_at     timestamptz,
    released_at      timestamptz,
    reason           text NOT NULL DEFAULT ''
);
CREATE INDEX active_assignments_by_need ON assignments (need_id) WHERE status <> 'released';
CREATE INDEX assignments_by_donor ON assignments (donor_id);

-- A federation's matching policy (weights, caps, offer time to live); defaults when absent.
CREATE TABLE policies (
    federation_id  text PRIMARY KEY,
    policy         jsonb NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
