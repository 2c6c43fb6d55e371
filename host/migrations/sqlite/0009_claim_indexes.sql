-- Claims ask for ready jobs of given kinds in run_at order. Indexed by
-- (state, run_at) alone, a claim of ERP work walked past every ready submit
-- (thousands on a busy day) to find its own kind; by kind it starts at them.
DROP INDEX jobs_ready;
CREATE INDEX jobs_ready ON jobs (state, kind, run_at);

-- Routing picks received orders not yet routed. Every other topic's rows
-- stay `done_at IS NULL` (their consumers keep cursors), so the pick walked
-- past all of them under outbox_pending, which SQLite's planner prefers to
-- a partial index while both exist (so it goes; nothing else needs it).
DROP INDEX outbox_pending;
CREATE INDEX outbox_received_pending ON outbox (id) WHERE done_at IS NULL AND topic = 'order.received';
