//! Sales orders and their state machine. Every state change goes through
//! [`SalesOrder::transition`], which checks it is legal and appends who, why
//! and when to the order's history.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ids::{BillNo, ErpLineId, ExternalId, OrderId, Sku, Source};
use super::values::{self, Bounds};

/// Where the goods go. Missing parts read as empty (and are then reported
/// as problems naming them, rather than refusing the whole order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShipTo {
    pub name: String,
    pub phone: String,
    pub province: String,
    pub city: String,
    pub district: String,
    pub street: String,
    pub postcode: String,
    pub country: String,
}

/// One line of a sales order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub erp_line_id: ErpLineId,
    pub sku: Sku,
    pub quantity: Decimal,
    pub unit_price: Decimal,
    /// Percent, e.g. 13 for 13 %.
    pub tax_rate: Decimal,
    /// The unit of measure as the source names it (Kingdee `FUnitID`, e.g.
    /// `Pcs`, `kg`); empty = each. Decides whether fractions are allowed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
}

/// A sales order as it came from its source, before daifa's decisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderContent {
    pub source: Source,
    pub external_id: ExternalId,
    pub bill_no: BillNo,
    pub platform_order_no: Option<String>,
    pub customer: String,
    /// The ERP's selling organisation (Kingdee `FSaleOrgId`); empty if unknown.
    #[serde(default)]
    pub sales_org: String,
    /// The marketplace the order was placed on (`tmall`, `jd`, ...); empty if unknown.
    #[serde(default)]
    pub platform: String,
    pub ship_to: ShipTo,
    pub lines: Vec<OrderLine>,
    pub remark: String,
    /// The source's modification stamp, verbatim (Kingdee `FModifyDate`).
    pub source_modified: String,
    /// The source says the order is cancelled / closed.
    pub cancelled: bool,
    /// What could not be read from the source row (unparseable values,
    /// unknown SKUs), each naming the field; the order goes to exception.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intake_problems: Vec<String>,
}

/// The states of an order. Exactly one at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    Received,
    Routed,
    Dispatched,
    Acknowledged,
    PartiallyShipped,
    Shipped,
    WrittenBack,
    Backordered,
    Rejected,
    Cancelled,
    OnHold,
    Exception,
}

impl OrderState {
    pub const ALL: [OrderState; 12] = [
        OrderState::Received,
        OrderState::Routed,
        OrderState::Dispatched,
        OrderState::Acknowledged,
        OrderState::PartiallyShipped,
        OrderState::Shipped,
        OrderState::WrittenBack,
        OrderState::Backordered,
        OrderState::Rejected,
        OrderState::Cancelled,
        OrderState::OnHold,
        OrderState::Exception,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Received => "received",
            OrderState::Routed => "routed",
            OrderState::Dispatched => "dispatched",
            OrderState::Acknowledged => "acknowledged",
            OrderState::PartiallyShipped => "partially_shipped",
            OrderState::Shipped => "shipped",
            OrderState::WrittenBack => "written_back",
            OrderState::Backordered => "backordered",
            OrderState::Rejected => "rejected",
            OrderState::Cancelled => "cancelled",
            OrderState::OnHold => "on_hold",
            OrderState::Exception => "exception",
        }
    }

    /// States from which `to` may follow.
    pub fn can_go_to(self, to: OrderState) -> bool {
        use OrderState::*;
        matches!(
            (self, to),
            (Received, Routed | OnHold | Exception | Cancelled)
                | (Routed, Dispatched | Received | OnHold | Exception | Cancelled)
                | (
                    Dispatched,
                    Acknowledged | Backordered | Rejected | PartiallyShipped | Shipped | Exception | Cancelled
                )
                | (Acknowledged, PartiallyShipped | Shipped | Backordered | Rejected | Exception | Cancelled)
                | (Backordered, Acknowledged | Routed | OnHold | PartiallyShipped | Shipped | Exception | Cancelled)
                | (PartiallyShipped, Shipped | Rejected | Exception | Cancelled)
                | (Shipped, WrittenBack | Exception)
                | (WrittenBack, Exception)
                | (Rejected, Routed | OnHold | Exception | Cancelled)
                | (OnHold, Received | Routed | Exception | Cancelled)
                | (Exception, Received | Routed | OnHold | Cancelled)
        )
    }

    /// Has the order been handed to a supplier (so ERP changes need a human)?
    pub fn is_dispatched(self) -> bool {
        use OrderState::*;
        matches!(self, Dispatched | Acknowledged | Backordered | PartiallyShipped | Shipped | WrittenBack | Rejected)
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrderState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrderState::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| format!("unknown order state `{s}`"))
    }
}

