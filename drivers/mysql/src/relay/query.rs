//! The little SQL a replica's IO thread sends at connect, parsed just enough
//! to answer it: `SET @var = value[, ...]`, `SELECT expr [AS name][, ...]`
//! and `SHOW VARIABLES LIKE 'pattern'`. Anything else is `Other`.

/// A value expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Str(String),
    Number(String),
    Null,
    /// `@name`, lowercased (user variables ignore case).
    UserVar(String),
    /// `@@[global.|session.]name`, lowercased, scope dropped.
    SystemVar(String),
    /// `NAME(args)`, name uppercased; arguments are not interpreted.
    Function(String),
    Raw(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetTarget {
    UserVar(String),
    /// A system variable, or `NAMES`/`CHARACTER SET`.
    SystemVar(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub target: SetTarget,
    pub value: Expr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectItem {
    pub expr: Expr,
    /// The column name: the alias, or the expression as written.
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    Set(Vec<Assignment>),
    Select(Vec<SelectItem>),
    /// The LIKE pattern, as written (may hold % and _).
    ShowVariables(String),
    Other(String),
}

impl Query {
    pub fn parse(sql: &str) -> Query {
        let text = sql.trim().trim_end_matches(';').trim();
        let other = || Query::Other(text.to_string());
        if let Some(rest) = strip_keyword(text, "SET") {
            let mut assignments = Vec::new();
            for part in split_top_level(rest) {
                match parse_assignment(part) {
                    Some(a) => assignments.push(a),
                    None => return other(),
                }
            }
            if assignments.is_empty() {
                return other();
            }
            return Query::Set(assignments);
        }
        if let Some(rest) = strip_keyword(text, "SELECT") {
            if contains_keyword(rest, "FROM") {
                return other();
            }
            let items: Vec<SelectItem> = split_top_level(rest)
                .into_iter()
                .map(parse_select_item)
                .collect();
            if items.is_empty() {
                return other();
            }
            return Query::Select(items);
        }
        if let Some(rest) = strip_keyword(text, "SHOW") {
            let rest = strip_keyword(rest, "GLOBAL")
                .or_else(|| strip_keyword(rest, "SESSION"))
                .unwrap_or(rest);
            if let Some(rest) = strip_keyword(rest, "VARIABLES") {
                if let Some(pattern) = strip_keyword(rest, "LIKE") {
                    if let Expr::Str(p) = parse_expr(pattern) {
                        return Query::ShowVariables(p);
                    }
                }
            }
        }
        other()
    }
}

/// `text` without a leading case-insensitive `keyword` and the whitespace
/// after it; None if it does not start with the keyword as a whole word.
fn strip_keyword<'a>(text: &'a str, keyword: &str) -> Option<&'a str> {
    let head = text.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = &text[keyword.len()..];
    match rest.chars().next() {
        None => Some(rest),
        Some(c) if c.is_whitespace() => Some(rest.trim_start()),
        _ => None,
    }
}

fn contains_keyword(text: &str, keyword: &str) -> bool {
    text.split_whitespace()
        .any(|w| w.eq_ignore_ascii_case(keyword))
}

/// Splits at commas outside quotes and parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' | '`' => quote = Some(c),
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = text[start..].trim();
    if !last.is_empty() || !parts.is_empty() {
        parts.push(last);
    }
    parts
}

fn parse_assignment(part: &str) -> Option<Assignment> {
    if let Some(charset) =
        strip_keyword(part, "NAMES").or_else(|| strip_keyword(part, "CHARACTER SET"))
    {
        return Some(Assignment {
            target: SetTarget::SystemVar("names".into()),
            value: parse_expr(charset),
        });
    }
    let (name, value) = match part.find(":=").or_else(|| part.find('=')) {
        Some(at) => {
            let skip = if part[at..].starts_with(":=") { 2 } else { 1 };
            (part[..at].trim(), part[at + skip..].trim())
        }
        None => return None,
    };
    let target = match parse_expr(name) {
        Expr::UserVar(v) => SetTarget::UserVar(v),
        Expr::SystemVar(v) => SetTarget::SystemVar(v),
        Expr::Raw(v) => {
            let v = strip_keyword(&v, "GLOBAL")
                .or_else(|| strip_keyword(&v, "SESSION"))
                .unwrap_or(&v)
                .to_ascii_lowercase();
            SetTarget::SystemVar(v)
        }
        _ => return None,
    };
    Some(Assignment {
        target,
        value: parse_expr(value),
    })
}

