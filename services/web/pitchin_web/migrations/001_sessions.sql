-- The web front's sessions (issue 17): the browser's cookie holds only a random id; what the
-- session holds (an organiser's API key, the sign-up draft, flash messages) stays here.
-- No federation_id column on purpose: a session is found by its id alone, before anyone is known.
CREATE TABLE sessions (
    -- SHA-256 of the cookie's id: a copy of this table opens no session.
    id_hash text PRIMARY KEY,
    -- The session's JSON, encrypted (Fernet) with a key derived from PITCHIN_SESSION_SECRET:
    -- a copy of this table shows no API key without the web's secret either.
    sealed bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    seen_at timestamptz NOT NULL DEFAULT now()
);

-- The purge deletes idle sessions (seen_at) and those past their absolute lifetime (created_at).
CREATE INDEX sessions_seen_at ON sessions (seen_at);
CREATE INDEX sessions_created_at ON sessions (created_at);