/// Who caused a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Actor {
    /// An ingester (`kingdee`, `api`, `csv`).
    Ingest(String),
    Router,
    Dispatcher,
    Tracker,
    /// An operator, by name.
    Operator(String),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Ingest(s) => write!(f, "ingest:{s}"),
            Actor::Router => f.write_str("router"),
            Actor::Dispatcher => f.write_str("dispatcher"),
            Actor::Tracker => f.write_str("tracker"),
            Actor::Operator(n) => write!(f, "operator:{n}"),
        }
    }
}

/// One recorded state change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// `None` for the first state.
    pub from: Option<OrderState>,
    pub to: OrderState,
    pub actor: String,
    pub reason: String,
    /// Unix ms.
    pub at: i64,
}

/// A refused state change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("order {order}: {from} → {to} is not a legal transition")]
pub struct IllegalTransition {
    pub order: String,
    pub from: OrderState,
    pub to: OrderState,
}

/// An order with its state and history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SalesOrder {
    pub id: Option<OrderId>,
    pub content: OrderContent,
    pub state: OrderState,
    /// Why it is in its state (the exception's message, the hold's reason).
    pub state_reason: String,
    pub history: Vec<HistoryEntry>,
}

impl SalesOrder {
    /// A new order: `Received`, or `Exception` if its data has problems.
    pub fn receive(content: OrderContent, actor: &Actor, at: i64) -> SalesOrder {
        let problems = content.problems();
        let (state, reason) = if content.cancelled {
            // Nothing to fulfil; kept, visible, never routed.
            (OrderState::Cancelled, "cancelled at the source before it was received".to_string())
        } else if problems.is_empty() {
            (OrderState::Received, "received".to_string())
        } else {
            (OrderState::Exception, problems.join("; "))
        };
        SalesOrder {
            id: None,
            content,
            state,
            state_reason: reason.clone(),
            history: vec![HistoryEntry { from: None, to: state, actor: actor.to_string(), reason, at }],
        }
    }

    /// The only way to change state: checks legality, records history.
    pub fn transition(
        &mut self,
        to: OrderState,
        actor: &Actor,
        reason: impl Into<String>,
        at: i64,
    ) -> Result<&HistoryEntry, IllegalTransition> {
        if !self.state.can_go_to(to) {
            return Err(IllegalTransition { order: self.content.bill_no.to_string(), from: self.state, to });
        }
        let reason = reason.into();
        self.history.push(HistoryEntry {
            from: Some(self.state),
            to,
            actor: actor.to_string(),
            reason: reason.clone(),
            at,
        });
        self.state = to;
        self.state_reason = reason;
        Ok(self.history.last().expect("just pushed"))
    }
}

impl OrderContent {
    /// What is wrong with the data, each naming the field (empty = fine).
    pub fn problems(&self) -> Vec<String> {
        let mut p = self.intake_problems.clone();
        let a = &self.ship_to;
        for (field, v) in [
            ("ship_to.name", &a.name),
            ("ship_to.phone", &a.phone),
            ("ship_to.province", &a.province),
            ("ship_to.city", &a.city),
            ("ship_to.street", &a.street),
        ] {
            if v.trim().is_empty() {
                p.push(format!("{field} is missing"));
            }
        }
        if self.lines.is_empty() {
            p.push("the order has no lines".into());
        }
        let mut line_ids = std::collections::HashSet::new();
        for l in &self.lines {
            let id = &l.erp_line_id;
            // Lines are written back and re-routed by id: one id, one line.
            if !line_ids.insert(id.as_str()) {
                p.push(format!("line {id}: the line id appears more than once"));
            }
            if l.sku.as_str().trim().is_empty() {
                p.push(format!("line {id}: SKU is missing"));
            }
            let quantity = format!("line {id} quantity");
            values::number_problems(
                &quantity,
                l.quantity,
                Bounds { positive: true, max: values::MAX_QUANTITY },
                &mut p,
            );
            if l.quantity > Decimal::ZERO && !l.quantity.fract().is_zero() && !values::unit_allows_fractions(&l.unit) {
                p.push(if l.unit.trim().is_empty() {
                    format!("{quantity} {} is not a whole number (no unit: whole items; fractions need a unit such as kg, m or l)", l.quantity)
                } else {
                    format!("{quantity} {} is not a whole number (unit `{}` counts whole items)", l.quantity, l.unit)
                });
            }
            let price = format!("line {id} unit_price");
            values::number_problems(
                &price,
                l.unit_price,
                Bounds { positive: false, max: values::MAX_UNIT_PRICE },
                &mut p,
            );
            let tax = format!("line {id} tax_rate");
            values::number_problems(&tax, l.tax_rate, Bounds { positive: false, max: values::MAX_TAX_RATE }, &mut p);
        }
        p
    }

    /// A character no store can keep in the order's identity (source,
    /// external id), named. Such an order cannot be stored under its id:
    /// it is refused, never silently renamed.
    pub fn identity_problem(&self) -> Option<String> {
        values::check_storable("source", self.source.as_str())
            .and_then(|()| values::check_storable("external_id", self.external_id.as_str()))
            .err()
    }

