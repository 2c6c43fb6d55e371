-- Orders in, hardened: the whole content's hash (a re-read of one revision
-- that differs is a repair, not "unchanged") and the line's unit of measure
-- (fractions are allowed only for units that allow them).
ALTER TABLE sales_orders ADD COLUMN revision_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE order_lines ADD COLUMN unit TEXT NOT NULL DEFAULT '';
