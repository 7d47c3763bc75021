//! `--format` templates as docker users write them (Go's text/template, the part of it
//! docker's own examples use): `{{.Config.Env}}`, `{{json .Config}}`,
//! `{{index .RepoDigests 0}}`, `{{join .Config.Cmd " "}}`, `{{range .Config.Env}}…{{end}}`
//! with `{{.}}` and `{{println}}`. Values print as Go prints them (`[a b]`,
//! `map[k:v]`, `<no value>` for a missing field). Anything else is an error naming it.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Path(Vec<String>),
    Str(String),
    Int(i64),
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    /// A function (`json`, `index`, `join`, `println`, or "" for a plain value) and its
    /// arguments.
    Call(String, Vec<Arg>),
    Range(Vec<String>, Vec<Node>),
}

/// A parsed template.
#[derive(Debug)]
pub struct Template(Vec<Node>);

const FUNCTIONS: &[&str] = &["json", "index", "join", "println", "upper", "lower"];

fn parse_path(word: &str) -> Result<Vec<String>, String> {
    if word == "." {
        return Ok(Vec::new());
    }
    let rest = word
        .strip_prefix('.')
        .ok_or_else(|| format!("{word:?} is not a field (fields start with a dot: .Config)"))?;
    Ok(rest.split('.').map(String::from).collect())
}

/// Splits an action into words, keeping quoted strings whole.
fn words(action: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = action.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '"' {
            chars.next();
            let mut s = String::from("\"");
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some(o) => s.push(o),
                        None => return Err("unterminated string".into()),
                    },
                    Some('"') => break,
                    Some(o) => s.push(o),
                    None => return Err("unterminated string".into()),
                }
            }
            out.push(s);
            continue;
        }
        let mut w = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            w.push(c);
            chars.next();
        }
        out.push(w);
    }
    Ok(out)
}

fn arg(word: &str) -> Result<Arg, String> {
    if let Some(s) = word.strip_prefix('"') {
        return Ok(Arg::Str(s.to_string()));
    }
    if let Ok(n) = word.parse::<i64>() {
        return Ok(Arg::Int(n));
    }
    Ok(Arg::Path(parse_path(word)?))
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut stack: Vec<(Vec<String>, Vec<Node>)> = Vec::new();
        let mut nodes: Vec<Node> = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                nodes.push(Node::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| "an action ({{ …) is not closed with }}".to_string())?;
            let action = after[..end].trim().trim_matches('-').trim();
            rest = &after[end + 2..];
            let w = words(action)?;
            let Some(first) = w.first() else {
                return Err("an empty action {{}}".into());
            };
            match first.as_str() {
                "range" => {
                    let [_, path] = w.as_slice() else {
                        return Err("range takes one field: {{range .Config.Env}}".into());
                    };
                    stack.push((parse_path(path)?, std::mem::take(&mut nodes)));
                }
                "end" => {
                    let (path, outer) = stack
                        .pop()
                        .ok_or_else(|| "{{end}} without {{range}}".to_string())?;
                    let body = std::mem::replace(&mut nodes, outer);
                    nodes.push(Node::Range(path, body));
                }
                f if f.starts_with('.') => {
                    if w.len() > 1 {
                        return Err(format!("unexpected {:?} after {f}", w[1]));
                    }
                    nodes.push(Node::Call(String::new(), vec![arg(f)?]));
                }
                f if FUNCTIONS.contains(&f) => {
                    let args = w[1..].iter().map(|a| arg(a)).collect::<Result<_, _>>()?;
                    nodes.push(Node::Call(f.to_string(), args));
                }
                f => {
                    return Err(format!(
                        "unsupported template function {f:?} (supported: .Field, {}, range … end)",
                        FUNCTIONS.join(", ")
                    ))
                }
            }
        }
        if !rest.is_empty() {
            nodes.push(Node::Text(rest.to_string()));
        }
        if !stack.is_empty() {
            return Err("{{range}} without {{end}}".into());
        }
        Ok(Self(nodes))
    }

    /// The template applied to `data`.
    pub fn render(&self, data: &Value) -> Result<String, String> {
        let mut out = String::new();
        render(&self.0, data, &mut out)?;
        Ok(out)
    }
}

fn lookup<'a>(data: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = data;
    for p in path {
        cur = cur.get(p)?;
    }
    Some(cur)
}

