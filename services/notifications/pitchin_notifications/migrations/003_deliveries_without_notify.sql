-- Senders are woken in-process after a commit and poll otherwise: no NOTIFY in write
-- transactions (see core/007_outbox_without_notify.sql).
DROP TRIGGER IF EXISTS deliveries_notify ON deliveries;
DROP TRIGGER IF EXISTS fanouts_notify ON fanouts;
DROP FUNCTION IF EXISTS deliveries_notify();