    /// Replaces, in every text field but the identity, the characters no
    /// store can keep (`values::is_unstorable`) with U+FFFD, and records
    /// each field changed as an intake problem naming it: the order is kept,
    /// visibly, in exception. Our own messages quoting such text are cleaned
    /// the same way. Doing it again changes nothing.
    pub fn scrub_text(&mut self) {
        let mut found = Vec::new();
        // The field's name is only built when there is something to report.
        let mut mark = |v: &mut String, field: &dyn Fn() -> String| {
            if let Some(c) = values::first_unstorable(v) {
                *v = values::storable(v).into_owned();
                found.push(format!(
                    "{} replaced with U+FFFD (no store keeps it)",
                    values::unstorable_message(&field(), c)
                ));
            }
        };
        let a = &mut self.ship_to;
        for (field, v) in [
            ("bill_no", &mut self.bill_no.0),
            ("customer", &mut self.customer),
            ("sales_org", &mut self.sales_org),
            ("platform", &mut self.platform),
            ("ship_to.name", &mut a.name),
            ("ship_to.phone", &mut a.phone),
            ("ship_to.province", &mut a.province),
            ("ship_to.city", &mut a.city),
            ("ship_to.district", &mut a.district),
            ("ship_to.street", &mut a.street),
            ("ship_to.postcode", &mut a.postcode),
            ("ship_to.country", &mut a.country),
            ("remark", &mut self.remark),
            ("modified", &mut self.source_modified),
        ] {
            mark(v, &|| field.to_string());
        }
        if let Some(no) = &mut self.platform_order_no {
            mark(no, &|| "platform_order_no".to_string());
        }
        for (n, l) in self.lines.iter_mut().enumerate() {
            mark(&mut l.erp_line_id.0, &|| format!("line {} line_id", n + 1));
            let id = &l.erp_line_id;
            mark(&mut l.sku.0, &|| format!("line {id} sku"));
            mark(&mut l.unit, &|| format!("line {id} unit"));
        }
        for p in &mut self.intake_problems {
            if values::first_unstorable(p).is_some() {
                *p = values::storable(p).into_owned();
            }
        }
        self.intake_problems.extend(found);
    }

    /// Hash of what matters for fulfilment, to tell real changes from noise.
    pub fn content_hash(&self) -> String {
        let mut h = Sha256::new();
        let a = &self.ship_to;
        for part in [&a.name, &a.phone, &a.province, &a.city, &a.district, &a.street, &a.postcode, &a.country] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        for l in &self.lines {
            for part in [l.erp_line_id.as_str(), l.sku.as_str(), &l.quantity.normalize().to_string()] {
                h.update(part.as_bytes());
                h.update([0]);
            }
            // Only when set, so hashes stored before units existed still match.
            if !l.unit.is_empty() {
                h.update(l.unit.as_bytes());
                h.update([0]);
            }
        }
        h.update([self.cancelled as u8]);
        hex::encode(&h.finalize()[..16])
    }

    /// Hash of the whole content except the stamp: two reads of one
    /// revision that differ (a torn read repaired, a price fixed without a
    /// new stamp) must not be taken as "unchanged".
    pub fn revision_hash(&self) -> String {
        let mut c = self.clone();
        c.source_modified.clear();
        let text = serde_json::to_string(&c).unwrap_or_default();
        hex::encode(&Sha256::digest(text.as_bytes())[..16])
    }

