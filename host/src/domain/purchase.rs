//! Purchase orders (one supplier's share of one sales order), their lines
//! and the two derivations the whole chain rests on: a PO's state from its
//! lines, and a sales order's state from its POs. Pure: no I/O.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::order::OrderState;

macro_rules! word_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $word:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($word => Ok($name::$variant),)*
                    _ => Err(format!("unknown {} `{s}`", stringify!($name))),
                }
            }
        }
    };
}

word_enum! {
    /// Where a purchase order is. Forward states in rank order, then the ends.
    PoState {
        Pending = "pending",
        Submitted = "submitted",
        Acknowledged = "acknowledged",
        Backordered = "backordered",
        PartiallyShipped = "partially_shipped",
        Shipped = "shipped",
        WrittenBack = "written_back",
        Rejected = "rejected",
        Cancelled = "cancelled",
        Dead = "dead",
    }
}

word_enum! {
    /// What the supplier said of one line.
    LineStatus {
        Pending = "pending",
        Accepted = "accepted",
        Backordered = "backordered",
        Rejected = "rejected",
        Cancelled = "cancelled",
    }
}

impl LineStatus {
    /// Rejected and cancelled lines are no longer this supplier's to ship.
    pub fn is_live(self) -> bool {
        !matches!(self, LineStatus::Rejected | LineStatus::Cancelled)
    }

    /// Whether an update may move a line from `self` to `to`: the supplier's
    /// word can change until the line ends, but never back to `pending`,
    /// and a line that ended stays ended (a late "accepted" after a
    /// cancellation is an out-of-order update).
    pub fn may_become(self, to: LineStatus) -> bool {
        self.is_live() && to != LineStatus::Pending
    }
}

impl PoState {
    /// States after which nothing the supplier says changes the PO.
    pub fn is_final(self) -> bool {
        matches!(self, PoState::WrittenBack | PoState::Rejected | PoState::Cancelled | PoState::Dead)
    }

    /// Has the supplier got it (so a cancellation must be asked of it)?
    pub fn is_at_supplier(self) -> bool {
        matches!(self, PoState::Submitted | PoState::Acknowledged | PoState::Backordered | PoState::PartiallyShipped)
    }
}

/// One PO line as derivation needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoLineView {
    pub line_id: String,
    pub quantity: Decimal,
    pub status: LineStatus,
    pub shipped: Decimal,
}

/// A PO's state from its lines. `submitted`: the supplier has answered a
/// submit; `all_written_back`: every shipment of it is in the ERP.
pub fn derive_po_state(current: PoState, submitted: bool, lines: &[PoLineView], all_written_back: bool) -> PoState {
    if current == PoState::Dead {
        return current;
    }
    let live: Vec<&PoLineView> = lines.iter().filter(|l| l.status.is_live()).collect();
    if live.is_empty() {
        return if lines.iter().any(|l| l.status == LineStatus::Rejected) {
            PoState::Rejected
        } else {
            PoState::Cancelled
        };
    }
    if !submitted {
        return PoState::Pending;
    }
    if live.iter().all(|l| l.shipped >= l.quantity) {
        return if all_written_back { PoState::WrittenBack } else { PoState::Shipped };
    }
    if live.iter().any(|l| l.shipped > Decimal::ZERO) {
        return PoState::PartiallyShipped;
    }
    if live.iter().any(|l| l.status == LineStatus::Backordered) {
        return PoState::Backordered;
    }
    if live.iter().all(|l| l.status == LineStatus::Accepted) {
        return PoState::Acknowledged;
    }
    PoState::Submitted
}

