//! STIX 2.1 patterning: a parser for the whole grammar (so a broken pattern is refused with
//! its position) and the mapping of the comparisons Tanoa indexes to indicator kinds.
//!
//! Owns: the syntax check of `pattern_type: stix` patterns and [`map_pattern`], which says which
//! (kind, value) pairs a pattern matches for sure: a single observation (or an `OR` of
//! observations) whose comparison is one, or an `OR` of several, `path = 'value'` tests on
//! `ipv4-addr:value`, `ipv6-addr:value` (a CIDR value, or `ISSUBSET`, is a `cidr`),
//! `domain-name:value`, `url:value`, `email-addr:value`, `file:hashes.(MD5|SHA-1|SHA-256|
//! SHA-512)`, `file:name` and `autonomous-system:number`.
//! Must never: index a value from an `AND`, a negation, a qualifier or `FOLLOWEDBY` (the value
//! alone would not match the pattern), or index a value our normalization refuses.

use crate::model::{IndicatorKind, normalize_indicator};

/// A pattern that does not parse, with the byte offset where it fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pattern does not parse at offset {offset}: {message}")]
pub struct PatternError {
    /// Byte offset in the pattern.
    pub offset: usize,
    /// What was expected or found.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LBrack,
    RBrack,
    LParen,
    RParen,
    Colon,
    Dot,
    Comma,
    Star,
    Op(&'static str),
    Word(String),
    Str(String),
    Int(i64),
    Float,
    Bin,
    Hex,
    Ts,
    Bool,
    End,
}

struct Lexer<'a> {
    s: &'a str,
    b: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn err(&self, at: usize, message: impl Into<String>) -> PatternError {
        PatternError {
            offset: at,
            message: message.into(),
        }
    }

