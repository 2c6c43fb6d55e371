//! The FilterString of ExecuteBillQuery, in both forms the server takes: the
//! SQL-like text (comparisons, IN, LIKE, BETWEEN, IS [NOT] NULL, `N'…'`
//! literals, AND / OR / NOT, parentheses) and the JSON array of
//! `{Left, FieldName, Compare, Value, Right, Logic}` conditions. Text compares
//! the way SQL Server's default Chinese_PRC_CI_AS collation does: without
//! regard to case. A form the simulator does not know is refused, never
//! ignored (an ignored filter returns every row).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    All,
    Cmp(String, &'static str, String),
    In(String, Vec<String>, bool),
    Like(String, String, bool),
    /// `field [NOT] BETWEEN a AND b`.
    Between(String, String, String, bool),
    /// `field IS [NOT] NULL`.
    IsNull(String, bool),
    /// Conditions joined by AND (flat, so a long chain is not deep).
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
}

fn tokens(s: &str) -> Result<Vec<Tok>, String> {
    let c: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        match ch {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            'N' | 'n' if c.get(i + 1) == Some(&'\'') => i += 1,
            '\'' => {
                let mut v = String::new();
                i += 1;
                loop {
                    match c.get(i) {
                        None => return Err("unterminated string".into()),
                        Some('\'') if c.get(i + 1) == Some(&'\'') => {
                            v.push('\'');
                            i += 2
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(x) => {
                            v.push(*x);
                            i += 1
                        }
                    }
                }
                out.push(Tok::Str(v));
            }
            '=' => {
                out.push(Tok::Op("="));
                i += 1
            }
            '<' | '>' | '!' => {
                let two: String = c[i..(i + 2).min(c.len())].iter().collect();
                let op = match two.as_str() {
                    "<>" | "!=" => "<>",
                    ">=" => ">=",
                    "<=" => "<=",
                    _ if ch == '<' => "<",
                    _ if ch == '>' => ">",
                    _ => return Err(format!("unexpected `{ch}`")),
                };
                i += op.len();
                out.push(Tok::Op(op));
            }
            _ if ch.is_ascii_digit() || (ch == '-' && c.get(i + 1).is_some_and(|d| d.is_ascii_digit())) => {
                let start = i;
                i += 1;
                while i < c.len() && (c[i].is_ascii_digit() || c[i] == '.') {
                    i += 1;
                }
                let n: String = c[start..i].iter().collect();
                if numeric(&n).is_none() {
                    return Err(format!("`{n}` is not a number"));
                }
                out.push(Tok::Num(n));
            }
            _ if ch.is_alphanumeric() || ch == '_' => {
                let start = i;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_' || c[i] == '.') {
                    i += 1;
                }
                out.push(Tok::Ident(c[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected `{other}`")),
        }
    }
    Ok(out)
}

/// Most tokens in one filter, and deepest nesting of parentheses / NOT:
/// a filter is a request's text, and a single request must not be able to
/// exhaust the server's stack or CPU.
const MAX_TOKENS: usize = 20_000;
const MAX_DEPTH: usize = 64;
/// Most values in one IN list.
const MAX_IN: usize = 1_000;

struct P {
    t: Vec<Tok>,
    i: usize,
    depth: usize,
}

impl P {
    fn peek_kw(&self, kw: &str) -> bool {
        matches!(self.t.get(self.i), Some(Tok::Ident(w)) if w.eq_ignore_ascii_case(kw))
    }
    fn or(&mut self) -> Result<Filter, String> {
        let mut terms = vec![self.and()?];
        while self.peek_kw("or") {
            self.i += 1;
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 { terms.remove(0) } else { Filter::Or(terms) })
    }
    fn and(&mut self) -> Result<Filter, String> {
        let mut terms = vec![self.unary()?];
        while self.peek_kw("and") {
            self.i += 1;
            terms.push(self.unary()?);
        }
        Ok(if terms.len() == 1 { terms.remove(0) } else { Filter::And(terms) })
    }
    fn nested(&mut self, f: impl FnOnce(&mut Self) -> Result<Filter, String>) -> Result<Filter, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        let r = f(self);
        self.depth -= 1;
        r
    }
    fn unary(&mut self) -> Result<Filter, String> {
        if self.peek_kw("not") {
            self.i += 1;
            return self.nested(|p| Ok(Filter::Not(Box::new(p.unary()?))));
        }
        if self.t.get(self.i) == Some(&Tok::LParen) {
            self.i += 1;
            let f = self.nested(|p| p.or())?;
            if self.t.get(self.i) != Some(&Tok::RParen) {
                return Err("missing `)`".into());
            }
            self.i += 1;
            return Ok(f);
        }
        let Some(Tok::Ident(field)) = self.t.get(self.i).cloned() else {
            return Err(format!("expected a field at token {}", self.i + 1));
        };
        self.i += 1;
        let negated = self.peek_kw("not");
        if negated {
            self.i += 1;
        }
        if self.peek_kw("in") {
            self.i += 1;
            if self.t.get(self.i) != Some(&Tok::LParen) {
                return Err("IN needs `(`".into());
            }
            self.i += 1;
            let mut vals = Vec::new();
            loop {
                match self.t.get(self.i).cloned() {
                    Some(Tok::Str(v) | Tok::Num(v)) => vals.push(v),
                    _ => return Err("IN list needs values".into()),
                }
                self.i += 1;
                match self.t.get(self.i) {
                    Some(Tok::Comma) => self.i += 1,
                    Some(Tok::RParen) => {
                        self.i += 1;
                        break;
                    }
                    _ => return Err("IN list needs `,` or `)`".into()),
                }
            }
            if vals.len() > MAX_IN {
                return Err(format!("IN on {field} lists {} values; at most {MAX_IN}", vals.len()));
            }
            return Ok(Filter::In(field, vals, negated));
        }
        if self.peek_kw("between") {
            self.i += 1;
            let lo = self.value(&field)?;
            if !self.peek_kw("and") {
                return Err(format!("BETWEEN on {field} needs AND"));
            }
            self.i += 1;
            let hi = self.value(&field)?;
            return Ok(Filter::Between(field, lo, hi, negated));
        }
        if !negated && self.peek_kw("is") {
            self.i += 1;
            let not = self.peek_kw("not");
            if not {
                self.i += 1;
            }
            if !self.peek_kw("null") {
                return Err(format!("IS on {field} needs NULL"));
            }
            self.i += 1;
            return Ok(Filter::IsNull(field, not));
        }
        if self.peek_kw("like") {
            self.i += 1;
            let Some(Tok::Str(p)) = self.t.get(self.i).cloned() else { return Err("LIKE needs a string".into()) };
            self.i += 1;
            return Ok(Filter::Like(field, p, negated));
        }
        let Some(Tok::Op(op)) = self.t.get(self.i).cloned() else {
            return Err(format!("expected an operator after {field}"));
        };
        self.i += 1;
        let v = self.value(&field)?;
        Ok(Filter::Cmp(field, op, v))
    }

    fn value(&mut self, field: &str) -> Result<String, String> {
        match self.t.get(self.i).cloned() {
            Some(Tok::Str(v) | Tok::Num(v)) => {
                self.i += 1;
                Ok(v)
            }
            _ => Err(format!("expected a value after {field}")),
        }
    }
}

impl Filter {
    /// Parses a FilterString (empty = everything).
    pub fn parse(s: &str) -> Result<Filter, String> {
        if s.trim().is_empty() {
            return Ok(Filter::All);
        }
        let t = tokens(s)?;
        if t.len() > MAX_TOKENS {
            return Err(format!("{} tokens; at most {MAX_TOKENS}", t.len()));
        }
        let mut p = P { t, i: 0, depth: 0 };
        let f = p.or()?;
        if p.i != p.t.len() {
            return Err(format!("unexpected text after token {}", p.i));
        }
        Ok(f)
    }

    /// The JSON-array form: `[{"Left":"(","FieldName":"F","Compare":"67",
    /// "Value":"x","Right":")","Logic":"0"}, ...]`. `Compare` takes the
    /// numeric codes for "equals" (67 for text, 105 for enumerations) or an
    /// operator (`=`, `<>`, `>`, `>=`, `<`, `<=`, `like`); `Logic` 0 joins the
    /// next condition with AND, 1 with OR. Other codes are refused.
    pub fn from_json(items: &[Value]) -> Result<Filter, String> {
        let mut text = String::new();
        for (i, it) in items.iter().enumerate() {
            let get = |k: &str| {
                it.as_object()
                    .and_then(|m| m.iter().find(|(x, _)| x.eq_ignore_ascii_case(k)))
                    .map(|(_, v)| match v {
                        Value::String(s) => s.clone(),
                        Value::Null => String::new(),
                        other => other.to_string(),
                    })
                    .unwrap_or_default()
            };
            let field = get("FieldName");
            if field.is_empty() || !field.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '.') {
                return Err(format!("FilterString[{i}]: FieldName `{field}` is not a field key"));
            }
            let op = match get("Compare").trim().to_ascii_lowercase().as_str() {
                "67" | "105" | "=" => "=",
                "<>" | "!=" => "<>",
                ">" => ">",
                ">=" => ">=",
                "<" => "<",
                "<=" => "<=",
                "like" => "LIKE",
                other => return Err(format!("FilterString[{i}]: Compare `{other}` is not supported")),
            };
            let left = get("Left");
            let right = get("Right");
            if !left.chars().all(|c| c == '(' || c == ' ') || !right.chars().all(|c| c == ')' || c == ' ') {
                return Err(format!("FilterString[{i}]: Left/Right may hold only parentheses"));
            }
            let value = get("Value").replace('\'', "''");
            text.push_str(&format!("{left}{field} {op} '{value}'{right}"));
            if i + 1 < items.len() {
                text.push_str(match get("Logic").trim() {
                    "" | "0" => " AND ",
                    "1" => " OR ",
                    other => return Err(format!("FilterString[{i}]: Logic `{other}` is neither 0 (AND) nor 1 (OR)")),
                });
            }
        }
        Filter::parse(&text)
    }

    /// The FilterString as sent: text, a JSON array, or absent.
    pub fn from_value(v: Option<&Value>) -> Result<Filter, String> {
        match v {
            None | Some(Value::Null) => Ok(Filter::All),
            Some(Value::String(s)) => {
                let t = s.trim_start();
                if t.starts_with('[') {
                    // Some clients send the array as a JSON string.
                    let items: Vec<Value> = serde_json::from_str(t).map_err(|e| format!("array form: {e}"))?;
                    Filter::from_json(&items)
                } else {
                    Filter::parse(s)
                }
            }
            Some(Value::Array(items)) => Filter::from_json(items),
            Some(other) => Err(format!("FilterString must be text or an array, not {other}")),
        }
    }

    /// The `f = v` and `f IN (...)` terms every matching row satisfies
    /// (top-level conjuncts): `f` equals one of the values. An index can
    /// answer these.
    pub fn required_lookups(&self) -> Vec<(&str, Vec<&str>)> {
        match self {
            Filter::Cmp(f, "=", v) => vec![(f.as_str(), vec![v.as_str()])],
            Filter::In(f, vals, false) => vec![(f.as_str(), vals.iter().map(String::as_str).collect())],
            Filter::And(terms) => terms.iter().flat_map(Filter::required_lookups).collect(),
            _ => vec![],
        }
    }

    /// Lower bounds every matching row must meet (`field > v`, `field >=
    /// v` among the ANDed terms), as a database would seek an index with.
    pub fn required_lower_bounds(&self) -> Vec<(&str, bool, &str)> {
        match self {
            Filter::Cmp(f, ">", v) => vec![(f.as_str(), false, v.as_str())],
            Filter::Cmp(f, ">=", v) => vec![(f.as_str(), true, v.as_str())],
            Filter::And(terms) => terms.iter().flat_map(Filter::required_lower_bounds).collect(),
            _ => vec![],
        }
    }

    /// Every field the filter reads.
    pub fn fields(&self) -> Vec<&str> {
        match self {
            Filter::All => vec![],
            Filter::Cmp(f, ..)
            | Filter::In(f, ..)
            | Filter::Like(f, ..)
            | Filter::Between(f, ..)
            | Filter::IsNull(f, ..) => vec![f.as_str()],
            Filter::And(terms) | Filter::Or(terms) => terms.iter().flat_map(Filter::fields).collect(),
            Filter::Not(a) => a.fields(),
        }
    }

    /// Evaluates against a row as SQL does: a comparison with NULL is
    /// unknown, NOT of unknown is unknown, and only rows where the whole
    /// filter is true match. `get` resolves a field (unknown fields were
    /// rejected before evaluation).
    pub fn eval(&self, get: &dyn Fn(&str) -> Value) -> bool {
        self.eval3(get) == Some(true)
    }

    fn eval3(&self, get: &dyn Fn(&str) -> Value) -> Option<bool> {
        use std::cmp::Ordering::*;
        Some(match self {
            Filter::All => true,
            Filter::Cmp(f, op, v) => {
                let ord = compare(&get(f), v, *op == "=" || *op == "<>")?;
                match *op {
                    "=" => ord == Equal,
                    "<>" => ord != Equal,
                    ">=" => ord != Less,
                    "<=" => ord != Greater,
                    ">" => ord == Greater,
                    _ => ord == Less,
                }
            }
            Filter::In(f, vals, neg) => {
                let x = get(f);
                let mut found = false;
                for v in vals {
                    found |= compare(&x, v, true)? == Equal;
                }
                found != *neg
            }
            Filter::Like(f, p, neg) => {
                let x = get(f);
                if x.is_null() {
                    return None;
                }
                like(&text(&x).to_lowercase(), &p.to_lowercase()) != *neg
            }
            Filter::Between(f, lo, hi, neg) => {
                let x = get(f);
                (compare(&x, lo, false)? != Less && compare(&x, hi, false)? != Greater) != *neg
            }
            Filter::IsNull(f, not) => {
                let x = get(f);
                // Base-data references read as empty objects when unset.
                let null = x.is_null() || x.as_object().is_some_and(|m| m.is_empty());
                null != *not
            }
            // Kleene logic: the deciding value (false for AND, true for OR)
            // wins, then unknown.
            Filter::And(terms) => return kleene(terms, false, get),
            Filter::Or(terms) => return kleene(terms, true, get),
            Filter::Not(a) => !a.eval3(get)?,
        })
    }
}

/// AND (`decides` = false) or OR (`decides` = true) over SQL truth values.
fn kleene(terms: &[Filter], decides: bool, get: &dyn Fn(&str) -> Value) -> Option<bool> {
    let mut unknown = false;
    for t in terms {
        match t.eval3(get) {
            Some(v) if v == decides => return Some(decides),
            None => unknown = true,
            Some(_) => {}
        }
    }
    if unknown { None } else { Some(!decides) }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A literal as SQL Server reads a number: optional sign, digits, at most
/// one point (no `NaN`, `inf` or exponents).
fn numeric(s: &str) -> Option<f64> {
    let t = s.trim();
    let body = t.strip_prefix(['-', '+']).unwrap_or(t);
    let digits = body.chars().filter(char::is_ascii_digit).count();
    let dots = body.chars().filter(|c| *c == '.').count();
    (digits > 0 && dots <= 1 && digits + dots == body.len()).then(|| t.parse().ok()).flatten()
}

/// Compares a column value with a literal; `None` = unknown (NULL, or a
/// literal that does not convert to a numeric column's type). Numeric
/// columns compare as numbers; text that reads as a time compares as a
/// time (`T` or space alike); other text as Chinese_PRC_CI_AS does:
/// without regard to case, and (for = and <>) to trailing spaces.
fn compare(a: &Value, b: &str, equality: bool) -> Option<std::cmp::Ordering> {
    match a {
        Value::Null => None,
        Value::Number(n) => {
            let x = n.as_f64()?;
            let y = numeric(b)?;
            Some(x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal))
        }
        other => {
            let at = text(other);
            if at.len() >= 10
                && b.len() >= 10
                && let (Some(x), Some(y)) = (crate::erp::time::parse(&at), crate::erp::time::parse(b))
            {
                // Sub-second parts still order values within the same second.
                return Some(x.cmp(&y).then_with(|| frac(&at).cmp(&frac(b))));
            }
            let (l, r) = (at.to_lowercase(), b.to_lowercase());
            Some(if equality { l.trim_end_matches(' ').cmp(r.trim_end_matches(' ')) } else { l.cmp(&r) })
        }
    }
}

/// Milliseconds of a `…ss.fff` stamp (digits only; anything else is 0).
fn frac(s: &str) -> u32 {
    s.split_once('.').map_or(0, |(_, f)| {
        let digits: String = f.chars().take_while(char::is_ascii_digit).take(3).collect();
        format!("{digits:0<3}").parse().unwrap_or(0)
    })
}

/// One element of a LIKE pattern.
enum Pat {
    Any,
    One,
    Lit(char),
    /// `[abc]`, `[a-z]`, `[^...]`.
    Class(Vec<(char, char)>, bool),
}

fn pattern(p: &str) -> Vec<Pat> {
    let c: Vec<char> = p.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '%' => out.push(Pat::Any),
            '_' => out.push(Pat::One),
            '[' if c[i + 1..].contains(&']') => {
                let end = i + 1 + c[i + 1..].iter().position(|x| *x == ']').unwrap_or(0);
                let mut body = &c[i + 1..end];
                let negated = body.first() == Some(&'^');
                if negated {
                    body = &body[1..];
                }
                let mut ranges = Vec::new();
                let mut k = 0;
                while k < body.len() {
                    if k + 2 < body.len() && body[k + 1] == '-' {
                        ranges.push((body[k], body[k + 2]));
                        k += 3;
                    } else {
                        ranges.push((body[k], body[k]));
                        k += 1;
                    }
                }
                out.push(Pat::Class(ranges, negated));
                i = end;
            }
            ch => out.push(Pat::Lit(ch)),
        }
        i += 1;
    }
    out
}

