-- The timer is woken in-process after a commit that emitted events and polls otherwise:
-- no NOTIFY in write transactions (see core/007_outbox_without_notify.sql).
DROP TRIGGER IF EXISTS reminders_notify ON reminders;
DROP FUNCTION IF EXISTS reminders_notify();