    fn skip_ws(&mut self) {
        while self.pos < self.b.len() && self.b[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    /// Reads a quoted literal body after the opening quote; returns the unescaped text.
    fn quoted(&mut self, start: usize) -> Result<String, PatternError> {
        let mut out = String::new();
        let mut chars = self.s[self.pos..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\'' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, e @ ('\'' | '\\'))) => out.push(e),
                    Some((j, e)) => {
                        return Err(self.err(
                            self.pos + j,
                            format!("invalid escape \\{e} in a string (only \\' and \\\\)"),
                        ));
                    }
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err(self.err(start, "unterminated string literal"))
    }

    fn next(&mut self) -> Result<(usize, Tok), PatternError> {
        self.skip_ws();
        let start = self.pos;
        let Some(&c) = self.b.get(self.pos) else {
            return Ok((start, Tok::End));
        };
        let single = |t: Tok| Ok((start, t));
        match c {
            b'[' => {
                self.pos += 1;
                single(Tok::LBrack)
            }
            b']' => {
                self.pos += 1;
                single(Tok::RBrack)
            }
            b'(' => {
                self.pos += 1;
                single(Tok::LParen)
            }
            b')' => {
                self.pos += 1;
                single(Tok::RParen)
            }
            b':' => {
                self.pos += 1;
                single(Tok::Colon)
            }
            b',' => {
                self.pos += 1;
                single(Tok::Comma)
            }
            b'*' => {
                self.pos += 1;
                single(Tok::Star)
            }
            b'=' => {
                self.pos += 1;
                if self.b.get(self.pos) == Some(&b'=') {
                    self.pos += 1;
                }
                single(Tok::Op("="))
            }
            b'!' => {
                if self.b.get(self.pos + 1) == Some(&b'=') {
                    self.pos += 2;
                    single(Tok::Op("!="))
                } else {
                    Err(self.err(start, "'!' must be followed by '='"))
                }
            }
            b'<' if self.b.get(self.pos + 1) == Some(&b'>') => {
                self.pos += 2;
                single(Tok::Op("!="))
            }
            b'<' | b'>' => {
                self.pos += 1;
                let eq = self.b.get(self.pos) == Some(&b'=');
                if eq {
                    self.pos += 1;
                }
                single(Tok::Op(match (c, eq) {
                    (b'<', false) => "<",
                    (b'<', true) => "<=",
                    (_, false) => ">",
                    _ => ">=",
                }))
            }
            b'\'' => {
                self.pos += 1;
                let s = self.quoted(start)?;
                Ok((start, Tok::Str(s)))
            }
            b'.' if !self.b.get(self.pos + 1).is_some_and(u8::is_ascii_digit) => {
                self.pos += 1;
                single(Tok::Dot)
            }
            b'+' | b'-' | b'.' | b'0'..=b'9' => self.number(start),
            c if c.is_ascii_alphabetic() || c == b'_' => {
                // b'…', h'…', t'…' literals.
                if matches!(c, b'b' | b'h' | b't') && self.b.get(self.pos + 1) == Some(&b'\'') {
                    self.pos += 2;
                    let body = self.quoted(start)?;
                    return match c {
                        b'b' => {
                            if body.bytes().all(|x| {
                                x.is_ascii_alphanumeric() || matches!(x, b'+' | b'/' | b'=')
                            }) {
                                Ok((start, Tok::Bin))
                            } else {
                                Err(self.err(start, "binary literal b'…' is not base64"))
                            }
                        }
                        b'h' => {
                            if body.len() % 2 == 0 && body.bytes().all(|x| x.is_ascii_hexdigit()) {
                                Ok((start, Tok::Hex))
                            } else {
                                Err(self.err(
                                    start,
                                    "hex literal h'…' is not an even number of hex digits",
                                ))
                            }
                        }
                        _ => {
                            if super::check::is_stix_timestamp(&body) {
                                Ok((start, Tok::Ts))
                            } else {
                                Err(self.err(
                                    start,
                                    format!("timestamp literal t'{body}' is not a STIX timestamp"),
                                ))
                            }
                        }
                    };
                }
                while self.pos < self.b.len()
                    && (self.b[self.pos].is_ascii_alphanumeric()
                        || matches!(self.b[self.pos], b'_' | b'-'))
                {
                    self.pos += 1;
                }
                let w = &self.s[start..self.pos];
                if w == "true" || w == "false" {
                    return single(Tok::Bool);
                }
                Ok((start, Tok::Word(w.to_string())))
            }
            _ => {
                let ch = self.s[start..].chars().next().unwrap_or('?');
                Err(self.err(start, format!("unexpected character {ch:?}")))
            }
        }
    }

    fn number(&mut self, start: usize) -> Result<(usize, Tok), PatternError> {
        if matches!(self.b[self.pos], b'+' | b'-') {
            self.pos += 1;
        }
        let int_start = self.pos;
        while self.pos < self.b.len() && self.b[self.pos].is_ascii_digit() {
            self.pos += 1;
        }
        let int_end = self.pos;
        if self.b.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            let frac = self.pos;
            while self.pos < self.b.len() && self.b[self.pos].is_ascii_digit() {
                self.pos += 1;
            }
            if self.pos == frac {
                return Err(self.err(start, "a number needs digits after '.'"));
            }
            return Ok((start, Tok::Float));
        }
        if int_end == int_start {
            return Err(self.err(start, "expected a number"));
        }
        let digits = &self.s[int_start..int_end];
        if digits.len() > 1 && digits.starts_with('0') {
            return Err(self.err(start, "integers must not have leading zeros"));
        }
        let v: i64 = self.s[start..int_end]
            .parse()
            .map_err(|_| self.err(start, "integer out of range"))?;
        Ok((start, Tok::Int(v)))
    }
}

/// One property test of a comparison expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Test {
    /// Object type, e.g. `ipv4-addr`.
    pub(crate) object_type: String,
    /// Path components after the colon (`hashes`, `SHA-256`); `*` and indices as text.
    pub(crate) path: Vec<String>,
    pub(crate) negated: bool,
    pub(crate) op: &'static str,
    pub(crate) value: Lit,
}

/// A literal on the right of a test (only strings and integers are kept).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Str(String),
    Int(i64),
    Other,
}

#[derive(Debug, Clone, PartialEq)]
enum Comp {
    Test(Test),
    Other,
    And(Vec<Comp>),
    Or(Vec<Comp>),
}

#[derive(Debug, Clone, PartialEq)]
enum Obs {
    Simple(Comp),
    Or(Vec<Obs>),
    /// AND, FOLLOWEDBY, or a qualified observation: nothing inside is indexed.
    Opaque,
}

