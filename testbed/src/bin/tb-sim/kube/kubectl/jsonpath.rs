//! The part of kubectl's JSONPath that scripts use: `{.a.b}`, `{.items[*].metadata.name}`,
//! `{.items[0]}`, `['dotted.key']`, filters `[?(@.type=="Ready")]`, string literals
//! `{"\n"}` and `{range .items[*]}...{end}`.

use serde_json::Value;

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Expr(String),
    Range(String, Vec<Node>),
}

/// Renders `template` against `root`.
pub fn render(template: &str, root: &Value) -> Result<String, String> {
    let tokens = tokenize(template)?;
    let mut pos = 0;
    let nodes = parse(&tokens, &mut pos, false)?;
    let mut out = String::new();
    exec(&nodes, root, root, &mut out)?;
    Ok(out)
}

#[derive(Debug, Clone)]
enum Tok {
    Text(String),
    Block(String),
}

fn tokenize(t: &str) -> Result<Vec<Tok>, String> {
    let mut out = vec![];
    let mut text = String::new();
    let chars: Vec<char> = t.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '{' {
            if !text.is_empty() {
                out.push(Tok::Text(std::mem::take(&mut text)));
            }
            let mut j = i + 1;
            let mut in_str: Option<char> = None;
            let mut block = String::new();
            while j < chars.len() {
                let c = chars[j];
                match in_str {
                    Some(q) if c == q => in_str = None,
                    Some(_) if c == '\\' && j + 1 < chars.len() => {
                        block.push(c);
                        j += 1;
                        block.push(chars[j]);
                        j += 1;
                        continue;
                    }
                    None if c == '"' || c == '\'' => in_str = Some(c),
                    None if c == '}' => break,
                    _ => {}
                }
                block.push(c);
                j += 1;
            }
            if j >= chars.len() {
                return Err("unclosed action".into());
            }
            out.push(Tok::Block(block.trim().to_string()));
            i = j + 1;
        } else {
            text.push(chars[i]);
            i += 1;
        }
    }
    if !text.is_empty() {
        out.push(Tok::Text(text));
    }
    Ok(out)
}

fn parse(toks: &[Tok], pos: &mut usize, in_range: bool) -> Result<Vec<Node>, String> {
    let mut out = vec![];
    while *pos < toks.len() {
        let t = toks[*pos].clone();
        *pos += 1;
        match t {
            Tok::Text(s) => out.push(Node::Text(s)),
            Tok::Block(b) if b == "end" => {
                if in_range {
                    return Ok(out);
                }
                return Err("not in range, nothing to end".into());
            }
            Tok::Block(b) if b.starts_with("range ") => {
                let expr = b["range ".len()..].trim().to_string();
                let body = parse(toks, pos, true)?;
                out.push(Node::Range(expr, body));
            }
            Tok::Block(b) => {
                if let Some(lit) = literal(&b) {
                    out.push(Node::Text(lit));
                } else {
                    out.push(Node::Expr(b));
                }
            }
        }
    }
    if in_range {
        return Err("unexpected EOF: range without end".into());
    }
    Ok(out)
}

fn literal(b: &str) -> Option<String> {
    let q = b.chars().next()?;
    if (q != '"' && q != '\'') || !b.ends_with(q) || b.len() < 2 {
        return None;
    }
    let inner = &b[1..b.len() - 1];
    Some(
        inner
            .replace("\\n", "\n")
            .replace("\\t", "\t")
            .replace("\\\"", "\""),
    )
}

fn exec(nodes: &[Node], root: &Value, cur: &Value, out: &mut String) -> Result<(), String> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Expr(e) => {
                let vals = eval(e, root, cur)?;
                let parts: Vec<String> = vals.iter().map(show).collect();
                out.push_str(&parts.join(" "));
            }
            Node::Range(e, body) => {
                for v in eval(e, root, cur)? {
                    exec(body, root, &v, out)?;
                }
            }
        }
    }
    Ok(())
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

