-- Routing inputs: the selling organisation and marketplace of each order (for
-- rule conditions), and per-consumer read positions in the outbox, so that
-- several consumers (the performance feed now; tracking and write-back later)
-- each read every row once without taking rows from one another. Identical
-- for SQLite and PostgreSQL.
ALTER TABLE sales_orders ADD COLUMN sales_org TEXT NOT NULL DEFAULT '';
ALTER TABLE sales_orders ADD COLUMN platform TEXT NOT NULL DEFAULT '';

CREATE TABLE outbox_cursors (
    consumer TEXT PRIMARY KEY,
    last_id BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
