use thiserror::Error;

/// Why a storage operation failed. Callers map each variant explicitly: the first three are about
/// the request, the last two about the backend.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{what} {id:?} already exists")]
    AlreadyExists { what: &'static str, id: String },
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    #[error("conflict: {0}")]
    Conflict(String),
    /// The data on disk is not what this version expects (newer schema, corrupt row).
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// The backend failed (I/O, disk full, lock timeout); the operation had no effect.
    #[error("storage backend failed: {0}")]
    Backend(String),
}