struct Parser<'a> {
    lx: Lexer<'a>,
    tok: Tok,
    at: usize,
    /// Open parentheses (bounded: the parser recurses once per level).
    depth: usize,
    /// Object type of every object path, in order (also those under AND, NOT, EXISTS, …).
    object_types: Vec<String>,
}

/// Deepest nesting of parentheses accepted in a pattern; deeper input is refused rather than
/// allowed to exhaust the stack.
const MAX_NESTING: usize = 64;

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Result<Self, PatternError> {
        let mut lx = Lexer {
            s,
            b: s.as_bytes(),
            pos: 0,
        };
        let (at, tok) = lx.next()?;
        Ok(Self {
            lx,
            tok,
            at,
            depth: 0,
            object_types: Vec::new(),
        })
    }

    /// Enters one level of parentheses.
    fn open(&mut self) -> Result<(), PatternError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.err(format!(
                "parentheses nested deeper than {MAX_NESTING} levels"
            )));
        }
        self.bump()?;
        Ok(())
    }

    fn bump(&mut self) -> Result<Tok, PatternError> {
        let (at, tok) = self.lx.next()?;
        self.at = at;
        Ok(std::mem::replace(&mut self.tok, tok))
    }

    fn err(&self, message: impl Into<String>) -> PatternError {
        PatternError {
            offset: self.at,
            message: message.into(),
        }
    }

    fn found(&self) -> String {
        match &self.tok {
            Tok::End => "the end of the pattern".into(),
            Tok::Word(w) => format!("'{w}'"),
            Tok::Str(s) => format!("the string '{s}'"),
            other => format!("{other:?}"),
        }
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(&self.tok, Tok::Word(x) if x == w)
    }

    fn expect(&mut self, t: Tok, what: &str) -> Result<(), PatternError> {
        if self.tok == t {
            self.bump()?;
            Ok(())
        } else {
            Err(self.err(format!("expected {what}, found {}", self.found())))
        }
    }

    fn expect_word(&mut self, w: &str) -> Result<(), PatternError> {
        if self.is_word(w) {
            self.bump()?;
            Ok(())
        } else {
            Err(self.err(format!("expected {w}, found {}", self.found())))
        }
    }

    // observationExpressions: or ( FOLLOWEDBY or )*
    fn observations(&mut self) -> Result<Obs, PatternError> {
        let mut first = self.obs_or()?;
        while self.is_word("FOLLOWEDBY") {
            self.bump()?;
            self.obs_or()?;
            first = Obs::Opaque;
        }
        Ok(first)
    }

    fn obs_or(&mut self) -> Result<Obs, PatternError> {
        let mut items = vec![self.obs_and()?];
        while self.is_word("OR") {
            self.bump()?;
            items.push(self.obs_and()?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Obs::Opaque)
        } else {
            Obs::Or(items)
        })
    }

    fn obs_and(&mut self) -> Result<Obs, PatternError> {
        let mut first = self.obs_qualified()?;
        while self.is_word("AND") {
            self.bump()?;
            self.obs_qualified()?;
            first = Obs::Opaque;
        }
        Ok(first)
    }

    fn obs_qualified(&mut self) -> Result<Obs, PatternError> {
        let mut o = self.obs_primary()?;
        loop {
            if self.is_word("WITHIN") {
                self.bump()?;
                match self.tok {
                    Tok::Int(n) if n > 0 => {}
                    Tok::Float => {}
                    _ => return Err(self.err("WITHIN needs a positive number of seconds")),
                }
                self.bump()?;
                self.expect_word("SECONDS")?;
            } else if self.is_word("REPEATS") {
                self.bump()?;
                match self.tok {
                    Tok::Int(n) if n > 0 => {}
                    _ => return Err(self.err("REPEATS needs a positive integer")),
                }
                self.bump()?;
                self.expect_word("TIMES")?;
            } else if self.is_word("START") {
                self.bump()?;
                self.expect(Tok::Ts, "a timestamp literal t'…' after START")?;
                self.expect_word("STOP")?;
                self.expect(Tok::Ts, "a timestamp literal t'…' after STOP")?;
            } else {
                return Ok(o);
            }
            o = Obs::Opaque;
        }
    }

    fn obs_primary(&mut self) -> Result<Obs, PatternError> {
        match self.tok {
            Tok::LBrack => {
                self.bump()?;
                let c = self.comp_or()?;
                self.expect(Tok::RBrack, "']' closing the observation")?;
                Ok(Obs::Simple(c))
            }
            Tok::LParen => {
                self.open()?;
                let o = self.observations()?;
                self.expect(Tok::RParen, "')'")?;
                self.depth -= 1;
                Ok(o)
            }
            _ => Err(self.err(format!(
                "expected '[' starting an observation expression, found {}",
                self.found()
            ))),
        }
    }

    fn comp_or(&mut self) -> Result<Comp, PatternError> {
        let mut items = vec![self.comp_and()?];
        while self.is_word("OR") {
            self.bump()?;
            items.push(self.comp_and()?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Comp::Other)
        } else {
            Comp::Or(items)
        })
    }

    fn comp_and(&mut self) -> Result<Comp, PatternError> {
        let mut items = vec![self.prop_test()?];
        while self.is_word("AND") {
            self.bump()?;
            items.push(self.prop_test()?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Comp::Other)
        } else {
            Comp::And(items)
        })
    }

    fn prop_test(&mut self) -> Result<Comp, PatternError> {
        if self.tok == Tok::LParen {
            self.open()?;
            let c = self.comp_or()?;
            self.expect(Tok::RParen, "')'")?;
            self.depth -= 1;
            return Ok(c);
        }
        if self.is_word("EXISTS") {
            self.bump()?;
            self.object_path()?;
            return Ok(Comp::Other);
        }
        let (object_type, path) = self.object_path()?;
        let mut negated = false;
        if self.is_word("NOT") {
            self.bump()?;
            negated = true;
        }
        let op: &'static str = match &self.tok {
            Tok::Op(o) => o,
            Tok::Word(w) => match w.as_str() {
                "IN" => "IN",
                "LIKE" => "LIKE",
                "MATCHES" => "MATCHES",
                "ISSUBSET" => "ISSUBSET",
                "ISSUPERSET" => "ISSUPERSET",
                _ => {
                    return Err(self.err(format!(
                        "expected a comparison operator, found {}",
                        self.found()
                    )));
                }
            },
            _ => {
                return Err(self.err(format!(
                    "expected a comparison operator, found {}",
                    self.found()
                )));
            }
        };
        self.bump()?;
        let value = match op {
            "IN" => {
                self.set_literal()?;
                Lit::Other
            }
            "LIKE" | "MATCHES" | "ISSUBSET" | "ISSUPERSET" => match self.bump()? {
                Tok::Str(s) => Lit::Str(s),
                _ => return Err(self.err(format!("{op} needs a string literal"))),
            },
            "=" | "!=" => self.literal(true)?,
            _ => self.literal(false)?,
        };
        Ok(Comp::Test(Test {
            object_type,
            path,
            negated,
            op,
            value,
        }))
    }

    fn literal(&mut self, allow_bool: bool) -> Result<Lit, PatternError> {
        let t = self.bump()?;
        match t {
            Tok::Str(s) => Ok(Lit::Str(s)),
            Tok::Int(n) => Ok(Lit::Int(n)),
            Tok::Float | Tok::Bin | Tok::Hex | Tok::Ts => Ok(Lit::Other),
            Tok::Bool if allow_bool => Ok(Lit::Other),
            _ => Err(PatternError {
                offset: self.at,
                message: "expected a literal value (string, number, b'', h'', t'', true/false)"
                    .into(),
            }),
        }
    }

    fn set_literal(&mut self) -> Result<(), PatternError> {
        self.expect(Tok::LParen, "'(' starting a set")?;
        if self.tok == Tok::RParen {
            self.bump()?;
            return Ok(());
        }
        loop {
            self.literal(true)?;
            if self.tok == Tok::Comma {
                self.bump()?;
                continue;
            }
            return self.expect(Tok::RParen, "')' closing the set");
        }
    }

    fn object_path(&mut self) -> Result<(String, Vec<String>), PatternError> {
        let object_type = match &self.tok {
            Tok::Word(w) if is_object_type(w) => w.clone(),
            _ => {
                return Err(self.err(format!(
                    "expected an object type (e.g. ipv4-addr), found {}",
                    self.found()
                )));
            }
        };
        self.bump()?;
        if !self.object_types.contains(&object_type) {
            self.object_types.push(object_type.clone());
        }
        self.expect(Tok::Colon, "':' after the object type")?;
        let mut path = Vec::new();
        path.push(self.path_name()?);
        loop {
            match self.tok {
                Tok::Dot => {
                    self.bump()?;
                    path.push(self.path_name()?);
                }
                Tok::LBrack => {
                    self.bump()?;
                    match self.bump()? {
                        Tok::Star => path.push("*".into()),
                        Tok::Int(n) => path.push(n.to_string()),
                        _ => return Err(self.err("expected an index or '*' in '[…]'")),
                    }
                    self.expect(Tok::RBrack, "']' closing the index")?;
                }
                _ => return Ok((object_type, path)),
            }
        }
    }

    fn path_name(&mut self) -> Result<String, PatternError> {
        match self.bump()? {
            Tok::Word(w) if !w.contains('-') => Ok(w),
            Tok::Str(s) => Ok(s),
            Tok::Word(w) => Err(PatternError {
                offset: self.at,
                message: format!("property name '{w}' contains '-': quote it ('{w}')"),
            }),
            _ => Err(PatternError {
                offset: self.at,
                message: "expected a property name".into(),
            }),
        }
    }
}

