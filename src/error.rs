//! The one error type of the crate and its kinds.
//!
//! Every failure of loading or calling becomes an [`Error`]: a [`Kind`] (what a caller can
//! act on), a message (what a person reads) and [`Details`] (what a program inspects). The Lua
//! face of this type lives in `lua/error.rs`; nothing here knows about Lua.

use std::fmt;

/// What kind of failure an [`Error`] is, as Lua sees it in `funcs.errors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// Bad input or configuration: malformed YAML, wrong argument types, a bad hash.
    Invalid,
    /// An unknown entry, a missing file or fs entry, a missing required env variable.
    NotFound,
    /// A trap or anything else that went wrong inside.
    Internal,
    /// The call ran past its deadline.
    Timeout,
    /// The call was cancelled.
    Canceled,
    /// The pool was closed by a reload or shutdown, or a worker, runtime or service could
    /// not be made (out of threads or file descriptors).
    Unavailable,
    /// The guest asked for something its entry does not grant.
    PermissionDenied,
}

impl Kind {
    /// All kinds, in the order `funcs.errors` lists them.
    pub const ALL: [Kind; 7] = [
        Kind::Invalid,
        Kind::NotFound,
        Kind::Internal,
        Kind::Timeout,
        Kind::Canceled,
        Kind::Unavailable,
        Kind::PermissionDenied,
    ];

    /// The constant's name, as in `funcs.errors.NOT_FOUND`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Invalid => "INVALID",
            Kind::NotFound => "NOT_FOUND",
            Kind::Internal => "INTERNAL",
            Kind::Timeout => "TIMEOUT",
            Kind::Canceled => "CANCELED",
            Kind::Unavailable => "UNAVAILABLE",
            Kind::PermissionDenied => "PERMISSION_DENIED",
        }
    }

    /// Whether the same call may succeed if made again unchanged.
    pub fn retryable(self) -> bool {
        matches!(self, Kind::Timeout | Kind::Unavailable)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Machine-readable context of an error; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details {
    /// The entry ID (`ns:name`) the error concerns.
    pub entry: Option<String>,
    /// The registry file that was being loaded.
    pub file: Option<String>,
    /// The field path inside the entry (`pool.size`).
    pub field: Option<String>,
    /// The method that was being called.
    pub method: Option<String>,
    /// The 1-based argument a conversion error is about.
    pub argument: Option<usize>,
    /// The path inside a value (`[2].tags[1]`).
    pub path: Option<String>,
    /// The trap code (`unreachable`, `memory_out_of_bounds`, ...).
    pub trap: Option<String>,
    /// The guest backtrace, when wasmtime captured one.
    pub backtrace: Option<String>,
    /// The code a guest passed to `wasi:cli/exit`.
    pub exit_code: Option<i32>,
    /// The host function (`iface#func`) whose Lua error or result failed the call.
    pub host: Option<String>,
}

/// An error from loading a registry or calling a function.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: Kind,
    message: String,
    details: Box<Details>,
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with `message` and no details.
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            details: Box::default(),
        }
    }

    /// An [`Kind::Invalid`] error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(Kind::Invalid, message)
    }

    /// A [`Kind::NotFound`] error.
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(Kind::NotFound, message)
    }

    /// A [`Kind::Internal`] error.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(Kind::Internal, message)
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn details(&self) -> &Details {
        &self.details
    }

    /// Changes the details in place (builder style).
    pub fn with(mut self, f: impl FnOnce(&mut Details)) -> Self {
        f(&mut self.details);
        self
    }

    /// Puts `prefix: ` in front of the message.
    pub fn context(mut self, prefix: impl fmt::Display) -> Self {
        self.message = format!("{prefix}: {}", self.message);
        self
    }
}

/// The one wording of type errors: `expected u32, got string`.
pub fn expected(what: impl fmt::Display, got: impl fmt::Display) -> String {
    format!("expected {what}, got {got}")
}

/// The one wording of arity errors: `expected 2 argument(s), got 3`.
pub fn expected_args(want: usize, got: usize) -> String {
    format!("expected {want} argument(s), got {got}")
}
