//! Output parameters by `jsonPath`: kubectl's JSONPath templates (`kubectl get -o jsonpath=...`,
//! which Argo's executor runs), evaluated on the object in process.
//!
//! The template layer is kubectl's: text outside braces is copied, `{PATH}` prints what the path
//! selects (several results separated by a space), `{"literal"}` prints an escaped string
//! (`{"\n"}`), `{range PATH}...{end}` repeats its body for each result with paths relative to it.
//! Inside braces a path is RFC 9535 JSONPath (the `serde_json_path` crate) with kubectl's
//! leading `$` optional: `.status.phase`, `.items[0]`, `.items[*].metadata.name`,
//! `..name`, `.spec.containers[?(@.name=="main")].image`, slices and unions. What kubectl has
//! beyond that (its `==` on unquoted words, `{.a}{.b}` templates as `-o jsonpath` without braces)
//! is refused with the parser's message. A path that selects nothing prints nothing, as kubectl
//! does (it allows missing keys); strings print bare, numbers and booleans as text, `null` as
//! `null`, objects and arrays as compact JSON with sorted keys (Go's `json.Marshal`).

use serde_json::Value;
use serde_json_path::JsonPath;

use crate::text::go_json;

/// A parsed kubectl JSONPath template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Path(JsonPath),
    Range(JsonPath, Vec<Node>),
}

/// Why a JSONPath template does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid jsonPath {template:?}: {reason}")]
pub struct JsonPathError {
    template: String,
    reason: String,
}

impl Template {
    /// Parses a template such as `{.status.phase}` or `{range .items[*]}{.name}{"\n"}{end}`.
    pub fn parse(template: &str) -> Result<Self, JsonPathError> {
        let error = |reason: String| JsonPathError {
            template: template.to_owned(),
            reason,
        };
        // The open ranges: each frame collects the nodes of its body.
        let mut frames: Vec<(Option<JsonPath>, Vec<Node>)> = vec![(None, Vec::new())];
        let mut rest = template;
        while !rest.is_empty() {
            let Some(open) = rest.find('{') else {
                push(&mut frames, Node::Text(rest.to_owned()));
                break;
            };
            if open > 0 {
                push(&mut frames, Node::Text(rest[..open].to_owned()));
            }
            let inside = &rest[open + 1..];
            let close = closing_brace(inside).ok_or_else(|| error("unclosed action".into()))?;
            let action = inside[..close].trim();
            rest = &inside[close + 1..];
            if let Some(path) = action.strip_prefix("range ") {
                let path = parse_path(path.trim()).map_err(error)?;
                frames.push((Some(path), Vec::new()));
            } else if action == "end" {
                let (Some(path), body) = frames.pop().unwrap_or((None, Vec::new())) else {
                    return Err(error("{end} without {range}".into()));
                };
                push(&mut frames, Node::Range(path, body));
            } else if action.starts_with('"') {
                push(&mut frames, Node::Text(unquote(action).map_err(error)?));
            } else {
                push(&mut frames, Node::Path(parse_path(action).map_err(error)?));
            }
        }
        if frames.len() != 1 {
            return Err(error("{range} without {end}".into()));
        }
        let nodes = frames.pop().map(|(_, nodes)| nodes).unwrap_or_default();
        Ok(Self { nodes })
    }

    /// Renders the template over `object`.
    pub fn render(&self, object: &Value) -> String {
        let mut out = String::new();
        render(&self.nodes, object, &mut out);
        out
    }
}

fn push(frames: &mut [(Option<JsonPath>, Vec<Node>)], node: Node) {
    if let Some((_, nodes)) = frames.last_mut() {
        nodes.push(node);
    }
}

fn render(nodes: &[Node], object: &Value, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Path(path) => {
                let texts: Vec<String> = path.query(object).all().into_iter().map(text).collect();
                out.push_str(&texts.join(" "));
            }
            Node::Range(path, body) => {
                for item in path.query(object).all() {
                    render(body, item, out);
                }
            }
        }
    }
}

/// How kubectl prints one result.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(_) | Value::Object(_) => go_json(value),
    }
}

/// The index of the `}` closing an action, skipping quoted strings (a filter may compare with
/// `"}"`).
fn closing_brace(inside: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in inside.char_indices() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '\'' => quote = Some(c),
                '}' => return Some(i),
                _ => {}
            },
        }
    }
    None
}

/// A path inside braces, `$` optional as in kubectl.
fn parse_path(path: &str) -> Result<JsonPath, String> {
    let rfc = if path.starts_with('$') {
        path.to_owned()
    } else if path.starts_with('.') || path.starts_with('[') {
        format!("${path}")
    } else {
        format!("$.{path}")
    };
    JsonPath::parse(&rfc).map_err(|e| format!("{path:?}: {e}"))
}

/// A double-quoted literal with Go's escapes (`\n`, `\t`, `\"`, `\\`), through JSON's.
fn unquote(literal: &str) -> Result<String, String> {
    serde_json::from_str(literal).map_err(|e| format!("bad string literal {literal}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(template: &str, object: &Value) -> String {
        Template::parse(template).unwrap().render(object)
    }

    #[test]
    fn kubectl_templates() {
        let pod = json!({"metadata": {"name": "p", "labels": {"b": "2", "a": "1"}},
            "spec": {"containers": [{"name": "main", "image": "alpine"}, {"name": "side", "image": "nginx"}]},
            "status": {"phase": "Running", "count": 3, "ok": true}});
        assert_eq!(render("{.status.phase}", &pod), "Running");
        assert_eq!(render("{.metadata.name}", &pod), "p");
        assert_eq!(render("{$.status.count}", &pod), "3");
        assert_eq!(render("{.status.ok}", &pod), "true");
        assert_eq!(render("{.metadata.labels}", &pod), r#"{"a":"1","b":"2"}"#);
        assert_eq!(render("{.spec.containers[*].name}", &pod), "main side");
        assert_eq!(
            render(r#"{.spec.containers[?(@.name=="side")].image}"#, &pod),
            "nginx"
        );
        assert_eq!(
            render(
                r#"{range .spec.containers[*]}{.name}={.image}{"\n"}{end}"#,
                &pod
            ),
            "main=alpine\nside=nginx\n"
        );
        assert_eq!(render("name: {.metadata.name}!", &pod), "name: p!");
        assert_eq!(render("{.status.missing}", &pod), "");
        assert_eq!(render("{.spec.containers[-1].name}", &pod), "side");
    }

    #[test]
    fn bad_templates_are_refused() {
        assert!(Template::parse("{.status.phase").is_err());
        assert!(Template::parse("{range .a[*]}{.b}").is_err());
        assert!(Template::parse("{end}").is_err());
        assert!(Template::parse("{.a[?(@.b==]}").is_err());
    }
}