fn is_object_type(w: &str) -> bool {
    w.starts_with(|c: char| c.is_ascii_alphabetic())
        && !matches!(
            w,
            "AND" | "OR" | "NOT" | "FOLLOWEDBY" | "EXISTS" | "IN" | "LIKE" | "MATCHES"
        )
}

/// Parses a STIX pattern; `Ok` when it is well formed.
pub fn parse(pattern: &str) -> Result<(), PatternError> {
    parse_tree(pattern).map(|_| ())
}

fn parse_tree(pattern: &str) -> Result<Obs, PatternError> {
    parse_full(pattern).map(|(o, _)| o)
}

fn parse_full(pattern: &str) -> Result<(Obs, Vec<String>), PatternError> {
    let mut p = Parser::new(pattern)?;
    let o = p.observations()?;
    if p.tok != Tok::End {
        return Err(p.err(format!("unexpected {} after the pattern", p.found())));
    }
    Ok((o, p.object_types))
}

/// The object types a pattern refers to (every object path, whatever the operators around it),
/// each once, in order of appearance.
pub fn object_types(pattern: &str) -> Result<Vec<String>, PatternError> {
    parse_full(pattern).map(|(_, t)| t)
}

/// What Tanoa indexes from a pattern.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapping {
    /// Normalized (kind, value) pairs that each match the pattern on their own.
    pub values: Vec<(IndicatorKind, String)>,
    /// Comparisons not indexed: a path or operator we do not map, a value our normalization
    /// refuses (with the reason), or anything under AND/NOT/qualifiers.
    pub skipped: Vec<String>,
    /// Values indexed under another kind than their path says, with why (an IP address in a
    /// `domain-name:value` comparison is indexed as the `ipv4`/`ipv6` address it is).
    pub reclassified: Vec<String>,
}

