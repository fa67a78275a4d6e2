-- No NOTIFY from write transactions: a transaction that notified holds a cluster-wide lock
-- through its commit flush, so such commits cannot share a WAL flush. The relay is woken
-- in-process after a commit and polls for other processes' rows (pitchin_core.worker).
DROP TRIGGER IF EXISTS outbox_notify ON outbox;
DROP FUNCTION IF EXISTS outbox_notify();