/// Evaluates a path expression to its results.
pub fn eval(expr: &str, root: &Value, cur: &Value) -> Result<Vec<Value>, String> {
    let e = expr.trim();
    let (mut vals, rest) = if let Some(r) = e.strip_prefix('$') {
        (vec![root.clone()], r)
    } else if let Some(r) = e.strip_prefix('@') {
        (vec![cur.clone()], r)
    } else {
        (vec![cur.clone()], e)
    };
    let chars: Vec<char> = rest.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                let key: String = chars[start..i].iter().collect();
                if key.is_empty() {
                    continue;
                }
                vals = step_key(&vals, &key);
            }
            '[' => {
                let mut depth = 0;
                let start = i + 1;
                while i < chars.len() {
                    if chars[i] == '[' {
                        depth += 1;
                    } else if chars[i] == ']' {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    i += 1;
                }
                let inner: String = chars[start..i.min(chars.len())].iter().collect();
                i += 1;
                vals = step_bracket(&vals, inner.trim(), root)?;
            }
            c => {
                return Err(format!(
                    "unrecognized character in action: U+{:04X} '{c}'",
                    c as u32
                ))
            }
        }
    }
    Ok(vals)
}

fn step_key(vals: &[Value], key: &str) -> Vec<Value> {
    vals.iter()
        .filter_map(|v| match key {
            "*" => Some(match v {
                Value::Object(m) => m.values().cloned().collect::<Vec<_>>(),
                Value::Array(a) => a.clone(),
                _ => vec![],
            }),
            _ => v.get(key).map(|x| vec![x.clone()]),
        })
        .flatten()
        .collect()
}

fn step_bracket(vals: &[Value], inner: &str, root: &Value) -> Result<Vec<Value>, String> {
    if let Some(k) = literal(inner) {
        return Ok(step_key(vals, &k));
    }
    if inner == "*" {
        return Ok(step_key(vals, "*"));
    }
    if let Some(f) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
        let mut out = vec![];
        for v in vals {
            for item in v.as_array().cloned().unwrap_or_default() {
                if filter(f, root, &item)? {
                    out.push(item);
                }
            }
        }
        return Ok(out);
    }
    if let Ok(n) = inner.parse::<i64>() {
        return Ok(vals
            .iter()
            .filter_map(|v| {
                let a = v.as_array()?;
                let idx = if n < 0 { a.len() as i64 + n } else { n };
                a.get(usize::try_from(idx).ok()?).cloned()
            })
            .collect());
    }
    if let Some((a, b)) = inner.split_once(':') {
        let mut out = vec![];
        for v in vals {
            let arr = v.as_array().cloned().unwrap_or_default();
            let len = arr.len() as i64;
            let norm = |s: &str, d: i64| -> i64 {
                let x = s.trim().parse::<i64>().unwrap_or(d);
                (if x < 0 { len + x } else { x }).clamp(0, len)
            };
            let (s, e) = (norm(a, 0), norm(b, len));
            if s < e {
                out.extend(arr[s as usize..e as usize].iter().cloned());
            }
        }
        return Ok(out);
    }
    Err(format!("invalid array index {inner}"))
}

fn filter(f: &str, root: &Value, item: &Value) -> Result<bool, String> {
    for op in ["==", "!="] {
        if let Some((l, r)) = f.split_once(op) {
            let lv = eval(l.trim(), root, item)?;
            let r = r.trim();
            let rv = match literal(r) {
                Some(s) => Value::String(s),
                None => serde_json::from_str(r).unwrap_or(Value::String(r.into())),
            };
            let eq = lv.first() == Some(&rv);
            return Ok(if op == "==" { eq } else { !eq });
        }
    }
    Ok(!eval(f, root, item)?.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths() {
        let list = json!({"items": [
            {"metadata": {"name": "a", "labels": {"node-role.kubernetes.io/control-plane": ""}},
             "status": {"nodeInfo": {"kubeletVersion": "v1.34.2"},
                        "conditions": [{"type": "Ready", "status": "True"}]}},
            {"metadata": {"name": "b"}, "status": {"nodeInfo": {"kubeletVersion": "v1.33.1"},
                        "conditions": [{"type": "Ready", "status": "False"}]}}]});
        assert_eq!(render("{.items[*].metadata.name}", &list).unwrap(), "a b");
        assert_eq!(
            render("{.items[0].status.nodeInfo.kubeletVersion}", &list).unwrap(),
            "v1.34.2"
        );
        assert_eq!(
            render("{range .items[*]}{.metadata.name}{\"\\t\"}{.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}", &list).unwrap(),
            "a\tTrue\nb\tFalse\n"
        );
        assert_eq!(
            render(
                "{.items[0].metadata.labels['node-role.kubernetes.io/control-plane']}x",
                &list
            )
            .unwrap(),
            "x"
        );
        assert_eq!(
            render("{.status.nodeInfo.kubeletVersion}", &list["items"][1]).unwrap(),
            "v1.33.1"
        );
        assert_eq!(render("v={.nope}", &list).unwrap(), "v=");
    }
}
