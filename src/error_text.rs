//! The one line `instarec` prints for a failed command: the error and its
//! causes, each said once. Many errors already quote their cause in their
//! own message ("cannot read x: No such file…"), so a cause whose text is
//! already in the line is not repeated.

pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        let text = text.trim();
        if text.is_empty() || line.contains(text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read config file x.toml: {source}; pass --config")]
    struct Read {
        source: std::io::Error,
    }

    #[test]
    fn a_quoted_cause_is_said_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let quoted = io.to_string();
        let err = anyhow::Error::from(Read { source: io }).context("loading the config");
        let line = one_line(&err);
        assert_eq!(line.matches(&quoted).count(), 1, "{line}");
        assert!(
            line.starts_with("loading the config: cannot read"),
            "{line}"
        );
    }
}
