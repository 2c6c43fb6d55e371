-- Dispatch and tracking: supplier connections, purchase orders with their
-- lines, events, shipments and parcels, durable jobs with leases, circuit
-- breakers, poll cursors and operator events. Keep in step with
-- ../postgres/0005_dispatch.sql: only the id column types differ.

-- How daifa reaches each supplier: the plugin, a pinned version or none
-- (= follow the active one), the supplier's own configuration, secret
-- values (never returned by the API) and references resolved by the host
-- (`env:NAME`, `file:/path`), and its dispatch limits. `paused_reason` is
-- set when the supplier refused our credentials.
CREATE TABLE supplier_connections (
    supplier TEXT PRIMARY KEY,
    plugin TEXT NOT NULL,
    pinned_version TEXT,
    config TEXT NOT NULL,
    secrets TEXT NOT NULL,
    secret_refs TEXT NOT NULL,
    max_in_flight BIGINT NOT NULL,
    rate_per_sec BIGINT NOT NULL,
    poll_interval_ms BIGINT NOT NULL,
    paused_reason TEXT,
    revision BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- One supplier's share of one sales order. `attempt` is the routing attempt
-- that created it; `erp_step` how far its PUR_PurchaseOrder got (none,
-- saved, submitted, audited).
CREATE TABLE purchase_orders (
    po_number TEXT PRIMARY KEY,
    order_id BIGINT NOT NULL REFERENCES sales_orders (id),
    supplier TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    state TEXT NOT NULL,
    state_reason TEXT NOT NULL,
    currency TEXT NOT NULL,
    supplier_ref TEXT,
    erp_step TEXT NOT NULL,
    erp_bill_no TEXT,
    expected_ship_by BIGINT,
    dispatched_at BIGINT,
    acknowledged_at BIGINT,
    shipped_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX purchase_orders_order ON purchase_orders (order_id);
CREATE INDEX purchase_orders_supplier_state ON purchase_orders (supplier, state);

-- Lines with the supplier's word on each and what has shipped of it.
-- Quantities are decimals in plain notation.
CREATE TABLE po_lines (
    po_number TEXT NOT NULL REFERENCES purchase_orders (po_number),
    line_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    supplier_sku TEXT NOT NULL,
    quantity TEXT NOT NULL,
    unit_cost TEXT NOT NULL,
    tax_rate TEXT NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT NOT NULL,
    shipped_qty TEXT NOT NULL,
    PRIMARY KEY (po_number, line_id)
);

-- Everything that happened to a PO: submits, acknowledgements, backorders,
-- rejections, shipments, cancellations, write-backs; with where it came
-- from (submit, poll, callback, erp, operator).
CREATE TABLE po_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    po_number TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    origin TEXT NOT NULL,
    detail TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX po_events_po ON po_events (po_number, id);

-- A shipment: one update from the supplier; its parcels carry tracking
-- numbers. Written back to the ERP as one document.
CREATE TABLE shipments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    po_number TEXT NOT NULL REFERENCES purchase_orders (po_number),
    shipped_at BIGINT,
    written_back_at BIGINT,
    erp_doc TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX shipments_po ON shipments (po_number);

CREATE TABLE parcels (
    po_number TEXT NOT NULL,
    tracking_number TEXT NOT NULL,
    shipment_id BIGINT NOT NULL REFERENCES shipments (id),
    carrier TEXT NOT NULL,
    lines TEXT NOT NULL,
    PRIMARY KEY (po_number, tracking_number)
);
CREATE INDEX parcels_shipment ON parcels (shipment_id);

-- Durable work: submits, ERP purchase orders, write-backs, polls. A worker
-- holds a job under a lease; `fence` grows with every claim and is checked
-- when the result commits, so a worker whose lease ran out cannot commit.
-- `state`: ready, dead (a dead letter, with every error in `errors`), done,
-- discarded.
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    job_key TEXT NOT NULL,
    supplier TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    run_at BIGINT NOT NULL,
    deadline_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    fence BIGINT NOT NULL,
    last_error TEXT,
    errors TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (kind, job_key)
);
CREATE INDEX jobs_ready ON jobs (state, run_at);

-- Each supplier's circuit breaker and every transition, so a restart or
-- another host sees the same state.
CREATE TABLE circuits (
    supplier TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    failures BIGINT NOT NULL,
    opened_at BIGINT,
    retry_at BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE TABLE circuit_transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    supplier TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    reason TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX circuit_transitions_supplier ON circuit_transitions (supplier, id);

-- Where each supplier's update feed was read up to.
CREATE TABLE poll_cursors (
    supplier TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- What needs a person: credentials refused, dead letters, updates for POs
-- or lines we never sent, over-shipments.
CREATE TABLE operator_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    supplier TEXT NOT NULL,
    subject TEXT NOT NULL,
    message TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX operator_events_at ON operator_events (id);

-- Supplier events recorded by dispatch and tracking (per PO) rather than
-- by the router's feed; the router reads these into its performance window.
ALTER TABLE supplier_events ADD COLUMN origin TEXT NOT NULL DEFAULT 'feed';
CREATE INDEX supplier_events_origin ON supplier_events (origin, id);