/// A sales order's state from its POs: `po_states` are the POs that still
/// hold lines of the order (rejected and cancelled ones whose lines moved on
/// are left out by the caller); `unplaced` is whether some line of the order
/// sits with no live PO (rejected or cancelled, waiting to be re-routed).
/// `None` when the POs say nothing (no PO at all).
pub fn derive_order_state(po_states: &[PoState], unplaced: bool) -> Option<OrderState> {
    if po_states.contains(&PoState::Dead) {
        return Some(OrderState::Exception);
    }
    if unplaced {
        return Some(OrderState::Rejected);
    }
    if po_states.is_empty() {
        return None;
    }
    let rank = |s: PoState| match s {
        PoState::Pending => 0,
        PoState::Submitted => 1,
        PoState::Backordered => 2,
        PoState::Acknowledged => 3,
        PoState::PartiallyShipped => 4,
        PoState::Shipped => 5,
        PoState::WrittenBack => 6,
        PoState::Rejected | PoState::Cancelled | PoState::Dead => 0,
    };
    let least = po_states.iter().copied().min_by_key(|s| rank(*s))?;
    let some_shipped =
        po_states.iter().any(|s| matches!(s, PoState::PartiallyShipped | PoState::Shipped | PoState::WrittenBack));
    Some(match least {
        PoState::WrittenBack => OrderState::WrittenBack,
        PoState::Shipped => OrderState::Shipped,
        _ if some_shipped => OrderState::PartiallyShipped,
        PoState::Pending => OrderState::Routed,
        PoState::Submitted => OrderState::Dispatched,
        PoState::Backordered => OrderState::Backordered,
        PoState::Acknowledged => OrderState::Acknowledged,
        PoState::PartiallyShipped => OrderState::PartiallyShipped,
        PoState::Rejected | PoState::Cancelled | PoState::Dead => OrderState::Rejected,
    })
}

/// The shortest chain of legal transitions from `from` to `to` (excluding
/// `from`), so a derived state change is recorded hop by hop in the order's
/// history and the state machine stays the single rule. `None` if `to`
/// cannot be reached.
pub fn transition_path(from: OrderState, to: OrderState) -> Option<Vec<OrderState>> {
    if from == to {
        return Some(vec![]);
    }
    let mut prev: std::collections::HashMap<OrderState, OrderState> = std::collections::HashMap::new();
    let mut queue = std::collections::VecDeque::from([from]);
    while let Some(s) = queue.pop_front() {
        for next in OrderState::ALL {
            if next == from || prev.contains_key(&next) || !s.can_go_to(next) {
                continue;
            }
            // Never pass through states that mean a person must act.
            if next != to && matches!(next, OrderState::OnHold | OrderState::Exception | OrderState::Cancelled) {
                continue;
            }
            prev.insert(next, s);
            if next == to {
                let mut path = vec![to];
                let mut at = to;
                while let Some(p) = prev.get(&at).copied().filter(|p| *p != from) {
                    path.push(p);
                    at = p;
                }
                path.reverse();
                return Some(path);
            }
            queue.push_back(next);
        }
    }
    None
}

/// A quantity as a whole number of units for an API that only takes whole
/// units (`daifa:supplier@0.1.0`); `None` for fractions and out-of-range
/// values, which must be refused rather than rounded.
pub fn whole_units(q: Decimal) -> Option<u32> {
    if q.fract() != Decimal::ZERO || q <= Decimal::ZERO {
        return None;
    }
    q.normalize().to_string().parse().ok()
}

/// What a supplier said about one line (by our line id, or its SKU).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineWord {
    pub line: String,
    pub status: LineStatus,
    pub reason: String,
}

/// One parcel as the supplier reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParcelIn {
    pub carrier: String,
    pub tracking_number: String,
    /// (our line id or a SKU naming the line, quantity).
    pub lines: Vec<(String, Decimal)>,
    /// Unix ms, if the supplier said.
    pub shipped_at: Option<i64>,
}

/// What an update says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateKind {
    Lines(Vec<LineWord>),
    Shipped(Vec<ParcelIn>),
    Cancelled(Option<String>),
}