fn parse_select_item(part: &str) -> SelectItem {
    // `expr AS alias` (the alias may be quoted).
    let words: Vec<&str> = part.rsplitn(3, char::is_whitespace).collect();
    if words.len() == 3 && words[1].eq_ignore_ascii_case("AS") {
        let label = unquote(words[0]).unwrap_or_else(|| words[0].to_string());
        return SelectItem {
            expr: parse_expr(words[2]),
            label,
        };
    }
    SelectItem {
        expr: parse_expr(part),
        label: part.to_string(),
    }
}

fn parse_expr(text: &str) -> Expr {
    let text = text.trim();
    if let Some(s) = unquote(text) {
        if !text.starts_with('`') {
            return Expr::Str(s);
        }
    }
    if text.eq_ignore_ascii_case("NULL") {
        return Expr::Null;
    }
    if let Some(name) = text.strip_prefix("@@") {
        let lower = name.to_ascii_lowercase();
        let bare = ["global.", "session.", "local."]
            .iter()
            .find_map(|scope| lower.strip_prefix(scope))
            .unwrap_or(&lower);
        return Expr::SystemVar(bare.trim_matches('`').to_string());
    }
    if let Some(name) = text.strip_prefix('@') {
        let name = unquote(name).unwrap_or_else(|| name.to_string());
        return Expr::UserVar(name.to_ascii_lowercase());
    }
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || c == '-' || c == '.')
    {
        return Expr::Number(text.to_string());
    }
    if let Some(open) = text.find('(') {
        let name = &text[..open];
        if text.ends_with(')')
            && !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Expr::Function(name.to_ascii_uppercase());
        }
    }
    Expr::Raw(text.to_string())
}

