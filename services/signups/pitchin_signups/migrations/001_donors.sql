CREATE TABLE donors (
    donor_id         text PRIMARY KEY,
    federation_id    text NOT NULL,
    organisation_id  text,
    name             text NOT NULL,
    email            text NOT NULL,
    phone            text,
    profile          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'active',
    registered_at    timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- One sign-up per person per federation: a second one is an update, not a new donor.
CREATE UNIQUE INDEX donors_email_per_federation ON donors (federation_id, lower(email));

-- Events learned from scheduling's topic (never from its tables), for bookings.
CREATE TABLE known_events (
    event_id         text PRIMARY KEY,
    federation_id    text NOT NULL,
    organisation_id  text,
    title            text NOT NULL,
    starts_at        timestamptz NOT NULL,
    capacity         integer,
    learned_at       timestamptz NOT NULL DEFAULT now()
);
