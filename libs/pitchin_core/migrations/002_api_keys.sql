-- API keys identify a federation (staff) or a member organisation and a role.
-- Only a SHA-256 of the key is stored; the key itself is shown once, when issued.
CREATE TABLE api_keys (
    key_hash         text PRIMARY KEY,
    federation_id    text NOT NULL,
    organisation_id  text,
    role             text NOT NULL CHECK (role IN ('federation-staff', 'organiser', 'publisher')),
    label            text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now(),
    revoked_at       timestamptz
);
