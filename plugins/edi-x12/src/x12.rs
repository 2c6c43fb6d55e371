//! X12 envelopes: reading an interchange (delimiters from its ISA, every
//! control number and count checked) and writing one. Hand-written: the
//! Rust X12 crates either lack 004010's 850/855/856 or pull a parser stack
//! into a size-capped component, and the envelope rules are small.
//!
//! Reading never panics on any input (fuzzed in `tests.rs`): every problem
//! is an [`EnvelopeError`] (the whole interchange is refused) or a set or
//! group marked with the AK5/AK9 code a 997 reports.

/// The four delimiters an interchange declares in its ISA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delims {
    pub element: char,
    pub component: char,
    pub segment: char,
}

impl Default for Delims {
    fn default() -> Self {
        Delims { element: '*', component: '>', segment: '~' }
    }
}

/// One segment: its id and elements (`el(1)` is the first after the id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub id: String,
    pub elements: Vec<String>,
}

impl Segment {
    /// Element `n` (1-based, as X12 numbers them), or "".
    pub fn el(&self, n: usize) -> &str {
        n.checked_sub(1).and_then(|i| self.elements.get(i)).map(|s| s.trim()).unwrap_or("")
    }
}

/// Why a set or group is refused: the AK5/AK9 code and the reason.
pub type Rejection = (&'static str, String);

/// A transaction set (ST … SE) and what its envelope check found.
#[derive(Debug, Clone)]
pub struct TxSet {
    /// ST01, e.g. `850`.
    pub id: String,
    /// ST02.
    pub control: String,
    /// The segments between ST and SE.
    pub body: Vec<Segment>,
    /// `Some((AK5 code, why))` when the set is not to be applied.
    pub error: Option<Rejection>,
}

/// A functional group (GS … GE).
#[derive(Debug, Clone)]
pub struct Group {
    /// GS01, e.g. `PO`.
    pub code: String,
    /// GS06.
    pub control: String,
    pub sets: Vec<TxSet>,
    /// `Some((AK9 code, why))` when the group's own trailer is wrong.
    pub error: Option<Rejection>,
}

/// A whole interchange.
#[derive(Debug, Clone)]
pub struct Interchange {
    /// ISA06 and ISA08, trimmed.
    pub sender: String,
    pub receiver: String,
    /// ISA13.
    pub control: String,
    /// ISA15: `P` production, `T` test.
    pub usage: String,
    pub groups: Vec<Group>,
    /// Set when the IEA trailer does not match: every group is then
    /// answered as rejected and nothing is applied.
    pub error: Option<String>,
}

/// Why an interchange cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeError(pub String);

impl std::fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(msg: impl Into<String>) -> EnvelopeError {
    EnvelopeError(msg.into())
}

/// Reads the delimiters from the ISA: the 4th character is the element
/// separator, ISA16 the component separator, the next character the
/// segment terminator.
fn delimiters(text: &str) -> Result<(Delims, usize), EnvelopeError> {
    if !text.starts_with("ISA") {
        return Err(bad("not an X12 interchange: it does not start with ISA"));
    }
    let element = text[3..].chars().next().ok_or_else(|| bad("the ISA segment is cut short"))?;
    if element.is_alphanumeric() || element.is_whitespace() {
        return Err(bad(format!("`{element}` cannot be the element separator")));
    }
    // ISA16 follows the 16th element separator.
    let mut seen = 0;
    for (i, c) in text.char_indices() {
        if c == element {
            seen += 1;
            if seen == 16 {
                let mut rest = text[i + c.len_utf8()..].chars();
                let component = rest.next().ok_or_else(|| bad("the ISA segment is cut short (no ISA16)"))?;
                let segment = rest.next().ok_or_else(|| bad("the ISA segment is cut short (no segment terminator)"))?;
                if segment == element || segment == component || segment.is_alphanumeric() {
                    return Err(bad(format!("`{segment}` cannot be the segment terminator")));
                }
                return Ok((Delims { element, component, segment }, i));
            }
        }
    }
    Err(bad("the ISA segment has fewer than 16 elements"))
}

/// Splits `text` into segments (surrounding line breaks ignored).
fn segments(text: &str, d: Delims) -> Vec<Segment> {
    text.split(d.segment)
        .map(|s| s.trim_matches(|c: char| c == '\r' || c == '\n' || c == ' '))
        .filter(|s| !s.is_empty())
        .map(|s| {
            let mut parts = s.split(d.element).map(str::to_string);
            let id = parts.next().unwrap_or_default();
            Segment { id, elements: parts.collect() }
        })
        .collect()
}

/// Reads and checks an interchange.
pub fn parse(text: &str) -> Result<Interchange, EnvelopeError> {
    let text = text.trim_start_matches('\u{feff}').trim_start();
    let (delims, _) = delimiters(text)?;
    let segs = segments(text, delims);
    let mut it = segs.into_iter().peekable();
    let isa = it.next().ok_or_else(|| bad("empty interchange"))?;
    if isa.elements.len() != 16 {
        return Err(bad(format!("ISA has {} elements; it must have 16", isa.elements.len())));
    }
    let control = isa.el(13).to_string();
    if control.len() != 9 || !control.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(format!("ISA13 `{control}` is not a 9-digit control number")));
    }
    let mut groups = Vec::new();
    let mut iea = None;
    while let Some(seg) = it.next() {
        match seg.id.as_str() {
            "GS" => groups.push(read_group(seg, &mut it)?),
            "IEA" => {
                iea = Some(seg);
                break;
            }
            other => return Err(bad(format!("segment `{other}` outside a functional group"))),
        }
    }
    let iea = iea.ok_or_else(|| bad("no IEA trailer: the interchange is cut short"))?;
    if let Some(extra) = it.next() {
        return Err(bad(format!("segment `{}` after IEA", extra.id)));
    }
    let error = if iea.el(2) != control {
        Some(format!("IEA02 `{}` does not match ISA13 `{control}`", iea.el(2)))
    } else if iea.el(1) != groups.len().to_string() {
        Some(format!("IEA01 says {} group(s); the interchange has {}", iea.el(1), groups.len()))
    } else {
        None
    };
    Ok(Interchange {
        error,
        sender: isa.el(6).to_string(),
        receiver: isa.el(8).to_string(),
        control,
        usage: isa.el(15).to_string(),
        groups,
    })
}

