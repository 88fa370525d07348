//! Errors of the format layer.

use adcat_store::StoreError;

/// An error reading or writing AnnData elements. Messages start with the element path;
/// callers prefix the store location.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The storage backend failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `encoding-type` is not one adcat knows.
    #[error("/{path}: unknown encoding-type {encoding:?}")]
    UnknownEncoding {
        /// Element path.
        path: String,
        /// The value found.
        encoding: String,
    },
    /// `encoding-version` is newer than adcat supports (or malformed).
    #[error("/{path}: {encoding} encoding-version {version:?} is not supported (adcat reads {supported})")]
    UnsupportedVersion {
        /// Element path.
        path: String,
        /// Encoding type.
        encoding: String,
        /// The version found.
        version: String,
        /// Versions adcat reads.
        supported: String,
    },
    /// The element is structurally invalid (missing children, wrong shapes, ...).
    #[error("/{path}: {reason}")]
    Invalid {
        /// Element path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The element is valid AnnData but adcat cannot handle it yet.
    #[error("/{path}: {reason}")]
    Unsupported {
        /// Element path.
        path: String,
        /// What is not supported.
        reason: String,
    },
}

impl FormatError {
    /// Whether the error comes from a job's output store (a write error, a full disk),
    /// as marked by [`adcat_store::tagged::OutputStore`].
    pub fn is_output(&self) -> bool {
        matches!(self, FormatError::Store(e) if e.is_output())
    }

    /// Shorthand for [`FormatError::Invalid`].
    pub fn invalid(path: &str, reason: impl Into<String>) -> Self {
        FormatError::Invalid { path: path.to_owned(), reason: reason.into() }
    }
}

/// Result alias for format operations.
pub type Result<T, E = FormatError> = std::result::Result<T, E>;
