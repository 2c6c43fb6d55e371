//! ERP wall-clock times. Kingdee returns local times without a zone
//! (`2026-11-25T10:00:00.52`); we keep them as seconds on the ERP's own
//! clock ("naive seconds") and format them the way filters expect.

/// Naive seconds since 1970-01-01 00:00:00 on the ERP's clock.
pub type NaiveSecs = i64;

/// Parses `YYYY-MM-DD[ T]HH:MM:SS[.fff]` (fraction dropped).
pub fn parse(s: &str) -> Option<NaiveSecs> {
    let s = s.trim();
    let (date, time) = s.split_once(['T', ' ']).unwrap_or((s, "00:00:00"));
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, dd) = (d.next()??, d.next()??, d.next()??);
    let time = time.split('.').next()?;
    let mut t = time.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next().flatten().unwrap_or(0), t.next().flatten().unwrap_or(0));
    if !(1..=12).contains(&m) || !(1..=31).contains(&dd) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    Some(days_from_civil(y, m, dd) * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// `YYYY-MM-DD HH:MM:SS`, the form Kingdee filter strings take.
pub fn format(secs: NaiveSecs) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Now on a clock `offset_secs` ahead of UTC (China: 8 h).
pub fn now(offset_secs: i64) -> NaiveSecs {
    let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    unix + offset_secs
}

// Howard Hinnant's civil-date algorithms.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_kingdee_forms() {
        let t = parse("2024-12-12T17:55:51.52").unwrap();
        assert_eq!(format(t), "2024-12-12 17:55:51");
        assert_eq!(parse("2024-12-12 17:55:51"), Some(t));
        assert_eq!(parse("2024-03-01T00:00:00").unwrap() - parse("2024-02-28T00:00:00").unwrap(), 2 * 86_400);
        assert_eq!(format(0), "1970-01-01 00:00:00");
        assert_eq!(parse("2024-13-01"), None);
        assert_eq!(parse("garbage"), None);
    }
}
