-- Hours the donor logs on confirmed work, and the organisation's confirmation (issue 22). A log
-- counts on the donor's record and in the federation's totals only once confirmed, with the hours
-- the organisation confirmed (as logged, or adjusted). Work marked done (assignments.hours_given)
-- is the organisation's final figure for that work and stands instead of its logs.
CREATE TABLE hour_logs (
    log_id           text PRIMARY KEY,
    assignment_id    text NOT NULL REFERENCES assignments (assignment_id),
    need_id          text NOT NULL,
    fight_id         text NOT NULL,
    donor_id         text NOT NULL,
    federation_id    text NOT NULL,
    organisation_id  text,
    worked_on        date NOT NULL,
    hours            numeric(3, 1) NOT NULL CHECK (hours > 0 AND hours <= 24),
    note             text NOT NULL DEFAULT '',
    logged_at        timestamptz NOT NULL,
    status           text NOT NULL DEFAULT 'logged' CHECK (status IN ('logged', 'confirmed')),
    hours_confirmed  numeric(3, 1) CHECK (hours_confirmed >= 0 AND hours_confirmed <= 24),
    reason           text NOT NULL DEFAULT '',
    confirmed_at     timestamptz,
    CHECK ((status = 'confirmed') = (hours_confirmed IS NOT NULL))
);
CREATE INDEX hour_logs_by_assignment ON hour_logs (assignment_id, worked_on, logged_at);
CREATE INDEX hour_logs_by_need ON hour_logs (need_id, logged_at);
-- A donor's day across all their work: no more than 24 hours of it.
CREATE INDEX hour_logs_by_donor_day ON hour_logs (donor_id, worked_on);
