//! The session's own statements: nested transactions, and the check that a transaction can
//! still commit.

/// `SAVEPOINT` of the nested transaction at `depth`.
pub(crate) fn savepoint(depth: usize) -> String {
    format!("SAVEPOINT mercure_track_{depth}")
}

/// Ends the nested transaction at `depth`, keeping its changes.
pub(crate) fn release(depth: usize) -> String {
    format!("RELEASE SAVEPOINT mercure_track_{depth}")
}

/// Undoes the nested transaction at `depth` (then [`release`] it).
pub(crate) fn rollback_to(depth: usize) -> String {
    format!("ROLLBACK TO SAVEPOINT mercure_track_{depth}")
}

/// A statement that fails when the transaction can no longer commit (PostgreSQL, after a
/// failed statement).
pub(crate) const STILL_OPEN: &str = "SELECT 1";
