//! Exit codes: 0 ok, 1 internal error, 2 usage, 3 input rejected, 4 runtime missing, 5 a service
//! (store, broker) became unavailable mid-run, 130 interrupted by a signal (as shells report Ctrl-C).

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    Internal = 1,
    Usage = 2,
    InputRejected = 3,
    RuntimeMissing = 4,
    /// The store or the broker failed mid-run; the work can be resumed later (`folio reprocess`).
    Unavailable = 5,
    /// Stopped by Ctrl-C or SIGTERM before the end (128 + SIGINT).
    Interrupted = 130,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// An error that ends the command, with the exit code it maps to.
#[derive(Debug)]
pub struct CliError {
    pub code: Exit,
    pub error: anyhow::Error,
}

impl CliError {
    pub fn new(code: Exit, error: impl Into<anyhow::Error>) -> Self {
        CliError {
            code,
            error: error.into(),
        }
    }
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        CliError::new(Exit::Internal, error)
    }
}

impl From<crate::runtime::MissingRuntime> for CliError {
    fn from(e: crate::runtime::MissingRuntime) -> Self {
        CliError::new(Exit::RuntimeMissing, e)
    }
}

/// Exit code for an ingest error: the user's file (3), our runtime (4), or us (1).
pub fn ingest_exit(e: &folio_ingest::IngestError) -> Exit {
    if e.is_runtime_error() {
        Exit::RuntimeMissing
    } else if e.is_input_error() {
        Exit::InputRejected
    } else {
        Exit::Internal
    }
}
