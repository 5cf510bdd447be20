//! Log output: human text or JSON lines on stderr, verbosity from -v/-q.

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Colour codes only for a person at a terminal, and never with NO_COLOR
/// set (https://no-color.org): piped logs stay plain text.
fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `verbosity` is the count of -v minus the count of -q; 0 is info.
/// INSTAREC_LOG (an EnvFilter directive) overrides it.
pub fn init(format: LogFormat, verbosity: i8) {
    let level = match verbosity {
        i8::MIN..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("INSTAREC_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "warn,instarec={level},instarec_postgres={level},instarec_mysql={level}"
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour_on_stderr())
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
