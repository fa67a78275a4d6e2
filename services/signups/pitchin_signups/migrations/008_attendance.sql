-- After the event (issue 22): what the organiser marked of each confirmed place, and what the
-- people who came thought of it. A table of their own beside `bookings` (whose rows the booking
-- calls of migration 003 own): a check-in (bookings.checked_in_at) counts as attended without a row here.
CREATE TABLE attendance (
    booking_id       text PRIMARY KEY REFERENCES bookings (booking_id),
    event_id         text NOT NULL,
    federation_id    text NOT NULL,
    organisation_id  text,
    outcome          text NOT NULL CHECK (outcome IN ('attended', 'no_show')),
    marked_at        timestamptz NOT NULL,
    by_check_in      boolean NOT NULL DEFAULT false,
    -- Set the first time the place is known to be attended: the thank-you went out then, once.
    first_attended_at timestamptz
);
CREATE INDEX attendance_by_event ON attendance (event_id);

-- One answer per place, from the thank-you's link; given again, it replaces the earlier one.
CREATE TABLE booking_feedback (
    booking_id       text PRIMARY KEY REFERENCES bookings (booking_id),
    event_id         text NOT NULL,
    federation_id    text NOT NULL,
    organisation_id  text,
    rating           smallint NOT NULL CHECK (rating BETWEEN 1 AND 5),
    comment          text NOT NULL DEFAULT '',
    given_at         timestamptz NOT NULL
);
CREATE INDEX booking_feedback_by_event ON booking_feedback (event_id);