/// One status update for one PO, from a poll or a callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoUpdate {
    pub po_number: String,
    pub supplier_ref: Option<String>,
    /// Unix ms at the supplier, if it said.
    pub at: Option<i64>,
    pub kind: UpdateKind,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(q: i64, status: LineStatus, shipped: i64) -> PoLineView {
        PoLineView { line_id: "1".into(), quantity: q.into(), status, shipped: shipped.into() }
    }

    #[test]
    fn po_state_follows_its_lines() {
        use LineStatus::*;
        let d = |lines: &[PoLineView]| derive_po_state(PoState::Submitted, true, lines, false);
        assert_eq!(d(&[line(2, Accepted, 0), line(1, Accepted, 0)]), PoState::Acknowledged);
        assert_eq!(d(&[line(2, Accepted, 0), line(1, Pending, 0)]), PoState::Submitted);
        assert_eq!(d(&[line(2, Accepted, 0), line(1, Backordered, 0)]), PoState::Backordered);
        assert_eq!(d(&[line(2, Accepted, 1), line(1, Backordered, 0)]), PoState::PartiallyShipped);
        assert_eq!(d(&[line(2, Accepted, 2), line(1, Rejected, 0)]), PoState::Shipped);
        assert_eq!(derive_po_state(PoState::Shipped, true, &[line(2, Accepted, 2)], true), PoState::WrittenBack);
        assert_eq!(d(&[line(2, Rejected, 0), line(1, Cancelled, 0)]), PoState::Rejected);
        assert_eq!(d(&[line(2, Cancelled, 0)]), PoState::Cancelled);
        assert_eq!(derive_po_state(PoState::Pending, false, &[line(2, Pending, 0)], false), PoState::Pending);
        assert_eq!(derive_po_state(PoState::Dead, true, &[line(2, Accepted, 2)], true), PoState::Dead);
    }

    #[test]
    fn order_state_is_the_least_advanced_po() {
        use PoState::*;
        assert_eq!(derive_order_state(&[Acknowledged, Pending], false), Some(OrderState::Routed));
        assert_eq!(derive_order_state(&[Acknowledged, Submitted], false), Some(OrderState::Dispatched));
        assert_eq!(derive_order_state(&[Shipped, Acknowledged], false), Some(OrderState::PartiallyShipped));
        assert_eq!(derive_order_state(&[Shipped, WrittenBack], false), Some(OrderState::Shipped));
        assert_eq!(derive_order_state(&[WrittenBack, WrittenBack], false), Some(OrderState::WrittenBack));
        assert_eq!(derive_order_state(&[Shipped], true), Some(OrderState::Rejected));
        assert_eq!(derive_order_state(&[Shipped, Dead], false), Some(OrderState::Exception));
        assert_eq!(derive_order_state(&[], false), None);
    }

    #[test]
    fn derived_changes_follow_the_state_machine() {
        use OrderState::*;
        assert_eq!(transition_path(Routed, Acknowledged), Some(vec![Dispatched, Acknowledged]));
        assert_eq!(transition_path(Routed, Routed), Some(vec![]));
        assert_eq!(transition_path(Shipped, WrittenBack), Some(vec![WrittenBack]));
        for (from, to) in [(Dispatched, Shipped), (Acknowledged, Rejected), (Backordered, PartiallyShipped)] {
            let p = transition_path(from, to).unwrap();
            let mut at = from;
            for s in p {
                assert!(at.can_go_to(s), "{at} → {s}");
                at = s;
            }
        }
        assert_eq!(transition_path(WrittenBack, Routed), None);
    }

    #[test]
    fn only_whole_positive_units_cross_a_whole_unit_api() {
        assert_eq!(whole_units("3".parse().unwrap()), Some(3));
        assert_eq!(whole_units("3.000".parse().unwrap()), Some(3));
        assert_eq!(whole_units("2.5".parse().unwrap()), None);
        assert_eq!(whole_units("0".parse().unwrap()), None);
        assert_eq!(whole_units("99999999999".parse().unwrap()), None);
    }
}
