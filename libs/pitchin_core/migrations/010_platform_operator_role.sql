-- The platform's own operators: the one role that may move a federation's mail or texts to
-- another server (notifications' channel configuration). Issued per federation, like staff keys.
ALTER TABLE api_keys DROP CONSTRAINT IF EXISTS api_keys_role_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check
    CHECK (role IN ('federation-staff', 'organiser', 'publisher', 'platform-operator'));
