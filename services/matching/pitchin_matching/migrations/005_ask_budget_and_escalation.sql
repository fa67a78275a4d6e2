-- The ask budget and escalation of urgent needs (issue 21).
--
-- Whether an offer went to a newcomer, as ranking saw them when it was made: the federation's
-- newcomers' share of a week's offers is counted from these, not re-judged later (a newcomer
-- who has since served would otherwise stop counting).
ALTER TABLE offers ADD COLUMN newcomer boolean NOT NULL DEFAULT false;
CREATE INDEX offers_by_federation_made ON offers (federation_id, made_at);

-- Escalation of an urgent need: its durable timer, like an offer's expiry. `escalation_stage`
-- is how far its ask has widened (0: the first wave); `escalate_at` is when the next step is
-- due (NULL: no further step), claimed by the offer clock with FOR UPDATE SKIP LOCKED.
-- `escalation_from` is when matching first learnt the need: the steps fall at set fractions
-- of the time from then to the deadline.
ALTER TABLE needs
    ADD COLUMN escalation_stage integer NOT NULL DEFAULT 0,
    ADD COLUMN escalation_from  timestamptz,
    ADD COLUMN escalate_at      timestamptz;
CREATE INDEX needs_escalation_due ON needs (escalate_at) WHERE escalate_at IS NOT NULL;

-- Every step of a need's escalation, for the organiser's page: what the step did and when.
CREATE TABLE escalation_steps (
    need_id        text NOT NULL,
    federation_id  text NOT NULL,
    step           integer NOT NULL,
    kind           text NOT NULL,   -- first-wave | widened | stood-down | reclaimed
    detail         text NOT NULL DEFAULT '',
    offers_wanted  integer NOT NULL DEFAULT 0,
    taken_at       timestamptz NOT NULL,
    PRIMARY KEY (need_id, step)
);