    /// How `newer` differs from `self` in ways a supplier cares about.
    pub fn material_changes(&self, newer: &OrderContent) -> Vec<String> {
        let mut c = Vec::new();
        if self.ship_to != newer.ship_to {
            c.push("ship-to address changed".to_string());
        }
        if newer.cancelled && !self.cancelled {
            c.push("cancelled at the source".to_string());
        }
        let key = |l: &OrderLine| (l.erp_line_id.clone(), l.sku.clone(), l.quantity.normalize());
        let old: Vec<_> = self.lines.iter().map(key).collect();
        let new: Vec<_> = newer.lines.iter().map(key).collect();
        if old != new {
            c.push("lines or quantities changed".to_string());
        }
        // The unit is part of what a supplier ships (the content hash has it).
        let units = |o: &OrderContent| o.lines.iter().map(|l| l.unit.clone()).collect::<Vec<_>>();
        if old == new && units(self) != units(newer) {
            c.push("units changed".to_string());
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn content() -> OrderContent {
        OrderContent {
            source: "kingdee".into(),
            external_id: "100001".into(),
            bill_no: "XSDD000001".into(),
            platform_order_no: Some("TB123".into()),
            customer: "CUST001".into(),
            sales_org: "100".into(),
            platform: "tmall".into(),
            ship_to: ShipTo {
                name: "张三".into(),
                phone: "13800138000".into(),
                province: "广东省".into(),
                city: "深圳市".into(),
                district: "南山区".into(),
                street: "科技园路 1 号".into(),
                postcode: "518057".into(),
                country: "CN".into(),
            },
            lines: vec![OrderLine {
                erp_line_id: "1".into(),
                sku: "MAT001".into(),
                quantity: Decimal::from(2),
                unit_price: Decimal::new(1250, 2),
                tax_rate: Decimal::from(13),
                unit: String::new(),
            }],
            remark: String::new(),
            source_modified: "2026-11-25T10:00:00".into(),
            cancelled: false,
            intake_problems: vec![],
        }
    }

    #[test]
    fn transitions_are_checked_and_recorded() {
        let mut o = SalesOrder::receive(content(), &Actor::Ingest("kingdee".into()), 1);
        assert_eq!(o.state, OrderState::Received);
        o.transition(OrderState::Routed, &Actor::Router, "cheapest: S1", 2).unwrap();
        let err = o.transition(OrderState::Shipped, &Actor::Tracker, "?", 3).unwrap_err();
        assert_eq!(err.to_string(), "order XSDD000001: routed → shipped is not a legal transition");
        assert_eq!(o.state, OrderState::Routed, "a refused transition changes nothing");
        assert_eq!(o.history.len(), 2);
        assert_eq!(o.history[1].actor, "router");
        // Cancelled is terminal.
        o.transition(OrderState::Cancelled, &Actor::Operator("li".into()), "customer asked", 4).unwrap();
        for s in OrderState::ALL {
            assert!(!OrderState::Cancelled.can_go_to(s));
        }
    }

    #[test]
    fn bad_data_lands_in_exception_with_reasons() {
        let mut c = content();
        c.ship_to.city.clear();
        c.lines[0].quantity = Decimal::from(-1);
        let o = SalesOrder::receive(c, &Actor::Ingest("csv".into()), 1);
        assert_eq!(o.state, OrderState::Exception);
        assert!(o.state_reason.contains("ship_to.city is missing"), "{}", o.state_reason);
        assert!(o.state_reason.contains("quantity -1 is not positive"), "{}", o.state_reason);
        // Retryable once fixed.
        let mut o = o;
        o.transition(OrderState::Received, &Actor::Operator("li".into()), "address fixed", 2).unwrap();
    }

    #[test]
    fn fractions_only_in_units_that_allow_them() {
        let mut c = content();
        c.lines[0].quantity = Decimal::new(15, 1);
        assert_eq!(
            c.problems(),
            [
                "line 1 quantity 1.5 is not a whole number (no unit: whole items; fractions need a unit such as kg, m or l)"
            ]
        );
        c.lines[0].unit = "Pcs".into();
        assert_eq!(c.problems(), ["line 1 quantity 1.5 is not a whole number (unit `Pcs` counts whole items)"]);
        c.lines[0].unit = "KG".into();
        assert!(c.problems().is_empty());
        c.lines[0].quantity = Decimal::new(1_000_001, 0);
        assert_eq!(c.problems(), ["line 1 quantity 1000001 is above the maximum of 1000000"]);
    }

    #[test]
    fn unstorable_text_is_marked_once_and_named() {
        let mut c = content();
        c.ship_to.street = "科技园\u{0}路".into();
        c.lines[0].sku = Sku("MAT\u{7}1".into());
        c.intake_problems.push("line 1 quantity: `1\u{0}` is not a number".into());
        assert_eq!(c.identity_problem(), None);
        c.scrub_text();
        assert_eq!(c.ship_to.street, "科技园\u{FFFD}路");
        assert_eq!(
            c.problems(),
            [
                "line 1 quantity: `1\u{FFFD}` is not a number",
                "ship_to.street: control character U+0000 replaced with U+FFFD (no store keeps it)",
                "line 1 sku: control character U+0007 replaced with U+FFFD (no store keeps it)",
            ]
        );
        let once = c.clone();
        c.scrub_text();
        assert_eq!(c, once, "scrubbing again changes nothing");
        c.external_id = ExternalId("1\u{0}".into());
        assert_eq!(
            c.identity_problem().as_deref(),
            Some("external_id: control character U+0000 cannot be stored; send it without")
        );
    }

    #[test]
    fn material_changes_ignore_noise() {
        let a = content();
        let mut b = a.clone();
        b.remark = "please hurry".into();
        b.lines[0].quantity = Decimal::new(200, 2); // 2.00 == 2
        assert!(a.material_changes(&b).is_empty());
        assert_eq!(a.content_hash(), b.content_hash());
        b.lines[0].quantity = Decimal::from(3);
        b.ship_to.street = "elsewhere".into();
        assert_eq!(a.material_changes(&b).len(), 2);
    }
}
