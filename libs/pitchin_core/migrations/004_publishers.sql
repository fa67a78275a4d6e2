-- Other systems that publish into Pitch In (docs/ingest.md). Every consuming service keeps
-- its own copy, as it does API keys: no service reads another's tables.
-- The API key is stored as a SHA-256 hash; the Standard Webhooks signing secret has to be
-- kept as given (an HMAC is verified with it), so it is readable by this schema's owner only.
CREATE TABLE publishers (
    source            text PRIMARY KEY,
    federation_id     text NOT NULL,
    organisations     text[] NOT NULL DEFAULT '{}',
    any_organisation  boolean NOT NULL DEFAULT false,
    key_hash          text UNIQUE,
    signing_secret    text,
    rate_per_second   double precision NOT NULL DEFAULT 50 CHECK (rate_per_second > 0),
    burst             integer NOT NULL DEFAULT 200 CHECK (burst >= 1),
    label             text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now(),
    revoked_at        timestamptz
);
