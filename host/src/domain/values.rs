//! What an order's values may be, whatever the source: the bounds on
//! quantities, prices and tax rates, the units that allow fractions, and the
//! text both stores can keep. An order outside these is stored in
//! `exception` with a reason naming the field (see `OrderContent::problems`).

use std::borrow::Cow;

use rust_decimal::Decimal;

/// Largest quantity of one order line. Far above any real drop-ship line,
/// far below what makes landed costs meaningless (2^64 pieces).
pub const MAX_QUANTITY: i64 = 1_000_000;

/// Largest unit price (in the order's currency).
pub const MAX_UNIT_PRICE: i64 = 100_000_000;

/// Largest tax rate, in percent.
pub const MAX_TAX_RATE: i64 = 100;

/// Most decimal places a quantity, unit price or tax rate may have (after
/// trailing zeros are dropped: `2.5000000` is `2.5`).
pub const MAX_SCALE: u32 = 6;

/// Units of measure that may be ordered in fractions (weight, length,
/// area, volume), compared case-insensitively after trimming. Every other
/// unit, including none at all (`Pcs`, `box`, `套`, `""`), counts whole items.
pub const FRACTIONAL_UNITS: &[&str] = &[
    // weight
    "kg",
    "g",
    "mg",
    "t",
    "lb",
    "oz",
    "千克",
    "公斤",
    "克",
    "吨",
    "斤", //
    // length
    "km",
    "m",
    "dm",
    "cm",
    "mm",
    "米",
    "分米",
    "厘米",
    "毫米", //
    // area and volume
    "m2",
    "㎡",
    "平方米",
    "m3",
    "立方米",
    "l",
    "dl",
    "cl",
    "ml",
    "升",
    "毫升",
];

/// May a quantity in `unit` have a fractional part?
pub fn unit_allows_fractions(unit: &str) -> bool {
    let u = unit.trim();
    FRACTIONAL_UNITS.iter().any(|f| f.eq_ignore_ascii_case(u))
}

/// How a numeric field is bounded.
pub(crate) struct Bounds {
    /// Must be above zero (otherwise: at least zero).
    pub positive: bool,
    pub max: i64,
}

/// What is wrong with `v` as `field` (already named, e.g. `line 3
/// quantity`), each as a sentence starting with the field and the value.
pub(crate) fn number_problems(field: &str, v: Decimal, b: Bounds, out: &mut Vec<String>) {
    if b.positive && v <= Decimal::ZERO {
        out.push(format!("{field} {v} is not positive"));
    } else if v < Decimal::ZERO {
        out.push(format!("{field} {v} is negative"));
    }
    if v > Decimal::from(b.max) {
        out.push(format!("{field} {v} is above the maximum of {}", b.max));
    }
    if v.normalize().scale() > MAX_SCALE {
        out.push(format!("{field} {v} has more than {MAX_SCALE} decimal places"));
    }
}

/// Characters neither store can keep as sent: PostgreSQL refuses U+0000 in
/// text, and the other control characters (C0 but tab, line feed and
/// carriage return; DEL; C1) are never legitimate order data and break CSV
/// exports, labels and terminals. The same rule applies on SQLite, so both
/// stores agree.
pub fn is_unstorable(c: char) -> bool {
    (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || ('\u{7f}'..='\u{9f}').contains(&c)
}

/// What replaces an unstorable character in a kept order.
pub const REPLACEMENT: char = '\u{FFFD}';

/// The first unstorable character of `s`, if any.
pub fn first_unstorable(s: &str) -> Option<char> {
    s.chars().find(|c| is_unstorable(*c))
}

/// `s` with every unstorable character replaced by U+FFFD.
pub fn storable(s: &str) -> Cow<'_, str> {
    if first_unstorable(s).is_none() {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.chars().map(|c| if is_unstorable(c) { REPLACEMENT } else { c }).collect())
    }
}

/// `field: control character U+0000` — the start of every message about one.
pub(crate) fn unstorable_message(field: &str, c: char) -> String {
    format!("{field}: control character U+{:04X}", c as u32)
}

/// Refuses text no store can keep, naming the field (for values that cannot
/// be marked and kept: identities, an operator's reason).
pub fn check_storable(field: &str, s: &str) -> Result<(), String> {
    match first_unstorable(s) {
        Some(c) => Err(format!("{} cannot be stored; send it without", unstorable_message(field, c))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        for u in ["kg", "KG", " Kg ", "ml", "L", "m", "千克", "米"] {
            assert!(unit_allows_fractions(u), "{u}");
        }
        for u in ["", "Pcs", "PCS", "box", "套", "件", "each", "kgs"] {
            assert!(!unit_allows_fractions(u), "{u}");
        }
    }

    #[test]
    fn numbers() {
        let mut p = Vec::new();
        let q = |v: &str| v.parse::<Decimal>().unwrap();
        number_problems("q", q("1000000"), Bounds { positive: true, max: MAX_QUANTITY }, &mut p);
        number_problems("q", q("2.500000000"), Bounds { positive: true, max: MAX_QUANTITY }, &mut p);
        number_problems("p", q("0"), Bounds { positive: false, max: MAX_UNIT_PRICE }, &mut p);
        assert!(p.is_empty(), "{p:?}");
        number_problems("q", q("0"), Bounds { positive: true, max: MAX_QUANTITY }, &mut p);
        number_problems("q", q("1000000.5"), Bounds { positive: true, max: MAX_QUANTITY }, &mut p);
        number_problems("q", q("0.0000001"), Bounds { positive: true, max: MAX_QUANTITY }, &mut p);
        number_problems("p", q("-0.01"), Bounds { positive: false, max: MAX_UNIT_PRICE }, &mut p);
        assert_eq!(
            p,
            [
                "q 0 is not positive",
                "q 1000000.5 is above the maximum of 1000000",
                "q 0.0000001 has more than 6 decimal places",
                "p -0.01 is negative"
            ]
        );
    }

    #[test]
    fn text() {
        assert_eq!(storable("a\tb\nc\r"), "a\tb\nc\r");
        assert!(matches!(storable("plain"), Cow::Borrowed(_)));
        assert_eq!(storable("a\u{0}b\u{1b}c"), "a\u{FFFD}b\u{FFFD}c");
        assert_eq!(first_unstorable("x\u{7}"), Some('\u{7}'));
        assert_eq!(
            check_storable("external_id", "A\u{0}").unwrap_err(),
            "external_id: control character U+0000 cannot be stored; send it without"
        );
    }
}
