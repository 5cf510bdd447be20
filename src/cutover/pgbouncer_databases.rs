//! The `[databases]` include file instarec owns for pgbouncer: one line per
//! database, `name = host=H port=P dbname=D ...`. Cutover rewrites host and
//! port of one line and keeps everything else as it was.

use super::HostPort;

/// `text` with `database`'s line pointing at `target`; an error when there
/// is no such line (there would be no dbname or user to keep).
pub fn repoint(text: &str, database: &str, target: &HostPort) -> Result<String, String> {
    let mut in_databases = false;
    let mut found = false;
    let mut out = String::with_capacity(text.len() + 32);
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let ending = &line[body.len()..];
        let trimmed = body.trim();
        if trimmed.starts_with('[') {
            in_databases = trimmed.eq_ignore_ascii_case("[databases]");
        } else if in_databases && !found {
            if let Some((name, value)) = trimmed.split_once('=') {
                if unquote_name(name.trim()) == database {
                    let mut params = parse_connstr(value.trim())?;
                    set(&mut params, "host", &target.host);
                    set(&mut params, "port", &target.port.to_string());
                    out.push_str(&format!(
                        "{} = {}{ending}",
                        name.trim(),
                        format_connstr(&params)
                    ));
                    found = true;
                    continue;
                }
            }
        }
        out.push_str(line);
    }
    if !found {
        return Err(format!(
            "no `{database} = host=... dbname=...` line under [databases]; add one for the current primary"
        ));
    }
    Ok(out)
}

fn unquote_name(name: &str) -> &str {
    name.strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .unwrap_or(name)
}

fn set(params: &mut Vec<(String, String)>, key: &str, value: &str) {
    match params.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value.to_string(),
        None => params.push((key.to_string(), value.to_string())),
    }
}

/// libpq-style `key=value key='quoted \' value'` pairs, in order.
fn parse_connstr(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut params = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(params);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!("`{key}` has no `=value` in {text:?}"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(format!("unfinished escape in {text:?}")),
                    },
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(format!("unclosed quote in {text:?}")),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                value.push(c);
            }
        }
        params.push((key, value));
    }
}

fn format_connstr(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| {
            if v.is_empty() || v.contains(|c: char| c.is_whitespace() || c == '\'' || c == '\\') {
                format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repoints_one_line_and_keeps_the_rest() {
        let before = "; written by instarec\n[databases]\nother = host=10.0.0.9 port=5432 dbname=x\napp = host=10.0.0.1 port=5432 dbname=app user=svc application_name='my app'\n";
        let after = repoint(before, "app", &HostPort::new("10.0.0.2", 5433)).unwrap();
        assert_eq!(
            after,
            "; written by instarec\n[databases]\nother = host=10.0.0.9 port=5432 dbname=x\napp = host=10.0.0.2 port=5433 dbname=app user=svc application_name='my app'\n"
        );
    }

    #[test]
    fn adds_host_and_port_when_the_line_had_none() {
        let after = repoint(
            "[databases]\napp = dbname=app\n",
            "app",
            &HostPort::new("db2", 6000),
        )
        .unwrap();
        assert_eq!(after, "[databases]\napp = dbname=app host=db2 port=6000\n");
    }

    #[test]
    fn a_missing_line_or_bad_quoting_is_an_error() {
        let target = HostPort::new("db2", 5432);
        assert!(repoint("[databases]\nother = host=a\n", "app", &target).is_err());
        assert!(repoint("[pgbouncer]\napp = host=a\n", "app", &target).is_err());
        assert!(repoint("[databases]\napp = host='a\n", "app", &target).is_err());
        assert!(repoint("[databases]\napp = host\n", "app", &target).is_err());
    }
}
