//! Where a value sits in a TOML text, so errors found after parsing (a
//! negative cost, an unknown category) can name the line as well as the
//! field, like the parser's own errors do.

use toml::de::{DeTable, DeValue};

/// One step of a path into a TOML document.
#[derive(Debug, Clone, Copy)]
pub enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// The 1-based line of the value at `path`, or of the deepest part of the
/// path that exists (a missing field is reported at its table).
pub fn line_of(text: &str, path: &[Seg<'_>]) -> Option<usize> {
    let doc = DeTable::parse(text).ok()?;
    let mut span = doc.span();
    let mut cur: Option<&DeValue<'_>> = None;
    let mut table = Some(doc.get_ref());
    for seg in path {
        let next = match (seg, table, cur) {
            (Seg::Key(k), Some(t), _) => t.iter().find(|(key, _)| key.get_ref().as_ref() == *k).map(|(_, v)| v),
            (Seg::Index(i), _, Some(DeValue::Array(a))) => a.get(*i),
            _ => None,
        };
        let Some(v) = next else { break };
        span = v.span();
        cur = Some(v.get_ref());
        table = match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => None,
        };
    }
    let start = span.start.min(text.len());
    Some(text[..start].matches('\n').count() + 1)
}

/// `"line N, "` for `path`, or nothing if the text does not parse.
pub fn at_line(text: &str, path: &[Seg<'_>]) -> String {
    line_of(text, path).map(|l| format!("line {l}, ")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{Seg, line_of};

    #[test]
    fn finds_lines_of_nested_values() {
        let t = "version = 1\n\n[[rule_set]]\nname = \"a\"\n\n[[rule_set]]\nname = \"b\"\nsplit_penalty = \"-1\"\nwhen = { category = [\"x\"] }\n";
        assert_eq!(line_of(t, &[Seg::Key("version")]), Some(1));
        assert_eq!(line_of(t, &[Seg::Key("rule_set"), Seg::Index(1), Seg::Key("split_penalty")]), Some(8));
        assert_eq!(line_of(t, &[Seg::Key("rule_set"), Seg::Index(1), Seg::Key("when"), Seg::Key("category")]), Some(9));
        // Missing field: reported at its table.
        assert_eq!(line_of(t, &[Seg::Key("rule_set"), Seg::Index(0), Seg::Key("nope")]), Some(3));
    }
}
