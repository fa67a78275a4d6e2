-- A person's erasure (issue 19): one request per person, by email or by an id signups knows
-- them by. The request keeps no email: only its keyed hash (pitchin_core.erasure), which finds
-- the person again in every service and tells staff whether an address was erased already.
-- The ids are what the request found (the person's donor records, bookings and held sign-ups).
CREATE TABLE erasure_requests (
    request_id       text PRIMARY KEY,
    federation_id    text NOT NULL,
    person_hash      text NOT NULL,
    asked_by         text NOT NULL CHECK (asked_by IN ('federation-staff', 'person')),
    donor_ids        text[] NOT NULL DEFAULT '{}',
    booking_ids      text[] NOT NULL DEFAULT '{}',
    pending_ids      text[] NOT NULL DEFAULT '{}',
    expected         text[] NOT NULL,
    requested_at     timestamptz NOT NULL,
    done_at          timestamptz
);
CREATE INDEX erasure_requests_by_person ON erasure_requests (federation_id, person_hash, requested_at DESC);

-- What each service reported for a request: rows erased or anonymised per table. The request
-- is done when every service it expected has reported.
CREATE TABLE erasure_progress (
    request_id       text NOT NULL REFERENCES erasure_requests ON DELETE CASCADE,
    federation_id    text NOT NULL,
    service          text NOT NULL,
    counts           jsonb NOT NULL,
    completed_at     timestamptz NOT NULL,
    PRIMARY KEY (request_id, service)
);
