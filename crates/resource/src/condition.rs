//! Argo's `successCondition` and `failureCondition`: a Kubernetes label selector
//! (`k8s.io/apimachinery/pkg/labels.Parse`, ported here: no crate parses selector strings) whose
//! keys are gjson paths into the object's JSON (`status.phase`, `status.conditions.0.type`), as
//! Argo's `gjsonLabels` reads them.
//!
//! Syntax: requirements separated by `,`; each `KEY`, `!KEY`, `KEY = V`, `KEY == V`, `KEY != V`,
//! `KEY in (V1,V2)`, `KEY notin (V1,V2)`, `KEY > N`, `KEY < N`. Keys must be qualified names (at
//! most 63 characters of `[A-Za-z0-9._-]`, alphanumeric at both ends, optionally a DNS-subdomain
//! prefix and `/`), values label values (empty, or the same alphabet), `>` and `<` integers: the
//! same rules as Kubernetes, so a condition Argo refuses is refused here with its reason.

use std::sync::LazyLock;

use regex::Regex;

/// One parsed condition: every requirement, sorted by key as Kubernetes sorts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    requirements: Vec<Requirement>,
}

/// A requirement on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// Why a condition does not parse; the message is Kubernetes'.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(String);

impl Condition {
    /// Parses a condition in label-selector syntax (an empty one has no requirements).
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let tokens = lex(text);
        let mut parser = Parser { tokens, pos: 0 };
        let mut requirements = parser.parse()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self { requirements })
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.requirements.iter().map(|r| r.to_string()).collect();
        f.write_str(&parts.join(","))
    }
}