impl Mapping {
    /// True when nothing in the pattern was indexed.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Parses `pattern` and returns the (kind, value) pairs Tanoa indexes from it.
pub fn map_pattern(pattern: &str) -> Result<Mapping, PatternError> {
    let tree = parse_tree(pattern)?;
    let mut m = Mapping::default();
    map_obs(&tree, &mut m);
    Ok(m)
}

fn map_obs(o: &Obs, m: &mut Mapping) {
    match o {
        Obs::Simple(c) => map_comp(c, m),
        Obs::Or(list) => list.iter().for_each(|o| map_obs(o, m)),
        Obs::Opaque => m
            .skipped
            .push("observation with AND, FOLLOWEDBY or a qualifier".into()),
    }
}

fn map_comp(c: &Comp, m: &mut Mapping) {
    match c {
        Comp::Or(list) => list.iter().for_each(|c| map_comp(c, m)),
        Comp::And(_) => m.skipped.push("comparisons joined by AND".into()),
        Comp::Other => m.skipped.push("EXISTS test".into()),
        Comp::Test(t) => match map_test(t) {
            Ok((kind, value)) => {
                if t.object_type == "domain-name" && kind != IndicatorKind::Domain {
                    m.reclassified.push(format!(
                        "{}: {value:?} is an IP address, indexed as {}",
                        describe(t),
                        kind.as_str()
                    ));
                }
                if !m.values.iter().any(|(k, v)| *k == kind && *v == value) {
                    m.values.push((kind, value));
                }
            }
            Err(why) => m.skipped.push(why),
        },
    }
}

fn hash_kind(name: &str) -> Option<IndicatorKind> {
    let n: String = name
        .chars()
        .filter(|c| !matches!(c, '-' | '_'))
        .collect::<String>()
        .to_ascii_uppercase();
    match n.as_str() {
        "MD5" => Some(IndicatorKind::Md5),
        "SHA1" => Some(IndicatorKind::Sha1),
        "SHA256" => Some(IndicatorKind::Sha256),
        "SHA512" => Some(IndicatorKind::Sha512),
        _ => None,
    }
}

fn describe(t: &Test) -> String {
    let mut p = format!("{}:{}", t.object_type, t.path.join("."));
    if t.negated {
        p.push_str(" NOT");
    }
    p.push(' ');
    p.push_str(t.op);
    p
}

/// One test → (kind, normalized value), or why it is not indexed.
fn map_test(t: &Test) -> Result<(IndicatorKind, String), String> {
    if t.negated {
        return Err(format!("{}: negated test", describe(t)));
    }
    let path: Vec<&str> = t.path.iter().map(String::as_str).collect();
    let ip = matches!(t.object_type.as_str(), "ipv4-addr" | "ipv6-addr");
    let kind = match (t.object_type.as_str(), path.as_slice(), t.op) {
        ("ipv4-addr" | "ipv6-addr", ["value"], "ISSUBSET") => IndicatorKind::Cidr,
        ("ipv4-addr", ["value"], "=") => IndicatorKind::Ipv4,
        ("ipv6-addr", ["value"], "=") => IndicatorKind::Ipv6,
        ("domain-name", ["value"], "=") => IndicatorKind::Domain,
        ("url", ["value"], "=") => IndicatorKind::Url,
        ("email-addr", ["value"], "=") => IndicatorKind::Email,
        ("file", ["name"], "=") => IndicatorKind::Filename,
        ("file", ["hashes", h], "=") => {
            hash_kind(h).ok_or_else(|| format!("{}: hash algorithm not indexed", describe(t)))?
        }
        ("autonomous-system", ["number"], "=") => IndicatorKind::Asn,
        _ => return Err(format!("{}: not an indexed comparison", describe(t))),
    };
    let raw = match (&t.value, kind) {
        (Lit::Int(n), IndicatorKind::Asn) if *n >= 0 => format!("AS{n}"),
        (Lit::Str(s), IndicatorKind::Asn) => s.clone(),
        (Lit::Str(s), _) => s.clone(),
        _ => return Err(format!("{}: value is not a string", describe(t))),
    };
    // An address value with a prefix is a network.
    let kind = if ip && raw.contains('/') {
        IndicatorKind::Cidr
    } else {
        kind
    };
    if kind == IndicatorKind::Cidr && !raw.contains('/') {
        // ISSUBSET of a single address: the address itself.
        let k = if t.object_type == "ipv4-addr" {
            IndicatorKind::Ipv4
        } else {
            IndicatorKind::Ipv6
        };
        return normalize_indicator(k, &raw)
            .map(|v| (k, v))
            .map_err(|e| format!("{}: {e}", describe(t)));
    }
    // Real reports put addresses in domain-name comparisons: index the address as what it is
    // (the warning-list check already treats it as an IP).
    if kind == IndicatorKind::Domain
        && let Some(ip) = crate::model::indicator::parse_ip(&raw)
    {
        let k = if ip.is_ipv4() {
            IndicatorKind::Ipv4
        } else {
            IndicatorKind::Ipv6
        };
        return normalize_indicator(k, &raw)
            .map(|v| (k, v))
            .map_err(|e| format!("{}: {e}", describe(t)));
    }
    if kind == IndicatorKind::Filename && raw.contains(['/', '\\']) {
        return Err(format!(
            "{}: {raw:?} contains a path separator (a file name is indexed without its path)",
            describe(t)
        ));
    }
    normalize_indicator(kind, &raw)
        .map(|v| (kind, v))
        .map_err(|e| format!("{}: {e}", describe(t)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use IndicatorKind as K;

    fn vals(p: &str) -> Vec<(K, String)> {
        map_pattern(p).unwrap().values
    }

    #[test]
    fn simple_comparisons_map_to_kinds() {
        assert_eq!(
            vals("[ipv4-addr:value = '198.51.100.7']"),
            [(K::Ipv4, "198.51.100.7".into())]
        );
        assert_eq!(
            vals("[ ipv4-addr:value = '198.51.100.0/24' ]"),
            [(K::Cidr, "198.51.100.0/24".into())]
        );
        assert_eq!(
            vals("[ipv6-addr:value ISSUBSET '2001:db8::/32']"),
            [(K::Cidr, "2001:db8::/32".into())]
        );
        assert_eq!(
            vals("[ipv6-addr:value = '2001:DB8::1']"),
            [(K::Ipv6, "2001:db8::1".into())]
        );
        assert_eq!(
            vals(
                "[file:hashes.'SHA-256' = 'EF537F25C895BFA782526529A9B63D97AA631564D5D789C2B765448C8635FB6C']"
            ),
            [(
                K::Sha256,
                "ef537f25c895bfa782526529a9b63d97aa631564d5d789c2b765448c8635fb6c".into()
            )]
        );
        assert_eq!(
            vals("[file:hashes.md5 = '00dbb9e1c09dbdafb360f3163ba5a3de']")[0].0,
            K::Md5
        );
        assert_eq!(
            vals("[file:hashes.'SHA-1' = 'da39a3ee5e6b4b0d3255bfef95601890afd80709']")[0].0,
            K::Sha1
        );
        assert_eq!(
            vals("[autonomous-system:number = 64496]"),
            [(K::Asn, "AS64496".into())]
        );
        assert_eq!(
            vals("[email-addr:value = 'a@Mail.Example']"),
            [(K::Email, "a@mail.example".into())]
        );
        assert_eq!(
            vals("[url:value = 'http://evil.example/a\\'b']"),
            [(K::Url, "http://evil.example/a'b".into())]
        );
    }

    #[test]
    fn an_ip_address_in_a_domain_name_comparison_is_indexed_as_the_address() {
        let m = map_pattern("[domain-name:value = '198.51.100.7']").unwrap();
        assert_eq!(m.values, vec![(K::Ipv4, "198.51.100.7".to_string())]);
        assert_eq!(m.reclassified.len(), 1, "{m:?}");
        assert!(m.reclassified[0].contains("indexed as ipv4"), "{m:?}");
        let m = map_pattern("[domain-name:value = '2001:DB8::7']").unwrap();
        assert_eq!(m.values, vec![(K::Ipv6, "2001:db8::7".to_string())]);
        assert!(m.reclassified[0].contains("indexed as ipv6"), "{m:?}");
        // A real domain is not reclassified.
        let m = map_pattern("[domain-name:value = 'c2.apt40.example']").unwrap();
        assert_eq!(m.values, vec![(K::Domain, "c2.apt40.example".to_string())]);
        assert!(m.reclassified.is_empty());
    }

    #[test]
    fn object_types_lists_every_path_even_under_and_not_and_exists() {
        assert_eq!(
            object_types("[app:id = 'x' AND ipv4-addr:value NOT = '198.51.100.1'] FOLLOWEDBY [EXISTS app:name]")
                .unwrap(),
            vec!["app".to_string(), "ipv4-addr".to_string()]
        );
    }

    #[test]
    fn or_maps_every_branch_and_skips_what_it_cannot() {
        let m = map_pattern(
            "[domain-name:value = 'domain autuo.xicp.example' OR ipv4-addr:value = '198.51.100.115']",
        )
        .unwrap();
        assert_eq!(m.values, [(K::Ipv4, "198.51.100.115".into())]);
        assert_eq!(m.skipped.len(), 1);
        assert!(
            m.skipped[0].contains("not a domain name"),
            "{:?}",
            m.skipped
        );
        let m =
            map_pattern("[domain-name:value = 'a.example'] OR [url:value = 'https://b.example/']")
                .unwrap();
        assert_eq!(m.values.len(), 2);
    }

    #[test]
    fn and_not_and_qualifiers_are_not_indexed() {
        for p in [
            "[file:hashes.MD5 = '00dbb9e1c09dbdafb360f3163ba5a3de' AND file:name = 'a.exe']",
            "[ipv4-addr:value != '198.51.100.1']",
            "[ipv4-addr:value NOT = '198.51.100.1']",
            "[ipv4-addr:value = '198.51.100.1'] AND [domain-name:value = 'a.example']",
            "[ipv4-addr:value = '198.51.100.1'] FOLLOWEDBY [domain-name:value = 'a.example']",
            "[ipv4-addr:value = '198.51.100.1'] REPEATS 5 TIMES WITHIN 10 SECONDS",
            "[x509-certificate:issuer = 'CN=WEBMAIL' AND x509-certificate:serial_number = '4c:0b']",
            "[email-message:subject MATCHES '^[IMPORTANT] Please Review Before']",
            "[file:name = 'C:\\\\evil\\\\a.exe']",
        ] {
            let m = map_pattern(p).unwrap();
            assert!(m.values.is_empty(), "{p}: {m:?}");
            assert!(!m.skipped.is_empty(), "{p}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let ok = format!(
            "{}[ipv4-addr:value = '192.0.2.1']{}",
            "(".repeat(60),
            ")".repeat(60)
        );
        assert!(parse(&ok).is_ok());
        for n in [65, 100_000] {
            let deep = format!(
                "{}[ipv4-addr:value = '192.0.2.1']{}",
                "(".repeat(n),
                ")".repeat(n)
            );
            let e = parse(&deep).unwrap_err();
            assert!(e.to_string().contains("nested deeper than 64"), "{e}");
            let inner = format!(
                "[{}ipv4-addr:value = '192.0.2.1'{}]",
                "(".repeat(n),
                ")".repeat(n)
            );
            assert!(parse(&inner).is_err());
        }
    }

    #[test]
    fn the_grammar_is_checked() {
        for ok in [
            "[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_port = 443]",
            "[file:extensions.'windows-pebinary-ext'.sections[*].entropy > 7.0]",
            "[file:size IN (1, 2, 3)] START t'2016-01-01T00:00:00Z' STOP t'2017-01-01T00:00:00.123Z'",
            "([a:b = true] OR [c:d LIKE 'x%']) WITHIN 5 SECONDS",
            "[artifact:payload_bin = b'dGVzdA=='] AND [artifact:x = h'00ff']",
            "[email-message:body_multipart[*].body_raw_ref.name MATCHES '^Final Report.+\\\\.exe$']",
            "[process:pid = -1 OR EXISTS process:name]",
        ] {
            parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, want) in [
            ("ipv4-addr:value = '198.51.100.1'", "expected '['"),
            ("[ipv4-addr:value = '198.51.100.1'", "']' closing"),
            ("[ipv4-addr:value = '198.51.100.1]", "unterminated"),
            ("[ipv4-addr:value '198.51.100.1']", "comparison operator"),
            ("[ipv4-addr = '198.51.100.1']", "':' after"),
            ("[ipv4-addr:value = '1'] OR", "expected '['"),
            ("[ipv4-addr:value = '1'] [x:y = 1]", "after the pattern"),
            ("[a:b = 'x\\n']", "invalid escape"),
            ("[a:b = t'2016-13-01T00:00:00Z']", "not a STIX timestamp"),
            ("[a:b = 01]", "leading zeros"),
            ("[a:b.c-d = 1]", "quote it"),
            ("", "expected '['"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.to_string().contains(want), "{bad}: {e}");
        }
    }
}