/// The content of a '...', "..." or `...` literal, with '' and \x escapes undone.
fn unquote(text: &str) -> Option<String> {
    let q = text
        .chars()
        .next()
        .filter(|c| matches!(c, '\'' | '"' | '`'))?;
    let inner = text.strip_prefix(q)?.strip_suffix(q)?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && q != '`' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('0') => out.push('\0'),
                Some(other) => out.push(other),
                None => return None,
            }
        } else if c == q {
            // A doubled quote stands for one; a lone one ends the literal early.
            if chars.next() != Some(q) {
                return None;
            }
            out.push(q);
        } else {
            out.push(c);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, value: Expr) -> Assignment {
        Assignment {
            target: SetTarget::UserVar(name.into()),
            value,
        }
    }

    #[test]
    fn what_a_mariadb_replica_sends() {
        assert_eq!(
            Query::parse("SET @master_heartbeat_period= 30000001024"),
            Query::Set(vec![user(
                "master_heartbeat_period",
                Expr::Number("30000001024".into())
            )])
        );
        assert_eq!(
            Query::parse("SET @master_binlog_checksum= @@global.binlog_checksum"),
            Query::Set(vec![user(
                "master_binlog_checksum",
                Expr::SystemVar("binlog_checksum".into())
            )])
        );
        assert_eq!(
            Query::parse("SET @slave_connect_state='0-1-5,1-1-3'"),
            Query::Set(vec![user(
                "slave_connect_state",
                Expr::Str("0-1-5,1-1-3".into())
            )])
        );
        assert_eq!(
            Query::parse("SELECT UNIX_TIMESTAMP()"),
            Query::Select(vec![SelectItem {
                expr: Expr::Function("UNIX_TIMESTAMP".into()),
                label: "UNIX_TIMESTAMP()".into(),
            }])
        );
        assert_eq!(
            Query::parse("SELECT @@GLOBAL.SERVER_ID"),
            Query::Select(vec![SelectItem {
                expr: Expr::SystemVar("server_id".into()),
                label: "@@GLOBAL.SERVER_ID".into(),
            }])
        );
        assert_eq!(
            Query::parse("select @master_binlog_checksum;"),
            Query::Select(vec![SelectItem {
                expr: Expr::UserVar("master_binlog_checksum".into()),
                label: "@master_binlog_checksum".into(),
            }])
        );
        assert_eq!(
            Query::parse("SHOW VARIABLES LIKE 'SERVER_ID'"),
            Query::ShowVariables("SERVER_ID".into())
        );
    }

    /// Texts from mysql-server's sql/rpl_replica.cc (8.0.26+), as a
    /// source's general log shows them.
    #[test]
    fn what_a_mysql_8_replica_sends() {
        let select = |sql: &str, expr: Expr| {
            assert_eq!(
                Query::parse(sql),
                Query::Select(vec![SelectItem {
                    expr,
                    label: sql["SELECT ".len()..].into(),
                }]),
                "{sql}"
            )
        };
        select(
            "SELECT @@GLOBAL.GTID_MODE",
            Expr::SystemVar("gtid_mode".into()),
        );
        select(
            "SELECT @@GLOBAL.SERVER_UUID",
            Expr::SystemVar("server_uuid".into()),
        );
        select(
            "SELECT @source_binlog_checksum",
            Expr::UserVar("source_binlog_checksum".into()),
        );
        assert_eq!(
            Query::parse(
                "SET @master_heartbeat_period = 30000001024, @source_heartbeat_period = 30000001024"
            ),
            Query::Set(vec![
                user("master_heartbeat_period", Expr::Number("30000001024".into())),
                user("source_heartbeat_period", Expr::Number("30000001024".into())),
            ])
        );
        assert_eq!(
            Query::parse("SET @master_binlog_checksum = @@global.binlog_checksum, @source_binlog_checksum = @@global.binlog_checksum"),
            Query::Set(vec![
                user("master_binlog_checksum", Expr::SystemVar("binlog_checksum".into())),
                user("source_binlog_checksum", Expr::SystemVar("binlog_checksum".into())),
            ])
        );
        let uuid = "f8c09b6f-6342-11ec-9e68-000c2943eee1";
        assert_eq!(
            Query::parse(&format!(
                "SET @slave_uuid = '{uuid}', @replica_uuid = '{uuid}'"
            )),
            Query::Set(vec![
                user("slave_uuid", Expr::Str(uuid.into())),
                user("replica_uuid", Expr::Str(uuid.into())),
            ])
        );
        assert_eq!(
            Query::parse("SHOW VARIABLES LIKE 'SERVER_UUID'"),
            Query::ShowVariables("SERVER_UUID".into())
        );
    }

    #[test]
    fn several_assignments_quotes_and_aliases() {
        assert_eq!(
            Query::parse("SET NAMES latin1, @a := 'it''s', @@session.sql_mode='', @b=NULL"),
            Query::Set(vec![
                Assignment {
                    target: SetTarget::SystemVar("names".into()),
                    value: Expr::Raw("latin1".into()),
                },
                user("a", Expr::Str("it's".into())),
                Assignment {
                    target: SetTarget::SystemVar("sql_mode".into()),
                    value: Expr::Str(String::new()),
                },
                user("b", Expr::Null),
            ])
        );
        assert_eq!(
            Query::parse("SET GLOBAL x = 1"),
            Query::Set(vec![Assignment {
                target: SetTarget::SystemVar("x".into()),
                value: Expr::Number("1".into()),
            }])
        );
        assert_eq!(
            Query::parse("SELECT @@version AS v, 'a,b'"),
            Query::Select(vec![
                SelectItem {
                    expr: Expr::SystemVar("version".into()),
                    label: "v".into(),
                },
                SelectItem {
                    expr: Expr::Str("a,b".into()),
                    label: "'a,b'".into(),
                },
            ])
        );
    }

    #[test]
    fn everything_else_is_other() {
        for sql in [
            "SELECT * FROM mysql.user",
            "SHOW SLAVE HOSTS",
            "SELECTX 1",
            "SET",
            "DROP TABLE t",
            "",
        ] {
            assert!(matches!(Query::parse(sql), Query::Other(_)), "{sql:?}");
        }
        assert!(matches!(Query::parse("SET @a"), Query::Other(_)));
        assert_eq!(
            Query::parse("SET @a='unterminated"),
            Query::Set(vec![user("a", Expr::Raw("'unterminated".into()))])
        );
    }
}
