-- Orders in: sales orders, their lines and history, the outbox, ingest cursors
-- and rejected rows. Keep in step with ../postgres/0001_orders.sql: only the
-- id column types differ.
CREATE TABLE sales_orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    external_id TEXT NOT NULL,
    bill_no TEXT NOT NULL,
    platform_order_no TEXT,
    customer TEXT NOT NULL,
    ship_name TEXT NOT NULL,
    ship_phone TEXT NOT NULL,
    ship_province TEXT NOT NULL,
    ship_city TEXT NOT NULL,
    ship_district TEXT NOT NULL,
    ship_street TEXT NOT NULL,
    ship_postcode TEXT NOT NULL,
    ship_country TEXT NOT NULL,
    remark TEXT NOT NULL,
    source_modified TEXT NOT NULL,
    cancelled BIGINT NOT NULL,
    content_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    state_reason TEXT NOT NULL,
    pending_revision TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (source, external_id)
);
CREATE INDEX sales_orders_state ON sales_orders (state, id);

CREATE TABLE order_lines (
    order_id BIGINT NOT NULL REFERENCES sales_orders (id),
    line_no BIGINT NOT NULL,
    erp_line_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    quantity TEXT NOT NULL,
    unit_price TEXT NOT NULL,
    tax_rate TEXT NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE order_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id BIGINT NOT NULL REFERENCES sales_orders (id),
    from_state TEXT,
    to_state TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX order_history_order ON order_history (order_id, id);

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    order_id BIGINT,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    done_at BIGINT
);
CREATE INDEX outbox_pending ON outbox (done_at, id);

CREATE TABLE ingest_cursors (
    source TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE ingest_rejects (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    raw TEXT NOT NULL,
    reason TEXT NOT NULL,
    at BIGINT NOT NULL
);
