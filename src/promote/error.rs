//! Why promote refused or stopped. Each message names the server or
//! position and says what to do; "nothing was changed" is said only when
//! it is true.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    #[error("{addr} is not a standby (it is not replaying a log); nothing was changed. Point [standby] url at the hot standby to promote")]
    NotAStandby { addr: String },

    #[error("archive {url} has no cluster record, so there is nothing to promote from; nothing was changed. Point [archive] url at the archive the standby replays")]
    NoCluster { url: String },

    #[error("[primary] url and [standby] url both name {addr}; nothing was changed. Point [standby] url at the standby")]
    SameServer { addr: String },

    #[error("--planned needs the old primary {addr} reachable, but: {reason}; nothing was changed. Run without --planned to fail over")]
    PlannedUnreachable { addr: String, reason: String },

    #[error("the archive did not reach the old primary's final position {target} within {timeout:?} (it ends at {reached}); the old primary was made writable again and nothing else changed. Check that `instarec ship` runs, or raise [promote] drain_timeout")]
    ArchiveDrain {
        target: String,
        reached: String,
        timeout: Duration,
    },

    #[error("standby {addr} did not replay up to the old primary's final position {target} within {timeout:?} (it is at {reached}); the old primary was made writable again and nothing else changed. Check the standby's log and restore_command, or raise [promote] drain_timeout")]
    StandbyDrain {
        addr: String,
        target: String,
        reached: String,
        timeout: Duration,
    },

    #[error("--stop-old command {command:?} failed: {reason}; the old primary is read-only and the standby was not promoted. Stop it by hand and run promote again, or run without --stop-old")]
    StopOld { command: String, reason: String },

    #[error("promoted {new_primary} in epoch {epoch}, but no write was accepted through {path} within {timeout:?}: {reason}; clients may not reach the new primary: check the cutover path")]
    NoWrite {
        new_primary: String,
        epoch: u64,
        path: String,
        timeout: Duration,
        reason: String,
    },
}
