//! Error kinds that map to exit codes: what the user must fix, versus what failed while running.

use std::fmt;

/// Exit code for invalid input (a flag, a file, a value the user can fix).
pub const EXIT_USAGE: i32 = 2;
/// Exit code for a run that finished but with some levels failed or missing.
pub const EXIT_INCOMPLETE: i32 = 3;
/// Exit code for any other failure.
pub const EXIT_FAILURE: i32 = 1;

/// An error the user can fix by changing the command line or an input file.
/// Its message names the flag, file or value and says what would be valid.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Build an `anyhow::Error` that is reported as a usage error (exit code 2).
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// The exit code an error should produce.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    if err
        .chain()
        .any(|e| e.downcast_ref::<UsageError>().is_some())
    {
        EXIT_USAGE
    } else {
        EXIT_FAILURE
    }
}
