//! Errors of the storage layer.

use crate::DType;

/// An error from a storage backend. Every variant names the element path inside the
/// store; callers add the store's location (file or URL) when they report it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store itself could not be opened or created.
    #[error("cannot open {location}: {reason}")]
    Open {
        /// File path or URL.
        location: String,
        /// Why.
        reason: String,
    },
    /// No node at this path.
    #[error("{path}: no such element")]
    NotFound {
        /// Element path.
        path: String,
    },
    /// A node exists where a new one was to be created.
    #[error("{path}: element already exists")]
    Exists {
        /// Element path.
        path: String,
    },
    /// The node is of the wrong kind (group vs array).
    #[error("{path}: expected {expected}")]
    WrongKind {
        /// Element path.
        path: String,
        /// What was expected ("a group", "an array").
        expected: &'static str,
    },
    /// The on-disk element type is not one adcat handles.
    #[error("{path}: unsupported data type {found}")]
    UnsupportedDType {
        /// Element path.
        path: String,
        /// Backend description of the type.
        found: String,
    },
    /// A block of the wrong type was written.
    #[error("{path}: data type mismatch: array is {expected}, block is {found}")]
    DTypeMismatch {
        /// Element path.
        path: String,
        /// The array's type.
        expected: DType,
        /// The block's type.
        found: DType,
    },
    /// A selection or block does not fit the array.
    #[error("{path}: {reason}")]
    OutOfBounds {
        /// Element path.
        path: String,
        /// Details.
        reason: String,
    },
    /// Metadata is malformed (bad JSON, missing keys, ...).
    #[error("{path}: invalid metadata: {reason}")]
    InvalidMetadata {
        /// Element path.
        path: String,
        /// Details.
        reason: String,
    },
    /// The store was opened read-only.
    #[error("{path}: store is read-only")]
    ReadOnly {
        /// Element path.
        path: String,
    },
    /// An element name that cannot be stored safely (`..`, `.`, empty, or holding `/`,
    /// `\\`, NUL or a control character): names are data, never paths.
    #[error("{path}: element name {name:?} is not allowed ({reason}); rename it in the source, e.g. with anndata")]
    InvalidName {
        /// Path of the group holding the name.
        path: String,
        /// The offending name, as found.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// An array whose chunks are too large to decode within the memory budget.
    #[error("{path}: {reason}")]
    ChunkTooLarge {
        /// Element path.
        path: String,
        /// Sizes and the setting to raise.
        reason: String,
    },
    /// An element nested deeper than [`crate::MAX_DEPTH`] levels (or a link cycle).
    #[error("{path}: elements are nested more than {max} levels deep (or HDF5 links form a cycle); adcat refuses such trees (anndata itself cannot read beyond about 250 levels)")]
    TooDeep {
        /// The first components of the element path.
        path: String,
        /// The limit.
        max: usize,
    },
    /// An element whose data lives outside the store (an HDF5 external link, virtual
    /// dataset or external raw storage), refused unless the caller allowed it.
    #[error("{path}: is {what}; data outside the file you named is not read unless you allow it (adcat: --follow-external-links)")]
    ExternalData {
        /// Element path.
        path: String,
        /// What the element is and where it points.
        what: String,
    },
    /// An error of a job's output store (see [`crate::tagged::OutputStore`]); the
    /// message is the wrapped error's.
    #[error("{0}")]
    Output(Box<StoreError>),
    /// An error reported by the backend library (HDF5, zarrs) or the OS.
    #[error("{path}: {message}")]
    Backend {
        /// Element path.
        path: String,
        /// The library's message.
        message: String,
    },
}

impl StoreError {
    /// Shorthand for [`StoreError::Backend`].
    pub fn backend(path: &str, message: impl std::fmt::Display) -> Self {
        StoreError::Backend { path: path.to_owned(), message: message.to_string() }
    }

    /// Whether the error comes from a job's output store.
    pub fn is_output(&self) -> bool {
        matches!(self, StoreError::Output(_))
    }

    /// The element path this error is about.
    pub fn path(&self) -> &str {
        match self {
            StoreError::Output(e) => e.path(),
            StoreError::Open { location, .. } => location,
            StoreError::NotFound { path }
            | StoreError::Exists { path }
            | StoreError::WrongKind { path, .. }
            | StoreError::UnsupportedDType { path, .. }
            | StoreError::DTypeMismatch { path, .. }
            | StoreError::OutOfBounds { path, .. }
            | StoreError::InvalidMetadata { path, .. }
            | StoreError::ReadOnly { path }
            | StoreError::InvalidName { path, .. }
            | StoreError::ExternalData { path, .. }
            | StoreError::TooDeep { path, .. }
            | StoreError::ChunkTooLarge { path, .. }
            | StoreError::Backend { path, .. } => path,
        }
    }
}

/// Result alias for storage operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
