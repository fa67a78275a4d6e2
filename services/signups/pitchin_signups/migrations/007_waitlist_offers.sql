-- Waitlist offers (issue 22): a freed place is no longer given at once to the first on the
-- waitlist, who may no longer be able to come; it is offered to them for a window and held
-- (counted as taken) meanwhile. They take it or give up their spot; expiry or a decline offers
-- it to the next. Every step runs under the event's row lock, like booking and cancelling
-- (migration 003), so a place is never offered twice nor lost.

-- The window the organiser set (scheduling's registration; NULL: the default), and the places
-- held for open offers, kept with the other counters: confirmed + offered <= capacity.
ALTER TABLE known_events ADD COLUMN waitlist_offer_seconds integer,
                         ADD COLUMN offered integer NOT NULL DEFAULT 0;

-- 'offered': a waitlisted booking holding a place until `offer_expires_at` (its durable timer).
-- A spot given up or an offer let lapse is cancelled, saying which in `cancel_reason`.
ALTER TABLE bookings DROP CONSTRAINT bookings_status_check;
ALTER TABLE bookings ADD CONSTRAINT bookings_status_check
    CHECK (status IN ('confirmed', 'waitlisted', 'offered', 'cancelled'));
ALTER TABLE bookings ADD COLUMN offered_at timestamptz,
                     ADD COLUMN offer_expires_at timestamptz,
                     ADD COLUMN cancel_reason text
                         CHECK (cancel_reason IN ('cancelled', 'offer_declined', 'offer_expired'));
CREATE INDEX bookings_offers_due ON bookings (federation_id, offer_expires_at) WHERE status = 'offered';

-- When a new offer ends (pitchin_signups.domain.bookings.offer_window, whose rule p_rule
-- carries): the organiser's window (default p_rule.default_seconds), at most a share of the
-- time left before bookings close so the next on the list still has a chance, at least
-- p_rule.floor_seconds (or all the time left, when less); NULL once bookings have closed.
CREATE FUNCTION offer_expiry(p_configured integer, p_now timestamptz, p_closes timestamptz, p_rule jsonb)
RETURNS timestamptz LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN p_closes <= p_now THEN NULL ELSE p_now + least(
    make_interval(secs => coalesce(p_configured, (p_rule->>'default_seconds')::integer)),
    greatest((p_closes - p_now) * (p_rule->>'share')::float8,
             least(make_interval(secs => (p_rule->>'floor_seconds')::integer), p_closes - p_now))) END
$$;

-- Offer every free place of an event to the first on its waitlist, in order; called under the
-- event's row lock (taken here again, a no-op for the holder) by every step that frees a place.
-- p_meta: {topic, source, offered_type, refused_statuses, offer_rule, traceparent, tracestate}.
CREATE FUNCTION offer_free_places(p_event text, p_now timestamptz, p_meta jsonb)
RETURNS TABLE (kind text, outbox_id uuid, payload jsonb) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  e known_events%ROWTYPE;
  v_free integer;
  v_expires timestamptz;
BEGIN
  SELECT * INTO e FROM known_events k WHERE k.event_id = p_event FOR UPDATE;
  IF NOT FOUND OR e.capacity IS NULL
     OR e.status = ANY (ARRAY(SELECT jsonb_array_elements_text(p_meta->'refused_statuses'))) THEN
    RETURN;
  END IF;
  v_free := e.capacity - e.confirmed - e.offered;
  v_expires := offer_expiry(e.waitlist_offer_seconds, p_now, coalesce(e.booking_deadline, e.starts_at),
                            p_meta->'offer_rule');
  IF v_free <= 0 OR v_expires IS NULL THEN
    RETURN;
  END IF;
  RETURN QUERY
  WITH nxt AS (
    SELECT x.booking_id FROM bookings x WHERE x.event_id = p_event AND x.status = 'waitlisted'
     ORDER BY x.waitlist_seq LIMIT v_free FOR UPDATE
  ), upd AS (
    UPDATE bookings b SET status = 'offered', offered_at = p_now, offer_expires_at = v_expires
      FROM nxt WHERE b.booking_id = nxt.booking_id
    RETURNING b.*
  ), ev AS (
    SELECT gen_random_uuid() AS oid, u.booking_id, u.waitlist_seq,
           booking_facts(u.federation_id, u.organisation_id, u.booking_id, u.event_id, u.donor_id, u.name, u.email,
                         u.language) || jsonb_build_object('offered_at', p_now, 'expires_at', v_expires) AS payload
      FROM upd u
  ), ob AS (
    INSERT INTO outbox (event_id, topic, message_key, event_type, source, subject, tenant, payload,
                        traceparent, tracestate)
    SELECT v.oid, p_meta->>'topic', p_event, p_meta->>'offered_type', p_meta->>'source', 'bookings/' || v.booking_id,
           event_tenant(e), v.payload, p_meta->>'traceparent', p_meta->>'tracestate'
      FROM ev v ORDER BY v.waitlist_seq
  ), counted AS (
    UPDATE known_events k SET offered = k.offered + (SELECT count(*) FROM upd),
                              waitlisted = k.waitlisted - (SELECT count(*) FROM upd)
     WHERE k.event_id = p_event
    RETURNING k.event_id
  )
  SELECT 'offered'::text, v.oid, v.payload FROM ev v ORDER BY v.waitlist_seq;
END $$;

-- Booking: as in migration 003, but the places held for open offers count as taken, so a new
-- RSVP joins the waitlist behind the people being offered places.
CREATE OR REPLACE FUNCTION book_many(p_event text, p_federation text, p_now timestamptz, p_meta jsonb, p_items jsonb[])
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
  -- Places held for open offers are taken (the one change from migration 003).
  v_free := CASE WHEN e.capacity IS NULL THEN 2147483647 ELSE greatest(e.capacity - e.confirmed - e.offered, 0) END;
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

-- Cancelling: as in migration 003, but a freed place (a confirmed one, or one held for an
-- offer) is offered to the waitlist instead of given. p_meta as offer_free_places' plus
-- {cancelled_type, cancelled_id, by_organisation}. Returns 'cancelled', then any 'offered',
-- or one row of kind 'not_found' / 'already_cancelled'.
DROP FUNCTION cancel_booking(text, text, timestamptz, jsonb);
CREATE FUNCTION cancel_booking(p_booking text, p_federation text, p_now timestamptz, p_meta jsonb)
RETURNS TABLE (kind text, outbox_id uuid, payload jsonb) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_event text;
  e known_events%ROWTYPE;
  b bookings%ROWTYPE;
  v_cancelled jsonb;
BEGIN
  SELECT x.event_id INTO v_event FROM bookings x WHERE x.booking_id = p_booking AND x.federation_id = p_federation;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'not_found'::text, NULL::uuid, NULL::jsonb; RETURN;
  END IF;
  -- The event before the booking, in the order book_many takes them: no deadlock.
  SELECT * INTO e FROM known_events k WHERE k.event_id = v_event FOR UPDATE;
  SELECT * INTO b FROM bookings x WHERE x.booking_id = p_booking FOR UPDATE;
  IF b.status = 'cancelled' THEN
    RETURN QUERY SELECT 'already_cancelled'::text, NULL::uuid, NULL::jsonb; RETURN;
  END IF;
  UPDATE bookings x SET status = 'cancelled', cancelled_at = p_now, cancel_reason = 'cancelled'
   WHERE x.booking_id = p_booking;
  UPDATE known_events k SET confirmed = k.confirmed - (b.status = 'confirmed')::integer,
                            offered = k.offered - (b.status = 'offered')::integer,
                            waitlisted = k.waitlisted - (b.status = 'waitlisted')::integer
   WHERE k.event_id = v_event;
  v_cancelled := booking_facts(b.federation_id, b.organisation_id, b.booking_id, b.event_id, b.donor_id, b.name,
                                 b.email, b.language) || jsonb_build_object('cancelled_at', p_now,
                   'by_organiser', coalesce(p_meta->>'by_organisation', '') = coalesce(b.organisation_id, ''));
  INSERT INTO outbox (event_id, topic, message_key, event_type, source, subject, tenant, payload, traceparent, tracestate)
  VALUES ((p_meta->>'cancelled_id')::uuid, p_meta->>'topic', v_event, p_meta->>'cancelled_type', p_meta->>'source',
          'bookings/' || p_booking, event_tenant(e), v_cancelled, p_meta->>'traceparent', p_meta->>'tracestate');
  RETURN QUERY SELECT 'cancelled'::text, (p_meta->>'cancelled_id')::uuid, v_cancelled;
  IF b.status <> 'waitlisted' THEN
    RETURN QUERY SELECT * FROM offer_free_places(v_event, p_now, p_meta);
  END IF;
END $$;

-- The person offered a place answers: p_answer 'accept' (the place is theirs) or 'decline'
-- (they give up their spot; the place is offered to the next). p_meta as offer_free_places'
-- plus {accepted_type, declined_type, answer_id}. Returns the answer's event, then any
-- 'offered'; or one row: 'not_found', 'refused' (the event takes no bookings now), 'expired',
-- 'accepted_before' (an accept repeated: nothing to do) or 'not_offered'.
CREATE FUNCTION answer_offer(p_booking text, p_federation text, p_now timestamptz, p_answer text, p_meta jsonb)
RETURNS TABLE (kind text, outbox_id uuid, payload jsonb) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_event text;
  e known_events%ROWTYPE;
  b bookings%ROWTYPE;
  v_payload jsonb;
BEGIN
  SELECT x.event_id INTO v_event FROM bookings x WHERE x.booking_id = p_booking AND x.federation_id = p_federation;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'not_found'::text, NULL::uuid, NULL::jsonb; RETURN;
  END IF;
  SELECT * INTO e FROM known_events k WHERE k.event_id = v_event FOR UPDATE;
  SELECT * INTO b FROM bookings x WHERE x.booking_id = p_booking FOR UPDATE;
  IF b.status <> 'offered' THEN
    RETURN QUERY SELECT CASE WHEN b.status = 'confirmed' AND p_answer = 'accept' AND b.offered_at IS NOT NULL
                             THEN 'accepted_before'
                             WHEN b.cancel_reason = 'offer_expired' THEN 'expired' ELSE 'not_offered' END,
                        NULL::uuid, NULL::jsonb;
    RETURN;
  END IF;
  -- Due but not yet expired by the clock: too late all the same (the clock expires it).
  IF b.offer_expires_at <= p_now THEN
    RETURN QUERY SELECT 'expired'::text, NULL::uuid, NULL::jsonb; RETURN;
  END IF;
  IF p_answer = 'accept' AND e.status = ANY (ARRAY(SELECT jsonb_array_elements_text(p_meta->'refused_statuses'))) THEN
    RETURN QUERY SELECT 'refused'::text, NULL::uuid, NULL::jsonb; RETURN;
  END IF;
  v_payload := booking_facts(b.federation_id, b.organisation_id, b.booking_id, b.event_id, b.donor_id, b.name,
                             b.email, b.language);
  IF p_answer = 'accept' THEN
    UPDATE bookings x SET status = 'confirmed', confirmed_at = p_now, waitlist_seq = NULL, offer_expires_at = NULL
     WHERE x.booking_id = p_booking;
    UPDATE known_events k SET confirmed = k.confirmed + 1, offered = k.offered - 1 WHERE k.event_id = v_event;
    v_payload := v_payload || jsonb_build_object('accepted_at', p_now);
  ELSE
    UPDATE bookings x SET status = 'cancelled', cancelled_at = p_now, cancel_reason = 'offer_declined',
                          offer_expires_at = NULL
     WHERE x.booking_id = p_booking;
    UPDATE known_events k SET offered = k.offered - 1 WHERE k.event_id = v_event;
    v_payload := v_payload || jsonb_build_object('declined_at', p_now);
  END IF;
  INSERT INTO outbox (event_id, topic, message_key, event_type, source, subject, tenant, payload, traceparent, tracestate)
  VALUES ((p_meta->>'answer_id')::uuid, p_meta->>'topic', v_event,
          CASE WHEN p_answer = 'accept' THEN p_meta->>'accepted_type' ELSE p_meta->>'declined_type' END,
          p_meta->>'source', 'bookings/' || p_booking, event_tenant(e), v_payload, p_meta->>'traceparent',
          p_meta->>'tracestate');
  RETURN QUERY SELECT CASE WHEN p_answer = 'accept' THEN 'accepted' ELSE 'declined' END,
                      (p_meta->>'answer_id')::uuid, v_payload;
  IF p_answer <> 'accept' THEN
    RETURN QUERY SELECT * FROM offer_free_places(v_event, p_now, p_meta);
  END IF;
END $$;

-- The offer clock (pitchin_signups.offer_clock): expire a federation's due offers and offer
-- their places to the next, for up to p_limit events. The events are claimed FOR UPDATE SKIP
-- LOCKED, so replicas share the work and an event busy with a rush is done on a later tick;
-- the offers are read again under each event's lock (a statement of its own, seeing every
-- commit before it), so an offer answered meanwhile is not expired, and none is expired twice.
-- p_meta as offer_free_places' plus {expired_type}. Returns 'expired' and 'offered' rows.
CREATE FUNCTION expire_offers(p_federation text, p_now timestamptz, p_limit integer, p_meta jsonb)
RETURNS TABLE (kind text, outbox_id uuid, payload jsonb) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  e known_events%ROWTYPE;
BEGIN
  FOR e IN
    SELECT k.* FROM known_events k
     WHERE k.event_id IN (SELECT DISTINCT x.event_id FROM bookings x
                           WHERE x.federation_id = p_federation AND x.status = 'offered' AND x.offer_expires_at <= p_now)
     LIMIT p_limit FOR UPDATE OF k SKIP LOCKED
  LOOP
    RETURN QUERY
    WITH lapsed AS (
      UPDATE bookings x SET status = 'cancelled', cancelled_at = p_now, cancel_reason = 'offer_expired'
       WHERE x.event_id = e.event_id AND x.status = 'offered' AND x.offer_expires_at <= p_now
      RETURNING x.*
    ), ev AS (
      SELECT gen_random_uuid() AS oid, l.booking_id, l.offer_expires_at,
             booking_facts(l.federation_id, l.organisation_id, l.booking_id, l.event_id, l.donor_id, l.name, l.email,
                           l.language) || jsonb_build_object('expired_at', p_now, 'offered_until', l.offer_expires_at)
               AS payload
        FROM lapsed l
    ), ob AS (
      INSERT INTO outbox (event_id, topic, message_key, event_type, source, subject, tenant, payload,
                          traceparent, tracestate)
      SELECT v.oid, p_meta->>'topic', e.event_id, p_meta->>'expired_type', p_meta->>'source',
             'bookings/' || v.booking_id, event_tenant(e), v.payload, NULL, NULL
        FROM ev v ORDER BY v.offer_expires_at, v.booking_id
    ), counted AS (
      UPDATE known_events k SET offered = k.offered - (SELECT count(*) FROM lapsed) WHERE k.event_id = e.event_id
      RETURNING k.event_id
    )
    SELECT 'expired'::text, v.oid, v.payload FROM ev v ORDER BY v.offer_expires_at, v.booking_id;
    RETURN QUERY SELECT * FROM offer_free_places(e.event_id, p_now, p_meta);
  END LOOP;
END $$;