/// SQL Server's LIKE: `%` any run, `_` one character, `[a-z]` / `[^…]`
/// classes (so `[%]` is a literal %); O(len(s) × len(pattern)), whatever
/// the pattern (a backtracking matcher is exponential in the `%`s).
fn like(s: &str, p: &str) -> bool {
    let s: Vec<char> = s.chars().collect();
    // reach[j]: the first j characters of `s` match the pattern so far.
    let mut reach = vec![false; s.len() + 1];
    reach[0] = true;
    for el in pattern(p) {
        let mut next = vec![false; s.len() + 1];
        match el {
            Pat::Any => {
                let mut any = false;
                for j in 0..=s.len() {
                    any |= reach[j];
                    next[j] = any;
                }
            }
            el => {
                for j in 0..s.len() {
                    let ok = match &el {
                        Pat::One => true,
                        Pat::Lit(c) => s[j] == *c,
                        Pat::Class(ranges, neg) => ranges.iter().any(|(a, b)| (*a..=*b).contains(&s[j])) != *neg,
                        Pat::Any => false,
                    };
                    next[j + 1] = reach[j] && ok;
                }
            }
        }
        reach = next;
    }
    reach[s.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_evaluates_the_usual_filters() {
        let f = Filter::parse(
            "FDocumentStatus = 'C' AND F_DAIFA_DropShip = '1' AND FModifyDate >= '2026-11-25 10:00:00' AND (FID > 5 OR FBillNo LIKE 'XS%') AND FID NOT IN (7, 8)",
        )
        .unwrap();
        let row = |fid: i64, modified: &str| {
            let m = modified.to_string();
            move |k: &str| match k {
                "FDocumentStatus" => json!("C"),
                "F_DAIFA_DropShip" => json!("1"),
                "FModifyDate" => json!(m.clone()),
                "FID" => json!(fid),
                "FBillNo" => json!("XSDD1"),
                _ => Value::Null,
            }
        };
        assert!(f.eval(&row(6, "2026-11-25T10:00:00.52")));
        assert!(!f.eval(&row(7, "2026-11-25T10:00:00")), "NOT IN");
        assert!(!f.eval(&row(6, "2026-11-25T09:59:59.99")), "dates compare as dates");
        assert!(Filter::parse("FID >").is_err());
        assert_eq!(Filter::parse("").unwrap(), Filter::All);
    }

    #[test]
    fn between_is_null_national_strings_and_case() {
        let get = |k: &str| match k {
            "FBillNo" => json!("XSDD0001"),
            "FDate" => json!("2026-11-25T10:00:00"),
            "FNote" => Value::Null,
            _ => json!("C"),
        };
        assert!(Filter::parse("FDate BETWEEN '2026-11-25' AND '2026-11-26'").unwrap().eval(&get));
        assert!(!Filter::parse("FDate NOT BETWEEN '2026-11-25' AND '2026-11-26'").unwrap().eval(&get));
        assert!(Filter::parse("FNote IS NULL AND FBillNo IS NOT NULL").unwrap().eval(&get));
        assert!(Filter::parse("FBillNo = N'xsdd0001'").unwrap().eval(&get), "N'' and case-insensitive =");
        assert!(Filter::parse("FBillNo LIKE 'xs%'").unwrap().eval(&get), "case-insensitive LIKE");
        assert!(!Filter::parse("FNote = ''").unwrap().eval(&get), "NULL equals nothing");
        assert!(Filter::parse("FBillNo BETWEEN 'A'").is_err());
    }

    #[test]
    fn pathological_filters_cost_little_and_are_bounded() {
        let get = |_: &str| json!("a".repeat(200));
        let t = std::time::Instant::now();
        let f = Filter::parse(&format!("FNote LIKE '{}b'", "%".repeat(60))).unwrap();
        assert!(!f.eval(&get));
        assert!(t.elapsed() < std::time::Duration::from_secs(1), "LIKE is not exponential");
        assert!(
            Filter::parse(&format!("{}FID = 1{}", "(".repeat(100), ")".repeat(100))).unwrap_err().contains("nested")
        );
        assert!(Filter::parse(&"NOT ".repeat(100)).unwrap_err().contains("nested"));
        let chain = vec!["FID = 1"; 2_000].join(" AND ");
        assert!(Filter::parse(&chain).unwrap().eval(&|_| json!(1)), "a long AND chain is flat");
        let huge = vec!["FID = 1"; 6_000].join(" OR ");
        assert!(Filter::parse(&huge).unwrap_err().contains("tokens"));
        assert!(
            like("XSDD0001", "xs%".to_uppercase().as_str()) && like("ab", "a_") && !like("ab", "a") && like("", "%")
        );
    }

    #[test]
    fn the_array_form_is_applied_not_ignored() {
        let items = json!([
            {"Left": "(", "FieldName": "FDocumentStatus", "Compare": "67", "Value": "C", "Right": "", "Logic": "1"},
            {"Left": "", "FieldName": "FBillNo", "Compare": "=", "Value": "X'1", "Right": ")", "Logic": 0},
        ]);
        let f = Filter::from_value(Some(&items)).unwrap();
        assert_eq!(f.fields(), vec!["FDocumentStatus", "FBillNo"]);
        assert!(f.eval(&|_| json!("C")));
        assert!(!f.eval(&|_| json!("A")));
        let as_text = Value::String(items.to_string());
        assert_eq!(Filter::from_value(Some(&as_text)).unwrap(), f);
        let bad = json!([{"FieldName": "FID", "Compare": "999", "Value": "1"}]);
        assert!(Filter::from_value(Some(&bad)).unwrap_err().contains("Compare `999`"));
        assert!(Filter::from_value(Some(&json!({"a": 1}))).is_err());
    }
}
