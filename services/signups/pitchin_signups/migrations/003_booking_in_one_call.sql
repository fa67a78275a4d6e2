-- Booking and cancelling in one call each, for rushes (issue 16; measured in docs/rush.md of
-- the shared notes): the event row is locked once per call, never across a client round
-- trip, and a whole batch of bookings shares one lock, one commit flush and one outbox insert.

-- Who is on the waitlist now, kept with the other counters: a new waitlist position is
-- O(1) instead of a count(*) that grows with the waitlist.
ALTER TABLE known_events ADD COLUMN waitlisted integer NOT NULL DEFAULT 0;
UPDATE known_events e SET waitlisted = w.n
  FROM (SELECT event_id, count(*) AS n FROM bookings WHERE status = 'waitlisted' GROUP BY event_id) w
 WHERE w.event_id = e.event_id;

-- The facts every booking event carries (pitchin_core.contracts.bookings.BookingFacts);
-- tests/integration/test_booking_rush.py checks each payload built here against its model.
CREATE FUNCTION booking_facts(federation_id text, organisation_id text, booking_id text, event_id text,
                              donor_id text, name text, email text, language text)
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
  SELECT jsonb_build_object('federation_id', federation_id, 'organisation_id', organisation_id,
    'booking_id', booking_id, 'event_id', event_id, 'donor_id', donor_id, 'name', name,
    'email', email, 'language', language)
$$;

-- The CloudEvents `tenant` of an event's facts (pitchin_core.contracts.cloudevents.tenant_of).
CREATE FUNCTION event_tenant(e known_events) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN e.organisation_id IS NULL THEN e.federation_id ELSE e.federation_id || '/' || e.organisation_id END
$$;

