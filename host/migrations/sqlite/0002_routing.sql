-- Routing: the supplier catalog, routing policies, decisions with their
-- explanations, line allocations, supplier events and automatic score
-- changes. Keep in step with ../postgres/0002_routing.sql: only the id
-- column types differ.

-- One row per supplier; the routing profile as JSON (coverage, shipping, ...).
CREATE TABLE suppliers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    plugin TEXT NOT NULL,
    profile TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- One offer per (supplier, SKU).
CREATE TABLE catalog_offers (
    supplier TEXT NOT NULL REFERENCES suppliers (id),
    sku TEXT NOT NULL,
    supplier_sku TEXT NOT NULL,
    unit_cost TEXT NOT NULL,
    currency TEXT NOT NULL,
    lead_time_days BIGINT NOT NULL,
    stock BIGINT,
    stock_confirmed_at BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (supplier, sku)
);
CREATE INDEX catalog_offers_sku ON catalog_offers (sku);

-- Every policy version ever loaded; exactly one is active.
CREATE TABLE routing_policies (
    version BIGINT PRIMARY KEY,
    body TEXT NOT NULL,
    active BIGINT NOT NULL,
    loaded_by TEXT NOT NULL,
    loaded_at BIGINT NOT NULL
);

-- Counters that tell routers on any host to reload (catalog revision).
CREATE TABLE routing_meta (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

-- Every decision, each attempt, with its full explanation (JSON).
CREATE TABLE routing_decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id BIGINT NOT NULL REFERENCES sales_orders (id),
    attempt BIGINT NOT NULL,
    policy_version BIGINT NOT NULL,
    rule_set TEXT NOT NULL,
    outcome TEXT NOT NULL,
    suppliers TEXT NOT NULL,
    landed_cost TEXT NOT NULL,
    cause TEXT NOT NULL,
    decision TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (order_id, attempt)
);

-- The current allocation of each line (replaced on re-routing).
CREATE TABLE line_allocations (
    order_id BIGINT NOT NULL REFERENCES sales_orders (id),
    line_id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    supplier TEXT NOT NULL,
    supplier_sku TEXT NOT NULL,
    unit_cost TEXT NOT NULL,
    backordered BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (order_id, line_id)
);
CREATE INDEX line_allocations_supplier ON line_allocations (supplier, created_at);

-- What happened at suppliers; feeds the performance loop.
CREATE TABLE supplier_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    supplier TEXT NOT NULL,
    event TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX supplier_events_at ON supplier_events (at);

-- Every automatic score change with the metric that caused it.
CREATE TABLE score_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    supplier TEXT NOT NULL,
    from_score TEXT NOT NULL,
    to_score TEXT NOT NULL,
    cause TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX score_changes_supplier ON score_changes (supplier, id);
