-- Sign-ups made on a public page, held until the person confirms from the email we sent
-- them (double opt-in). Only the token's SHA-256 is kept, so a copy of this table confirms
-- nobody. One pending sign-up per address per federation: a newer one replaces the older
-- (its link stops working). A confirmed row keeps no personal data beyond the address and
-- stays only so a second click is told "already confirmed"; every row goes at its expiry.
CREATE TABLE pending_signups (
    pending_id       text PRIMARY KEY,
    federation_id    text NOT NULL,
    email            text NOT NULL,
    token_hash       text NOT NULL UNIQUE,
    signup           jsonb,
    requested_at     timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    confirmed_at     timestamptz,
    donor_id         text
);
CREATE UNIQUE INDEX pending_signups_email_per_federation ON pending_signups (federation_id, lower(email));
CREATE INDEX pending_signups_expiry ON pending_signups (expires_at);
