//! Configuration: a TOML file, overridden by `INSTAREC_<SECTION>_<KEY>`
//! environment variables, overridden by CLI flags. Unknown keys are errors.

mod archive_settings;
mod derived;
mod error;
mod load;
mod primary_conn;
mod secret;
mod sections;
mod units;

pub use error::ConfigError;
pub use load::{ConfigSources, DEFAULT_CONFIG_PATH};
pub use secret::{mask_url_password, Secret, SecretUrl};
pub use sections::{
    ArchiveSection, Config, CutoverMethods, CutoverSection, HaproxySection, HookSection,
    MetricsSection, PgbouncerSection, PrimarySection, PromoteSection, S3Section, StandbySection,
    SynchronousAfterPromote,
};
pub use units::{ByteSize, HumanDuration};
