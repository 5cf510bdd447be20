use clap::Parser;
use instarec::cli::{run, Cli};
use instarec::logging::LogFormat;
use instarec::{error_text, exit, logging};
use std::process::ExitCode;

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    let log_format = cli.log_format;
    logging::init(log_format, cli.verbosity());
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(err) => {
            // An expected outcome with its own exit code (wal-fetch's
            // "absent") carries no message, to keep the server log quiet.
            let message = error_text::one_line(&err);
            if !message.is_empty() {
                match log_format {
                    // One JSON line like every other log line, so a log
                    // shipper parses the failure too.
                    LogFormat::Json => {
                        tracing::error!(exit_code = exit::code_for(&err), "{message}")
                    }
                    LogFormat::Text => eprintln!("error: {message}"),
                }
            }
            ExitCode::from(exit::code_for(&err))
        }
    }
}

/// glibc keeps freed 16 MiB segment buffers in its arenas, so RSS grows to
/// several segments. Large blocks go to mmap (returned to the OS on free)
/// and the arena count stays small. Measured: ship RSS under load fell from
/// ~90 MiB to ~32 MiB (docs/benchmarks.md).
fn tune_allocator() {
    // SAFETY: mallopt only changes allocator parameters; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