fn read_group(gs: Segment, it: &mut std::iter::Peekable<std::vec::IntoIter<Segment>>) -> Result<Group, EnvelopeError> {
    let mut sets = Vec::new();
    loop {
        let seg = it.next().ok_or_else(|| bad(format!("group {} has no GE trailer", gs.el(6))))?;
        match seg.id.as_str() {
            "ST" => sets.push(read_set(seg, it)?),
            "GE" => {
                let mut error = None;
                if seg.el(2) != gs.el(6) {
                    error = Some(("4", format!("GE02 `{}` does not match GS06 `{}`", seg.el(2), gs.el(6))));
                } else if seg.el(1) != sets.len().to_string() {
                    error = Some(("5", format!("GE01 says {} set(s); the group has {}", seg.el(1), sets.len())));
                }
                return Ok(Group { code: gs.el(1).to_string(), control: gs.el(6).to_string(), sets, error });
            }
            other => return Err(bad(format!("segment `{other}` outside a transaction set in group {}", gs.el(6)))),
        }
    }
}

fn read_set(st: Segment, it: &mut std::iter::Peekable<std::vec::IntoIter<Segment>>) -> Result<TxSet, EnvelopeError> {
    let mut body = Vec::new();
    loop {
        let seg = it.next().ok_or_else(|| bad(format!("set {} has no SE trailer", st.el(2))))?;
        match seg.id.as_str() {
            "SE" => {
                let mut error = None;
                if seg.el(2) != st.el(2) {
                    // AK5 code 3: control number mismatch.
                    error = Some(("3", format!("SE02 `{}` does not match ST02 `{}`", seg.el(2), st.el(2))));
                } else if seg.el(1) != (body.len() + 2).to_string() {
                    // AK5 code 4: number of included segments does not match.
                    error = Some(("4", format!("SE01 says {} segments; the set has {}", seg.el(1), body.len() + 2)));
                }
                return Ok(TxSet { id: st.el(1).to_string(), control: st.el(2).to_string(), body, error });
            }
            "ST" | "GE" | "IEA" | "GS" | "ISA" => {
                return Err(bad(format!("set {} has no SE before `{}`", st.el(2), seg.id)));
            }
            _ => body.push(seg),
        }
    }
}

/// Writes interchanges with our envelope settings.
pub struct Writer<'a> {
    pub delims: Delims,
    pub sender_qualifier: &'a str,
    pub sender: &'a str,
    pub receiver_qualifier: &'a str,
    pub receiver: &'a str,
    pub usage: &'a str,
    /// `YYMMDD`, `HHMM` of now.
    pub date: String,
    pub time: String,
}

impl Writer<'_> {
    /// One interchange holding one group (`code`, e.g. PO) with one set
    /// (`set_id`, e.g. 850) whose body is `body`; all three control numbers
    /// from `control`.
    pub fn interchange(&self, control: u32, code: &str, set_id: &str, body: &[Vec<String>]) -> String {
        self.interchange_of(control, &[(code, control, set_id, body.to_vec())])
    }

    /// One interchange with one group per entry `(GS01, GS06, ST01, body)`,
    /// each holding one set.
    pub fn interchange_of(&self, control: u32, groups: &[(&str, u32, &str, Vec<Vec<String>>)]) -> String {
        let d = self.delims;
        let e = d.element;
        let s = d.segment;
        let ctl = format!("{:09}", control % 1_000_000_000);
        let mut out = format!(
            "ISA{e}00{e}{:10}{e}00{e}{:10}{e}{}{e}{:15}{e}{}{e}{:15}{e}{}{e}{}{e}U{e}00401{e}{ctl}{e}0{e}{}{e}{}{s}\n",
            "",
            "",
            pad(self.sender_qualifier, 2),
            self.sender,
            pad(self.receiver_qualifier, 2),
            self.receiver,
            self.date,
            self.time,
            self.usage,
            d.component,
        );
        for (code, group, set_id, body) in groups {
            out.push_str(&format!(
                "GS{e}{code}{e}{}{e}{}{e}20{}{e}{}{e}{group}{e}X{e}004010{s}\n",
                self.sender.trim(),
                self.receiver.trim(),
                self.date,
                self.time
            ));
            let st = format!("{:04}", group % 10_000);
            out.push_str(&format!("ST{e}{set_id}{e}{st}{s}\n"));
            for seg in body {
                out.push_str(&seg.join(&e.to_string()));
                out.push(s);
                out.push('\n');
            }
            out.push_str(&format!("SE{e}{}{e}{st}{s}\n", body.len() + 2));
            out.push_str(&format!("GE{e}1{e}{group}{s}\n"));
        }
        out.push_str(&format!("IEA{e}{}{e}{ctl}{s}\n", groups.len()));
        out
    }
}

fn pad(s: &str, n: usize) -> String {
    format!("{s:n$}")
}

/// Whether `value` can travel in an element: no delimiter inside it.
pub fn clean(value: &str, d: Delims) -> String {
    value.chars().map(|c| if c == d.element || c == d.segment || c == d.component { ' ' } else { c }).collect()
}
