use std::path::PathBuf;

/// Why a configuration could not be resolved. Each message names the file,
/// variable or key at fault and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}; pass --config with an existing file or create it")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "config {origin} is not valid: {message}; fix that key (see README, Config reference)"
    )]
    Invalid { origin: String, message: String },
    #[error("environment variable {var} does not name a config key (expected INSTAREC_<SECTION>_<KEY> with a section of {sections}); unset it or fix its name")]
    UnknownEnv { var: String, sections: String },
    #[error("environment variable {var} sets [{section}] {key}, which is not a config key ({message}); unset it or fix its name")]
    UnknownEnvKey {
        var: String,
        section: String,
        key: String,
        message: String,
    },
    #[error("section [{section}] is required by this command but missing from {origin}; add it (see README, Config reference)")]
    MissingSection {
        section: &'static str,
        origin: String,
    },
    #[error("encryption key: {0}")]
    Key(String),
}

impl crate::exit::ExitCode for ConfigError {
    /// Bad configuration is a usage error: nothing was changed.
    fn exit_code(&self) -> Option<u8> {
        Some(crate::exit::USAGE)
    }
}
