-- Crypto-shredding (issue 19, docs/privacy.md, pitchin_core.personal): the data keys that seal
-- the personal fields of events on Kafka, one live key per person (`donor:<id>` or
-- `person:<email hash>`) per federation. Erasure sets `secret` to NULL and `destroyed_at`:
-- every record sealed with it, on any topic or dead-letter topic, then opens to "erased".
-- A destroyed row stays (ids and times only) so that an event staged before the erasure is not
-- sealed again under a new key; a subject erased before it ever had a key gets such a row too.
CREATE TABLE person_keys (
    key_id         uuid PRIMARY KEY,
    federation_id  text NOT NULL,
    subject        text NOT NULL,
    secret         bytea,
    created_at     timestamptz NOT NULL DEFAULT now(),
    destroyed_at   timestamptz,
    CHECK ((secret IS NULL) = (destroyed_at IS NOT NULL)),
    CHECK (secret IS NULL OR length(secret) = 32)
);
CREATE UNIQUE INDEX person_keys_live ON person_keys (federation_id, subject) WHERE destroyed_at IS NULL;
CREATE INDEX person_keys_destroyed ON person_keys (federation_id, subject, destroyed_at) WHERE destroyed_at IS NOT NULL;
