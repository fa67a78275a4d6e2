-- Matching's own read model of donors, built only from signups' events.
CREATE TABLE donors (
    donor_id         text PRIMARY KEY,
    federation_id    text NOT NULL,
    organisation_id  text,
    status           text NOT NULL,
    time_zone        text NOT NULL,
    hours_per_week   real NOT NULL,
    remote           boolean NOT NULL,
    languages        text[] NOT NULL,
    causes           text[] NOT NULL,
    registered_at    timestamptz NOT NULL,
    learned_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE donor_skills (
    donor_id  text NOT NULL REFERENCES donors (donor_id) ON DELETE CASCADE,
    skill     text NOT NULL,
    level     smallint NOT NULL,
    PRIMARY KEY (donor_id, skill)
);
CREATE INDEX donor_skills_by_skill ON donor_skills (skill, level);
