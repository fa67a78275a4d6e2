-- How long a freed place is held for the first on the waitlist (issue 22), as the organiser
-- set it; NULL: the default (24 hours). Signups holds the offers and shortens the window as
-- the booking deadline nears.
ALTER TABLE events ADD COLUMN waitlist_offer_seconds integer
    CHECK (waitlist_offer_seconds BETWEEN 5 AND 7 * 24 * 3600);