-- p_items, in arrival order: [{booking_id, outbox_id, name, email (lower-cased), donor_id,
-- language, traceparent, tracestate, claim: null | {caller, key, fingerprint}}, ...].
-- p_meta: {topic, source, confirmed_type, waitlisted_type, refused_statuses: [...]}.
-- One row per item: outcome 'booked' | 'duplicate' | 'full' | 'no_event' | 'refused', with
-- the booking (booked: the new one; duplicate: the one the person already holds) and,
-- for 'refused', the event's status and closing times so the domain can say why.
CREATE FUNCTION book_many(p_event text, p_federation text, p_now timestamptz, p_meta jsonb, p_items jsonb[])
RETURNS TABLE (idx integer, outcome text, booking_id text, status text, waitlist_position integer, payload jsonb,
               event_status text, booking_deadline timestamptz, starts_at timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  e known_events%ROWTYPE;
  v_free integer;
BEGIN
  SELECT * INTO e FROM known_events k WHERE k.event_id = p_event FOR UPDATE;
  IF NOT FOUND OR e.federation_id <> p_federation THEN
    RETURN QUERY SELECT t.i::integer, 'no_event', NULL::text, NULL::text, NULL::integer, NULL::jsonb,
                        NULL::text, NULL::timestamptz, NULL::timestamptz
                   FROM unnest(p_items) WITH ORDINALITY AS t(x, i);
    RETURN;
  END IF;
  IF e.status = ANY (ARRAY(SELECT jsonb_array_elements_text(p_meta->'refused_statuses')))
     OR p_now >= coalesce(e.booking_deadline, e.starts_at) THEN
    RETURN QUERY SELECT t.i::integer, 'refused', NULL::text, NULL::text, NULL::integer, NULL::jsonb,
                        e.status, e.booking_deadline, e.starts_at
                   FROM unnest(p_items) WITH ORDINALITY AS t(x, i);
    RETURN;
  END IF;
  v_free := CASE WHEN e.capacity IS NULL THEN 2147483647 ELSE greatest(e.capacity - e.confirmed, 0) END;
  -- A statement of its own after the lock: its snapshot sees every booking committed before
  -- the lock was granted (one statement taking the lock itself would not).
  RETURN QUERY
  WITH items AS (
    SELECT t.i::integer AS idx, t.x->>'booking_id' AS booking_id, (t.x->>'outbox_id')::uuid AS outbox_id,
           t.x->>'name' AS name, t.x->>'email' AS email, t.x->>'donor_id' AS donor_id,
           coalesce(t.x->>'language', 'en') AS language, t.x->>'traceparent' AS traceparent,
           t.x->>'tracestate' AS tracestate, t.x->'claim' AS claim,
           CASE WHEN jsonb_typeof(t.x->'claim') = 'object' THEN t.x->'claim'->>'caller' END AS claim_caller,
           t.x->'claim'->>'key' AS claim_key, t.x->'claim'->>'fingerprint' AS claim_print
      FROM unnest(p_items) WITH ORDINALITY AS t(x, i)
  ), answered AS (           -- a retry of a request whose booking committed: its stored answer
    SELECT i.idx, k.fingerprint, convert_from(k.response_body, 'UTF8')::jsonb AS payload
      FROM items i JOIN idempotency_keys k ON k.caller_key_hash = i.claim_caller AND k.idempotency_key = i.claim_key
  ), retried AS (            -- a retry in the same batch as its first attempt: that attempt's answer
    SELECT i.idx, min(j.idx) AS first_idx FROM items i
      JOIN items j ON j.claim_caller = i.claim_caller AND j.claim_key = i.claim_key AND j.idx < i.idx
     GROUP BY i.idx
  ), fresh AS (              -- the first attempt of each person who holds no live booking yet
    SELECT DISTINCT ON (i.email) i.* FROM items i
     WHERE NOT EXISTS (SELECT 1 FROM bookings b WHERE b.event_id = p_event AND lower(b.email) = i.email
                                                  AND b.status <> 'cancelled')
       AND NOT EXISTS (SELECT 1 FROM answered a WHERE a.idx = i.idx)
       AND NOT EXISTS (SELECT 1 FROM retried r WHERE r.idx = i.idx)
     ORDER BY i.email, i.idx
  ), ranked AS (
    SELECT f.*, row_number() OVER (ORDER BY f.idx)::integer AS rn FROM fresh f
  ), placed AS (
    SELECT r.*,
           CASE WHEN r.rn <= v_free THEN 'confirmed' WHEN e.waitlist THEN 'waitlisted' ELSE 'full' END AS st,
           CASE WHEN r.rn > v_free AND e.waitlist THEN r.rn - v_free END AS wrank
      FROM ranked r
  ), ins AS (
    INSERT INTO bookings AS b (booking_id, event_id, federation_id, organisation_id, donor_id, name, email,
                               language, status, waitlist_seq, created_at, confirmed_at)
    SELECT p.booking_id, p_event, e.federation_id, e.organisation_id, p.donor_id, p.name, p.email, p.language,
           p.st, CASE WHEN p.st = 'waitlisted' THEN e.waitlist_seq + p.wrank END, p_now,
           CASE WHEN p.st = 'confirmed' THEN p_now END
      FROM placed p WHERE p.st <> 'full' ORDER BY p.idx
    RETURNING b.*
  ), events AS (
    SELECT p.idx, p.outbox_id, p.traceparent, p.tracestate, p.claim, b.booking_id, b.status,
           CASE WHEN p.st = 'waitlisted' THEN e.waitlisted + p.wrank END AS position,
           booking_facts(b.federation_id, b.organisation_id, b.booking_id, b.event_id, b.donor_id, b.name,
                         b.email, b.language) || CASE WHEN p.st = 'confirmed' THEN jsonb_build_object('confirmed_at', p_now)
             ELSE jsonb_build_object('position', e.waitlisted + p.wrank, 'waitlisted_at', p_now) END AS payload
      FROM ins b JOIN placed p ON p.booking_id = b.booking_id
  ), ob AS (
    INSERT INTO outbox (event_id, topic, message_key, event_type, source, subject, tenant, payload,
                        traceparent, tracestate)
    SELECT v.outbox_id, p_meta->>'topic', p_event,
           CASE WHEN v.status = 'confirmed' THEN p_meta->>'confirmed_type' ELSE p_meta->>'waitlisted_type' END,
           p_meta->>'source', 'bookings/' || v.booking_id, event_tenant(e), v.payload, v.traceparent, v.tracestate
      FROM events v ORDER BY v.idx
  ), answers AS (            -- an Idempotency-Key's answer commits with its booking
    INSERT INTO idempotency_keys (caller_key_hash, idempotency_key, fingerprint, status_code, response_body,
                                  content_type, location)
    SELECT v.claim->>'caller', v.claim->>'key', v.claim->>'fingerprint', 201, convert_to(v.payload::text, 'UTF8'),
           'application/json', '/v1/bookings/' || v.booking_id
      FROM events v WHERE v.claim IS NOT NULL AND jsonb_typeof(v.claim) = 'object'
    ON CONFLICT DO NOTHING
  ), counted AS (
    UPDATE known_events k
       SET confirmed = k.confirmed + (SELECT count(*) FROM placed WHERE st = 'confirmed'),
           waitlisted = k.waitlisted + (SELECT count(*) FROM placed WHERE st = 'waitlisted'),
           waitlist_seq = k.waitlist_seq + coalesce((SELECT max(wrank) FROM placed), 0)
     WHERE k.event_id = p_event
    RETURNING k.event_id
  )
  -- (Every data-modifying CTE above runs once, whether or not this SELECT reads it.)
  -- A retry (the same Idempotency-Key) is answered as its first attempt was, or refused as
  -- 'key_reused' when its body differs; a second attempt of the same person is 'duplicate'.
  SELECT i.idx,
         CASE WHEN v.idx IS NOT NULL THEN 'booked'
              WHEN a.idx IS NOT NULL THEN CASE WHEN a.fingerprint = i.claim_print THEN 'replay' ELSE 'key_reused' END
              WHEN r.idx IS NOT NULL THEN CASE WHEN rv.idx IS NULL THEN 'full'
                                               WHEN first_try.claim_print = i.claim_print THEN 'replay'
                                               ELSE 'key_reused' END
              WHEN held.booking_id IS NOT NULL OR fv.idx IS NOT NULL THEN 'duplicate' ELSE 'full' END,
         coalesce(v.booking_id, a.payload->>'booking_id', rv.booking_id, held.booking_id, fv.booking_id),
         coalesce(v.status, CASE WHEN a.payload ? 'position' THEN 'waitlisted' WHEN a.idx IS NOT NULL THEN 'confirmed' END,
                  rv.status, held.status, fv.status),
         coalesce(v.position, (a.payload->>'position')::integer, rv.position),
         coalesce(v.payload, a.payload, rv.payload), NULL::text, NULL::timestamptz, NULL::timestamptz
    FROM items i
    LEFT JOIN events v ON v.idx = i.idx
    LEFT JOIN answered a ON a.idx = i.idx
    LEFT JOIN retried r ON r.idx = i.idx
    LEFT JOIN items first_try ON first_try.idx = r.first_idx
    LEFT JOIN events rv ON rv.idx = r.first_idx
    LEFT JOIN bookings held ON held.event_id = p_event AND lower(held.email) = i.email AND held.status <> 'cancelled'
                            AND a.idx IS NULL AND r.idx IS NULL
    LEFT JOIN fresh twin ON twin.email = i.email AND twin.idx <> i.idx AND a.idx IS NULL AND r.idx IS NULL
    LEFT JOIN events fv ON fv.idx = twin.idx
   ORDER BY i.idx;
END $$;

-- Cancel a booking of the federation; a confirmed place goes to the first on the waitlist in
-- the same call. p_meta: {topic, source, cancelled_type, promoted_type, cancelled_id,
-- promoted_id, by_organisation, traceparent, tracestate}. Returns the events it staged
-- (kind 'cancelled', then 'promoted'), or one row of kind 'not_found' / 'already_cancelled'.
CREATE FUNCTION cancel_booking(p_booking text, p_federation text, p_now timestamptz, p_meta jsonb)
RETURNS TABLE (kind text, payload jsonb) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_event text;
  e known_events%ROWTYPE;
  b bookings%ROWTYPE;
  nxt bookings%ROWTYPE;
  v_cancelled jsonb;
  v_promoted jsonb;
BEGIN
  SELECT x.event_id INTO v_event FROM bookings x WHERE x.booking_id = p_booking AND x.federation_id = p_federation;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'not_found'::text, NULL::jsonb; RETURN;
  END IF;
  -- The event before the booking, in the order book_many takes them: no deadlock.
  SELECT * INTO e FROM known_events k WHERE k.event_id = v_event FOR UPDATE;
  SELECT * INTO b FROM bookings x WHERE x.booking_id = p_booking FOR UPDATE;
  IF b.status = 'cancelled' THEN
    RETURN QUERY SELECT 'already_cancelled'::text, NULL::jsonb; RETURN;
  END IF;
  UPDATE bookings x SET status = 'cancelled', cancelled_at = p_now WHERE x.booking_id = p_booking;
  v_cancelled := booking_facts(b.federation_id, b.organisation_id, b.booking_id, b.event_id, b.donor_id, b.name,
                                 b.email, b.language) || jsonb_build_object('cancelled_at', p_now,
                   'by_organiser', coalesce(p_meta->>'by_organisation', '') = coalesce(b.organisation_id, ''));
  INSERT INTO outbox (event_id, topic, message_key, event_type, source, subject, tenant, payload, traceparent, tracestate)
  VALUES ((p_meta->>'cancelled_id')::uuid, p_meta->>'topic', v_event, p_meta->>'cancelled_type', p_meta->>'source',
          'bookings/' || p_booking, event_tenant(e), v_cancelled, p_meta->>'traceparent', p_meta->>'tracestate');
  RETURN QUERY SELECT 'cancelled'::text, v_cancelled;
  IF b.status = 'waitlisted' THEN
    UPDATE known_events k SET waitlisted = k.waitlisted - 1 WHERE k.event_id = v_event;
    RETURN;
  END IF;
  SELECT * INTO nxt FROM bookings x WHERE x.event_id = v_event AND x.status = 'waitlisted'
   ORDER BY x.waitlist_seq LIMIT 1 FOR UPDATE;
  IF NOT FOUND THEN
    UPDATE known_events k SET confirmed = k.confirmed - 1 WHERE k.event_id = v_event;
    RETURN;
  END IF;
  UPDATE bookings x SET status = 'confirmed', confirmed_at = p_now, waitlist_seq = NULL
   WHERE x.booking_id = nxt.booking_id;
  UPDATE known_events k SET waitlisted = k.waitlisted - 1 WHERE k.event_id = v_event;
  v_promoted := booking_facts(nxt.federation_id, nxt.organisation_id, nxt.booking_id, nxt.event_id, nxt.donor_id,
                              nxt.name, nxt.email, nxt.language) || jsonb_build_object('promoted_at', p_now);
  INSERT INTO outbox (event_id, topic, message_key, event_type, source, subject, tenant, payload, traceparent, tracestate)
  VALUES ((p_meta->>'promoted_id')::uuid, p_meta->>'topic', v_event, p_meta->>'promoted_type', p_meta->>'source',
          'bookings/' || nxt.booking_id, event_tenant(e), v_promoted, p_meta->>'traceparent', p_meta->>'tracestate');
  RETURN QUERY SELECT 'promoted'::text, v_promoted;
END $$;
