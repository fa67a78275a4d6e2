-- API keys with a life cycle (issue 17): signups issues, rotates and revokes them through its
-- API and publishes each change on pitchin.keys.v1; every other service keeps its copy from
-- those facts. A key has an id to be named by (the hash is never shown), an expiry, the
-- prefix people recognise it by, and its last use as this service saw it.
ALTER TABLE api_keys
    ADD COLUMN key_id       uuid NOT NULL DEFAULT gen_random_uuid(),
    ADD COLUMN key_prefix   text NOT NULL DEFAULT '',
    ADD COLUMN expires_at   timestamptz,
    ADD COLUMN last_used_at timestamptz,
    ADD COLUMN issued_by    text NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD CONSTRAINT api_keys_key_id_unique UNIQUE (key_id);
-- Roles are the code's list (pitchin_core.auth.ROLES): a new role needs no migration in
-- every schema, and a key of a role the code does not know authenticates as nothing.
ALTER TABLE api_keys DROP CONSTRAINT IF EXISTS api_keys_role_check;
-- `revoked_at` may lie ahead: a rotated key keeps working until then, so integrations can move over.
CREATE INDEX api_keys_by_federation ON api_keys (federation_id, created_at);
