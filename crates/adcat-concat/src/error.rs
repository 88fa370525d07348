//! The engine's error type: every message names the file and the element path.

use adcat_format::FormatError;
use adcat_store::{Store, StoreError};

/// An error of the concatenation. Messages name the file and element path.
#[derive(Debug, thiserror::Error)]
pub enum ConcatError {
    /// Reading an input failed or the input is invalid.
    #[error("{file}: {source}")]
    Input {
        /// The input's location.
        file: String,
        /// What went wrong.
        source: FormatError,
    },
    /// Writing the output failed.
    #[error("output: {0}")]
    Output(FormatError),
    /// An element cannot be concatenated (the path is the element's).
    #[error("/{path}: {reason}")]
    Unsupported {
        /// Element path.
        path: String,
        /// Why.
        reason: String,
    },
    /// `append` cannot grow this element of the store without rewriting it.
    #[error("{store}: cannot append: /{path} {why}")]
    Refused {
        /// The store's location.
        store: String,
        /// Element path in the store.
        path: String,
        /// Why, and what to do instead.
        why: String,
    },
    /// The options are inconsistent with the inputs.
    #[error("{0}")]
    Options(String),
    /// A job directory is missing, incomplete or inconsistent with its inputs.
    #[error("{0}")]
    Job(String),
    /// An error not attributed to a file yet (converted at the call sites).
    #[error(transparent)]
    Format(#[from] FormatError),
}

impl From<StoreError> for ConcatError {
    fn from(e: StoreError) -> Self {
        ConcatError::Format(FormatError::Store(e))
    }
}

impl ConcatError {
    /// Shorthand for [`ConcatError::Unsupported`].
    pub fn unsupported(path: &str, reason: impl Into<String>) -> Self {
        ConcatError::Unsupported { path: path.trim_start_matches('/').to_owned(), reason: reason.into() }
    }
}

/// Result alias.
pub type Result<T, E = ConcatError> = std::result::Result<T, E>;

/// Attribute an error to the input store it came from.
pub(crate) trait At<T> {
    fn at(self, store: &dyn Store) -> Result<T>;
}

impl<T> At<T> for Result<T> {
    fn at(self, store: &dyn Store) -> Result<T> {
        self.map_err(|e| match e {
            ConcatError::Format(source) => ConcatError::Input { file: store.location().to_owned(), source },
            other => other,
        })
    }
}
impl<T> At<T> for std::result::Result<T, FormatError> {
    fn at(self, store: &dyn Store) -> Result<T> {
        self.map_err(|source| ConcatError::Input { file: store.location().to_owned(), source })
    }
}
impl<T> At<T> for std::result::Result<T, StoreError> {
    fn at(self, store: &dyn Store) -> Result<T> {
        self.map_err(|e| ConcatError::Input { file: store.location().to_owned(), source: FormatError::Store(e) })
    }
}