fn value_of(data: &Value, a: &Arg) -> Value {
    match a {
        Arg::Path(p) => lookup(data, p).cloned().unwrap_or(Value::Null),
        Arg::Str(s) => Value::String(s.clone()),
        Arg::Int(n) => Value::from(*n),
    }
}

/// A value as Go's fmt prints it in a template.
pub fn go_print(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_print).collect::<Vec<_>>().join(" ")),
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            format!(
                "map[{}]",
                keys.iter()
                    .map(|k| format!("{k}:{}", go_print(&o[*k])))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
    }
}

fn render(nodes: &[Node], data: &Value, out: &mut String) -> Result<(), String> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Range(path, body) => match lookup(data, path) {
                Some(Value::Array(items)) => {
                    for item in items {
                        render(body, item, out)?;
                    }
                }
                Some(Value::Object(map)) => {
                    let mut keys: Vec<&String> = map.keys().collect();
                    keys.sort();
                    for k in keys {
                        render(body, &map[k], out)?;
                    }
                }
                None | Some(Value::Null) => {}
                Some(other) => return Err(format!("range over {}", go_print(other))),
            },
            Node::Call(f, args) => {
                let vals: Vec<Value> = args.iter().map(|a| value_of(data, a)).collect();
                match (f.as_str(), vals.as_slice()) {
                    ("", [v]) => out.push_str(&go_print(v)),
                    ("json", [v]) => out.push_str(&v.to_string()),
                    ("println", vs) => {
                        out.push_str(&vs.iter().map(go_print).collect::<Vec<_>>().join(" "));
                        out.push('\n');
                    }
                    ("upper", [v]) => out.push_str(&go_print(v).to_uppercase()),
                    ("lower", [v]) => out.push_str(&go_print(v).to_lowercase()),
                    ("join", [Value::Array(items), Value::String(sep)]) => {
                        out.push_str(&items.iter().map(go_print).collect::<Vec<_>>().join(sep))
                    }
                    ("index", [v, keys @ ..]) if !keys.is_empty() => {
                        let mut cur = v.clone();
                        for k in keys {
                            cur = match (&cur, k) {
                                (Value::Array(a), Value::Number(n)) => n
                                    .as_u64()
                                    .and_then(|i| a.get(i as usize))
                                    .cloned()
                                    .ok_or_else(|| format!("index {n} out of range"))?,
                                (Value::Object(o), Value::String(s)) => {
                                    o.get(s).cloned().unwrap_or(Value::Null)
                                }
                                _ => {
                                    return Err(format!("cannot index {} with {k}", go_print(&cur)))
                                }
                            };
                        }
                        out.push_str(&go_print(&cur));
                    }
                    (f, _) => return Err(format!("wrong arguments for {f}")),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn docker_style_templates() {
        let d = json!({"Id": "sha256:ab", "Config": {"Env": ["A=1", "B=2"], "Cmd": ["sh", "-c", "x"],
                       "Labels": {"b": "2", "a": "1"}}, "RepoDigests": ["r@sha256:1"], "Size": 5});
        let r = |t: &str| Template::parse(t).unwrap().render(&d).unwrap();
        assert_eq!(r("{{.Id}}"), "sha256:ab");
        assert_eq!(r("{{.Config.Env}}"), "[A=1 B=2]");
        assert_eq!(r("{{json .Config.Cmd}}"), r#"["sh","-c","x"]"#);
        assert_eq!(r("{{.Config.Labels}}"), "map[a:1 b:2]");
        assert_eq!(r("{{index .RepoDigests 0}}"), "r@sha256:1");
        assert_eq!(r(r#"{{index .Config.Labels "b"}}"#), "2");
        assert_eq!(r(r#"{{join .Config.Cmd " "}}"#), "sh -c x");
        assert_eq!(r("{{range .Config.Env}}{{println .}}{{end}}"), "A=1\nB=2\n");
        assert_eq!(r("size={{.Size}} {{.Nope}}"), "size=5 <no value>");
        assert!(Template::parse("{{printf \"%s\" .Id}}")
            .unwrap_err()
            .contains("printf"));
        assert!(Template::parse("{{.Id").is_err());
        assert!(Template::parse("{{range .X}}").is_err());
    }
}
