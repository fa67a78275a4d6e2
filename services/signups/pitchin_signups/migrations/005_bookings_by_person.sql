-- A donor's own page lists their bookings (found by their email within the federation):
-- answered from this index, not a scan of every booking (issue 17: the page no longer finds
-- them through scheduling's email lookup, which handed out private calendar feeds).
CREATE INDEX bookings_by_person ON bookings (federation_id, lower(email));
