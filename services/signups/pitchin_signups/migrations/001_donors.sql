CREATE TABLE donors (
    donor_id         text PRIMARY KEY,
    federation_id    text NOT NULL,
    organisation_id  text,
    name             text NOT NULL,
    email            text NOT NULL,
    phone            text,
    profile          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'active',
    version          integer NOT NULL DEFAULT 1,
    registered_at    timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    erased_at        timestamptz
);
-- One sign-up per person per federation: a second one is an update, not a new donor.
CREATE UNIQUE INDEX donors_email_per_federation ON donors (federation_id, lower(email));
CREATE INDEX donors_listing ON donors (federation_id, registered_at, donor_id);

-- A federation's own skills taxonomy; a federation with no rows uses the default list.
CREATE TABLE skills (
    federation_id  text NOT NULL,
    slug           text NOT NULL,
    label          text NOT NULL,
    PRIMARY KEY (federation_id, slug)
);

-- Events learned from scheduling's topic (never from its tables), for bookings. The
-- counters live on this row so a booking takes its place under this row's lock.
CREATE TABLE known_events (
    event_id          text PRIMARY KEY,
    federation_id     text NOT NULL,
    organisation_id   text,
    title             text NOT NULL,
    starts_at         timestamptz NOT NULL,
    capacity          integer,
    booking_deadline  timestamptz,
    waitlist          boolean NOT NULL DEFAULT true,
    status            text NOT NULL DEFAULT 'published',
    version           integer NOT NULL DEFAULT 1,
    confirmed         integer NOT NULL DEFAULT 0,
    waitlist_seq      bigint NOT NULL DEFAULT 0,
    learned_at        timestamptz NOT NULL DEFAULT now()
);
