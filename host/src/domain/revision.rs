//! Which of two revisions of one order is newer, from the source's own
//! modification stamps. A stale retry must never overwrite a newer
//! revision, so the store asks this before applying one.
//!
//! Stamps are compared only when both are of one kind: ERP local times
//! (`2026-11-25 10:00:00.52`, `T` or space, fraction kept), RFC 3339 times
//! with an offset (normalised to UTC), or plain integers (epoch or a
//! version counter). Anything else (`content:…` stamps the REST intake makes
//! when a client sends none) is unordered: the content decides.

use std::cmp::Ordering;

/// A parsed stamp.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Stamp {
    /// ERP wall clock: (naive seconds, fraction digits without trailing zeros).
    Naive(i64, String),
    /// A zoned time, as UTC: (seconds, fraction digits).
    Utc(i64, String),
    Int(i128),
}

/// How `incoming` relates to `stored`: `Some(Less)` means it is older.
/// `None` when the two cannot be ordered.
pub fn revision_cmp(stored: &str, incoming: &str) -> Option<Ordering> {
    match (parse(stored)?, parse(incoming)?) {
        (a @ Stamp::Naive(..), b @ Stamp::Naive(..))
        | (a @ Stamp::Utc(..), b @ Stamp::Utc(..))
        | (a @ Stamp::Int(_), b @ Stamp::Int(_)) => Some(b.cmp(&a)),
        _ => None,
    }
}

/// Whether `s` is a stamp [`revision_cmp`] can order (used to tell a
/// client its `modified` will not protect it against stale retries).
pub fn is_orderable(s: &str) -> bool {
    parse(s).is_some()
}

fn parse(s: &str) -> Option<Stamp> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok().map(Stamp::Int);
    }
    let (date, rest) = s.split_at_checked(10)?;
    let mut d = date.split('-');
    let (y, m, dd) = (num(d.next()?, 4)?, num(d.next()?, 2)?, num(d.next()?, 2)?);
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&dd) {
        return None;
    }
    let mut days = days_from_civil(y, m, dd) * 86_400;
    if rest.is_empty() {
        return Some(Stamp::Naive(days, String::new()));
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    // Split off a zone: Z, +hh:mm or -hh:mm after the time.
    let (time, zone) = match rest.find(['Z', 'z', '+', '-']) {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut t = hms.split(':');
    let (hh, mm) = (num(t.next()?, 2)?, num(t.next()?, 2)?);
    let ss = match t.next() {
        Some(x) => num(x, 2)?,
        None => 0,
    };
    if t.next().is_some() || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    days += hh * 3600 + mm * 60 + ss;
    let frac = frac.trim_end_matches('0').to_string();
    match zone {
        None => Some(Stamp::Naive(days, frac)),
        Some("Z" | "z") => Some(Stamp::Utc(days, frac)),
        Some(z) => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let (zh, zm) = z[1..].split_once(':').unwrap_or((&z[1..], "00"));
            let off = num(zh, 2)? * 3600 + num(zm, 2)? * 60;
            Some(Stamp::Utc(days - sign * off, frac))
        }
    }
}

fn num(s: &str, width: usize) -> Option<i64> {
    if s.len() != width || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

// Howard Hinnant's civil-date algorithm (as in `erp::time`, which domain
// may not call).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn orders_erp_stamps_with_fractions() {
        assert_eq!(revision_cmp("2026-11-25T10:00:00.52", "2026-11-25 10:00:00.6"), Some(Greater));
        assert_eq!(revision_cmp("2026-11-25 10:00:00.50", "2026-11-25T10:00:00.5"), Some(Equal));
        assert_eq!(revision_cmp("2026-11-25 10:00:01", "2026-11-25 10:00:00.999"), Some(Less));
        assert_eq!(revision_cmp("2026-11-25 10:00:00", "2026-11-24 23:59:59"), Some(Less));
    }

    #[test]
    fn orders_zoned_times_in_utc() {
        assert_eq!(revision_cmp("2026-11-25T10:00:00+08:00", "2026-11-25T02:00:01Z"), Some(Greater));
        assert_eq!(revision_cmp("2026-11-25T10:00:00+08:00", "2026-11-25T02:00:00Z"), Some(Equal));
    }

    #[test]
    fn integers_and_unordered() {
        assert_eq!(revision_cmp("9", "10"), Some(Greater));
        assert_eq!(revision_cmp("content:ab", "content:cd"), None);
        assert_eq!(revision_cmp("2026-11-25 10:00:00", "2026-11-25T10:00:00Z"), None);
        assert_eq!(revision_cmp("7", "2026-11-25"), None);
        assert!(!is_orderable("yesterday"));
    }
}