impl Requirement {
    /// Whether the object (its JSON text) meets the requirement, as Kubernetes' `Matches` over
    /// Argo's gjson labels: a missing key meets only `!=`, `notin` and `!`.
    pub fn matches(&self, json: &str) -> bool {
        let found = gjson::get(json, &self.key);
        let exists = found.exists();
        let value = found.str();
        match self.op {
            Op::In | Op::Equals | Op::DoubleEquals => {
                exists && self.values.iter().any(|v| v == value)
            }
            Op::NotIn | Op::NotEquals => !exists || !self.values.iter().any(|v| v == value),
            Op::Exists => exists,
            Op::DoesNotExist => !exists,
            Op::GreaterThan | Op::LessThan => {
                if !exists {
                    return false;
                }
                let (Ok(have), Some(Ok(want))) = (
                    value.parse::<i64>(),
                    self.values.first().map(|v| v.parse::<i64>()),
                ) else {
                    return false;
                };
                if self.op == Op::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl std::fmt::Display for Requirement {
    /// Kubernetes' rendering (`status.phase=Failed`, `x in (a,b)`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.op == Op::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.op {
            Op::Equals => "=",
            Op::DoubleEquals => "==",
            Op::NotEquals => "!=",
            Op::In => " in ",
            Op::NotIn => " notin ",
            Op::GreaterThan => ">",
            Op::LessThan => "<",
            Op::Exists | Op::DoesNotExist => return Ok(()),
        };
        f.write_str(op)?;
        let mut values = self.values.clone();
        values.sort();
        match self.op {
            Op::In | Op::NotIn => write!(f, "({})", values.join(",")),
            _ => f.write_str(&values.join(",")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    End,
    Error(String),
    ClosedPar,
    Comma,
    Not,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier(String),
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn literal(text: &str) -> Option<Token> {
    Some(match text {
        ")" => Token::ClosedPar,
        "," => Token::Comma,
        "!" => Token::Not,
        "==" => Token::DoubleEquals,
        "=" => Token::Equals,
        ">" => Token::GreaterThan,
        "in" => Token::In,
        "<" => Token::LessThan,
        "!=" => Token::NotEquals,
        "notin" => Token::NotIn,
        "(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Kubernetes' lexer, byte for byte.
fn lex(text: &str) -> Vec<Token> {
    let bytes = text.as_bytes();
    let mut pos = 0;
    let mut tokens = Vec::new();
    loop {
        while pos < bytes.len() && is_space(bytes[pos]) {
            pos += 1;
        }
        if pos >= bytes.len() {
            tokens.push(Token::End);
            return tokens;
        }
        if is_special(bytes[pos]) {
            // The longest run of symbols that is still a token.
            let start = pos;
            let mut last: Option<(Token, usize)> = None;
            while pos < bytes.len() && is_special(bytes[pos]) {
                pos += 1;
                match literal(&text[start..pos]) {
                    Some(token) => last = Some((token, pos)),
                    None if last.is_some() => {
                        pos -= 1;
                        break;
                    }
                    None => {}
                }
            }
            match last {
                Some((token, end)) => {
                    pos = end;
                    tokens.push(token);
                }
                None => {
                    tokens.push(Token::Error(format!(
                        "error expected: keyword found '{}'",
                        &text[start..pos]
                    )));
                }
            }
        } else {
            let start = pos;
            while pos < bytes.len() && !is_special(bytes[pos]) && !is_space(bytes[pos]) {
                pos += 1;
            }
            let word = &text[start..pos];
            tokens.push(literal(word).unwrap_or_else(|| Token::Identifier(word.to_owned())));
        }
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

fn describe(token: &Token) -> String {
    match token {
        Token::End => String::new(),
        Token::Error(message) => message.clone(),
        Token::Identifier(s) => s.clone(),
        Token::ClosedPar => ")".into(),
        Token::Comma => ",".into(),
        Token::Not => "!".into(),
        Token::DoubleEquals => "==".into(),
        Token::Equals => "=".into(),
        Token::GreaterThan => ">".into(),
        Token::In => "in".into(),
        Token::LessThan => "<".into(),
        Token::NotEquals => "!=".into(),
        Token::NotIn => "notin".into(),
        Token::OpenPar => "(".into(),
    }
}

impl Parser {
    /// The token at the cursor; in values, `in` and `notin` are identifiers.
    fn peek(&self, values: bool) -> Token {
        let token = self.tokens.get(self.pos).cloned().unwrap_or(Token::End);
        match token {
            Token::In if values => Token::Identifier("in".into()),
            Token::NotIn if values => Token::Identifier("notin".into()),
            other => other,
        }
    }

    fn next(&mut self, values: bool) -> Token {
        let token = self.peek(values);
        self.pos += 1;
        token
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, ParseError> {
        let mut requirements = Vec::new();
        loop {
            match self.peek(true) {
                Token::Identifier(_) | Token::Not => {
                    let r = self
                        .requirement()
                        .map_err(|e| ParseError(format!("unable to parse requirement: {}", e.0)))?;
                    requirements.push(r);
                    match self.next(true) {
                        Token::End => return Ok(requirements),
                        Token::Comma => match self.peek(true) {
                            Token::Identifier(_) | Token::Not => {}
                            other => {
                                return Err(ParseError(format!(
                                    "found '{}', expected: identifier after ','",
                                    describe(&other)
                                )));
                            }
                        },
                        other => {
                            return Err(ParseError(format!(
                                "found '{}', expected: ',' or 'end of string'",
                                describe(&other)
                            )));
                        }
                    }
                }
                Token::End => return Ok(requirements),
                other => {
                    return Err(ParseError(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        describe(&other)
                    )));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, ParseError> {
        let mut op = None;
        let mut token = self.next(true);
        if token == Token::Not {
            op = Some(Op::DoesNotExist);
            token = self.next(true);
        }
        let Token::Identifier(key) = token else {
            return Err(ParseError(format!(
                "found '{}', expected: identifier",
                describe(&token)
            )));
        };
        validate_key(&key)?;
        if matches!(self.peek(true), Token::End | Token::Comma) {
            let op = op.unwrap_or(Op::Exists);
            return requirement(key, op, Vec::new());
        }
        if op == Some(Op::DoesNotExist) {
            return requirement(key, Op::DoesNotExist, Vec::new());
        }
        let op = match self.next(false) {
            Token::In => Op::In,
            Token::Equals => Op::Equals,
            Token::DoubleEquals => Op::DoubleEquals,
            Token::GreaterThan => Op::GreaterThan,
            Token::LessThan => Op::LessThan,
            Token::NotIn => Op::NotIn,
            Token::NotEquals => Op::NotEquals,
            other => {
                return Err(ParseError(format!(
                    "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                    describe(&other)
                )));
            }
        };
        let values = match op {
            Op::In | Op::NotIn => self.set_values()?,
            _ => self.exact_value()?,
        };
        requirement(key, op, values)
    }

    fn set_values(&mut self) -> Result<Vec<String>, ParseError> {
        let token = self.next(true);
        if token != Token::OpenPar {
            return Err(ParseError(format!(
                "found '{}' expected: '('",
                describe(&token)
            )));
        }
        let mut values: Vec<String> = Vec::new();
        let insert = |values: &mut Vec<String>, v: String| {
            if !values.contains(&v) {
                values.push(v);
            }
        };
        match self.peek(true) {
            Token::ClosedPar => {
                self.next(true);
                return Ok(vec![String::new()]);
            }
            Token::Identifier(_) | Token::Comma => {}
            other => {
                return Err(ParseError(format!(
                    "found '{}', expected: ',', ')' or identifier",
                    describe(&other)
                )));
            }
        }
        loop {
            match self.next(true) {
                Token::Identifier(v) => {
                    insert(&mut values, v);
                    match self.peek(true) {
                        Token::Comma => continue,
                        Token::ClosedPar => break,
                        other => {
                            return Err(ParseError(format!(
                                "found '{}', expected: ',' or ')'",
                                describe(&other)
                            )));
                        }
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        insert(&mut values, String::new());
                    }
                    match self.peek(true) {
                        Token::ClosedPar => {
                            insert(&mut values, String::new());
                            break;
                        }
                        Token::Comma => {
                            self.next(true);
                            insert(&mut values, String::new());
                        }
                        _ => {}
                    }
                }
                other => {
                    return Err(ParseError(format!(
                        "found '{}', expected: ',', or identifier",
                        describe(&other)
                    )));
                }
            }
        }
        // The closing parenthesis.
        self.next(true);
        values.sort();
        Ok(values)
    }

    fn exact_value(&mut self) -> Result<Vec<String>, ParseError> {
        match self.peek(true) {
            Token::End | Token::Comma => Ok(vec![String::new()]),
            _ => match self.next(true) {
                Token::Identifier(v) => Ok(vec![v]),
                other => Err(ParseError(format!(
                    "found '{}', expected: identifier",
                    describe(&other)
                ))),
            },
        }
    }
}

/// Kubernetes' `NewRequirement` checks.
fn requirement(key: String, op: Op, values: Vec<String>) -> Result<Requirement, ParseError> {
    if matches!(op, Op::GreaterThan | Op::LessThan) {
        for v in &values {
            if v.parse::<i64>().is_err() {
                return Err(ParseError(format!(
                    "values[0]: Invalid value: \"{v}\": for 'Gt', 'Lt' operators, the value must be an integer"
                )));
            }
        }
    }
    for v in &values {
        validate_value(&key, v)?;
    }
    Ok(Requirement { key, op, values })
}

static NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$").unwrap_or_else(|_| unreachable!())
});
static SUBDOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
        .unwrap_or_else(|_| unreachable!())
});

/// `validation.IsQualifiedName`.
fn validate_key(key: &str) -> Result<(), ParseError> {
    let invalid = |why: &str| Err(ParseError(format!("key: Invalid value: \"{key}\": {why}")));
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if name.contains('/') {
        return invalid(
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character, with an optional DNS subdomain prefix and '/'",
        );
    }
    if let Some(prefix) = prefix
        && (prefix.is_empty() || prefix.len() > 253 || !SUBDOMAIN.is_match(prefix))
    {
        return invalid("prefix part must be a lowercase RFC 1123 subdomain");
    }
    if name.is_empty() {
        return invalid("name part must be non-empty");
    }
    if name.len() > 63 {
        return invalid("name part must be no more than 63 characters");
    }
    if !NAME.is_match(name) {
        return invalid(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
        );
    }
    Ok(())
}

/// `validation.IsValidLabelValue`.
fn validate_value(key: &str, value: &str) -> Result<(), ParseError> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > 63 || !NAME.is_match(value) {
        return Err(ParseError(format!(
            "values[{key}]: Invalid value: \"{value}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63 characters)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(condition: &str, json: &str) -> bool {
        let c = Condition::parse(condition).unwrap();
        c.requirements().iter().all(|r| r.matches(json))
    }

    const JOB: &str = r#"{"metadata":{"name":"j","labels":{"app":"x"}},"status":{"succeeded":2,"phase":"Running","conditions":[{"type":"Complete","status":"True"}],"ready":true}}"#;

    #[test]
    fn operators_over_gjson_paths() {
        assert!(all("status.succeeded > 0", JOB));
        assert!(!all("status.succeeded > 2", JOB));
        assert!(all("status.succeeded < 3", JOB));
        assert!(all("status.phase == Running", JOB));
        assert!(all("status.phase = Running", JOB));
        assert!(all("status.phase != Failed", JOB));
        assert!(all("status.missing != Failed", JOB));
        assert!(all("status.phase in (Running, Pending)", JOB));
        assert!(all("status.phase notin (Failed,Error)", JOB));
        assert!(all("status.missing notin (Failed)", JOB));
        assert!(all("status.phase", JOB));
        assert!(all("!status.failed", JOB));
        assert!(!all("status.failed", JOB));
        assert!(all("status.conditions.0.type == Complete", JOB));
        assert!(all("status.ready == true", JOB));
        assert!(all("status.phase == Running,status.succeeded > 1", JOB));
        assert!(!all("status.missing > 1", JOB));
        assert!(!all("status.phase > 1", JOB));
    }

    #[test]
    fn refuses_what_kubernetes_refuses() {
        for bad in [
            "status.phase ==",
            "status.succeeded > x",
            "status.phase in Running",
            "== x",
            "status.phase == a b",
            "status.phase == x/y",
            "-bad- == x",
        ] {
            if bad == "status.phase ==" {
                // An empty exact value is allowed: `key==` means the empty string.
                assert!(Condition::parse(bad).is_ok());
                continue;
            }
            assert!(Condition::parse(bad).is_err(), "{bad} parsed");
        }
        let err = Condition::parse("status.succeeded > x").unwrap_err();
        assert!(err.0.contains("must be an integer"), "{err}");
    }

    #[test]
    fn renders_sorted_as_kubernetes() {
        let c = Condition::parse("z in (b,a), a == 1, !x").unwrap();
        assert_eq!(c.to_string(), "a==1,!x,z in (a,b)");
    }
}
