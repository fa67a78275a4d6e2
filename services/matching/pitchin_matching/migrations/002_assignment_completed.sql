-- An organiser marks a confirmed assignment done: the hours the donor actually gave and the
-- organisation's thanks. This is the donor's record (hours given, thanks received), and a
-- completed assignment no longer counts against the donor's load cap.
ALTER TABLE assignments DROP CONSTRAINT assignments_status_check;
ALTER TABLE assignments ADD CONSTRAINT assignments_status_check
    CHECK (status IN ('accepted', 'confirmed', 'completed', 'released'));
ALTER TABLE assignments
    ADD COLUMN completed_at timestamptz,
    ADD COLUMN hours_given  numeric(7, 1) CHECK (hours_given >= 0),
    ADD COLUMN thanks       text NOT NULL DEFAULT '';
CREATE INDEX completed_assignments_by_donor ON assignments (donor_id, completed_at DESC) WHERE status = 'completed';
