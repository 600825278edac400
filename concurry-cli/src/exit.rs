//! The exit codes scripts can trust, and the error that carries one.

use std::fmt;
use std::process::ExitCode;

/// Why a command failed, and so with which code the process exits.
#[derive(Debug)]
pub(crate) enum Failure {
    /// 1: what was asked for does not exist (e.g. no live node of that name).
    NotFound(String),
    /// 2: the arguments are wrong (clap exits with 2 itself for those it can check).
    Usage(String),
    /// 3: the server could not be reached, or refused us (address, credentials, TLS).
    Connection(String),
    /// 4: anything else (an output that could not be written, a wait that ran out, ...).
    Other(String),
    /// 5: the task asked about failed (panicked, cancelled, dead-lettered, could not run).
    TaskFailed(String),
}

impl Failure {
    /// The process's exit code for this failure.
    pub(crate) fn code(&self) -> ExitCode {
        ExitCode::from(match self {
            Failure::NotFound(_) => 1,
            Failure::Usage(_) => 2,
            Failure::Connection(_) => 3,
            Failure::Other(_) => 4,
            Failure::TaskFailed(_) => 5,
        })
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::NotFound(m)
            | Failure::Usage(m)
            | Failure::Connection(m)
            | Failure::Other(m)
            | Failure::TaskFailed(m) => f.write_str(m),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Other(format!("could not write the output: {e}"))
    }
}

impl From<serde_json::Error> for Failure {
    fn from(e: serde_json::Error) -> Self {
        Failure::Other(format!("could not write the output: {e}"))
    }
}
