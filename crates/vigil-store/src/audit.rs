//! The audit trail's storage: an append-only, hash-chained log of [`AuditEntry`]s, and its
//! verification.
//!
//! **The chain.** Entries get strictly increasing sequence numbers from 1. Each stores
//! `hash = SHA-256(prev_hash ‖ seq as 8 bytes big-endian ‖ canonical entry JSON)` and the
//! `prev_hash` it was chained to (32 zero bytes for seq 1). Editing an entry breaks its hash;
//! deleting one leaves a gap; moving one breaks the hash at its new place (its hash covers its
//! seq); rewriting the whole chain from some point on changes the head.
//!
//! **The anchor.** Cutting entries off the end leaves a shorter chain that is still valid, so
//! after each append the backend also records the head (seq and hash) outside the log: the
//! *anchor*. Verification fails when the anchor names a seq beyond the log's end, or a hash the
//! log does not have at that seq. Someone who can rewrite both the log and the anchor can forge
//! a consistent history; shipping the anchor off the machine now and then (`vigil audit head`)
//! is what makes that detectable.
//!
//! [`verify`] works on any [`AuditLog`]; a backend only stores and returns the rows as written.

use sha2::{Digest, Sha256};
use vigil_model::audit::{AuditAction, AuditEntry};
use vigil_model::{Instant, PatientId};

use crate::StoreError;

/// A SHA-256 digest in the chain.
pub type ChainHash = [u8; 32];

/// What seq 1 is chained to.
pub const GENESIS: ChainHash = [0; 32];

/// How far from its place verification looks for the seq an entry was chained at, to tell an
/// entry that was moved (`OutOfOrder`) from one that was edited (`EntryAltered`).
pub const MOVED_ENTRY_WINDOW: u64 = 1024;

/// Rows read per step during verification.
const VERIFY_PAGE: usize = 1000;

/// The hash of the entry at `seq` whose canonical JSON is `entry_json`, chained to `prev`.
pub fn chain_hash(prev: &ChainHash, seq: u64, entry_json: &str) -> ChainHash {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(seq.to_be_bytes());
    hasher.update(entry_json.as_bytes());
    hasher.finalize().into()
}

/// The last entry of the chain: its seq and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditHead {
    pub seq: u64,
    pub hash: ChainHash,
}

impl AuditHead {
    /// `"{seq} {hash as lower-case hex}"`: the anchor's text form.
    pub fn to_text(&self) -> String {
        format!("{} {}", self.seq, hex::encode(self.hash))
    }

    /// Parses [`AuditHead::to_text`]'s form (surrounding white space allowed).
    pub fn from_text(text: &str) -> Option<AuditHead> {
        let mut parts = text.split_whitespace();
        let seq = parts.next()?.parse().ok()?;
        let mut hash = [0u8; 32];
        hex::decode_to_slice(parts.next()?, &mut hash).ok()?;
        parts.next().is_none().then_some(AuditHead { seq, hash })
    }
}

/// An entry as stored, with its seq.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub seq: u64,
    pub entry: AuditEntry,
}

/// Audit search; the newest entries first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    /// Entries concerning this patient.
    pub patient: Option<PatientId>,
    /// Entries by this agent id (a user's subject, a device id).
    pub agent: Option<String>,
    pub action: Option<AuditAction>,
    /// Recorded at or after.
    pub from: Option<Instant>,
    /// Recorded before (exclusive).
    pub to: Option<Instant>,
    /// Paging: only entries with a seq below this (the last seq of the previous page).
    pub before_seq: Option<u64>,
    pub limit: usize,
}

/// One stored row exactly as written, for verification: the hashed bytes, the two hashes, and
/// the columns the backend indexes for searching (which must agree with the entry).
#[derive(Debug, Clone, PartialEq)]
pub struct ChainLink {
    pub seq: u64,
    pub entry_json: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
    pub indexed: IndexedColumns,
}

/// What a backend keeps beside the entry so searches need not parse every entry.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedColumns {
    /// Microseconds since the Unix epoch.
    pub recorded_us: i64,
    pub agent: String,
    pub action: String,
    /// Sorted.
    pub patients: Vec<String>,
}

impl IndexedColumns {
    pub fn of(entry: &AuditEntry) -> IndexedColumns {
        let mut patients: Vec<String> = entry.patients.iter().map(|p| p.to_string()).collect();
        patients.sort();
        patients.dedup();
        IndexedColumns {
            recorded_us: entry.recorded.timestamp_micros(),
            agent: entry.agent.id.clone(),
            action: entry.action.code().to_owned(),
            patients,
        }
    }
}

/// An append-only audit log. `Send + Sync`: share it in an `Arc`.
pub trait AuditLog: Send + Sync {
    /// Appends `entries` in order, in one transaction, and returns the new head. When it
    /// returns, the entries are durable and chained; then the anchor is updated.
    fn append(&self, entries: &[AuditEntry]) -> Result<AuditHead, StoreError>;

    /// Entries matching `query`, newest first, at most `query.limit`.
    fn search(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;

    /// At most `limit` rows with a seq above `after`, in seq order, exactly as stored.
    fn chain(&self, after: u64, limit: usize) -> Result<Vec<ChainLink>, StoreError>;

    /// The last stored entry, `None` for an empty log.
    fn head(&self) -> Result<Option<AuditHead>, StoreError>;

    /// The head recorded outside the log after the last append, `None` if there is none.
    fn anchor(&self) -> Result<Option<AuditHead>, StoreError>;
}

/// What verification found.
#[derive(Debug, Clone, PartialEq)]
pub enum Verification {
    /// Every entry is where it was chained, unaltered, and the anchor matches.
    Intact {
        entries: u64,
        head: Option<AuditHead>,
        anchor: Option<AuditHead>,
    },
    /// The first problem, in seq order.
    Broken(Tamper),
}

/// The first place the log differs from what was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tamper {
    /// The seq where the problem is (for a missing tail: the first missing seq).
    pub seq: u64,
    pub kind: TamperKind,
    /// One sentence for the operator.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TamperKind {
    /// The entry's content (or its hashes, or its search columns) no longer match its hash.
    EntryAltered,
    /// A seq is missing, or the entry was chained to a predecessor that is no longer there.
    EntryMissing,
    /// The entry is intact but was chained at another seq: entries were moved or swapped.
    OutOfOrder,
    /// The anchor names entries beyond the end of the log: the tail was cut off.
    TailTruncated,
    /// The log's hash at the anchor's seq is not the anchor's: the chain was rewritten.
    AnchorMismatch,
    /// The log has entries but no anchor: it may have been cut and the anchor removed.
    AnchorMissing,
}

impl TamperKind {
    pub fn code(self) -> &'static str {
        match self {
            TamperKind::EntryAltered => "entry-altered",
            TamperKind::EntryMissing => "entry-missing",
            TamperKind::OutOfOrder => "out-of-order",
            TamperKind::TailTruncated => "tail-truncated",
            TamperKind::AnchorMismatch => "anchor-mismatch",
            TamperKind::AnchorMissing => "anchor-missing",
        }
    }
}

impl std::fmt::Display for Tamper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "seq {}: {}: {}", self.seq, self.kind.code(), self.detail)
    }
}

fn broken(seq: u64, kind: TamperKind, detail: String) -> Result<Verification, StoreError> {
    Ok(Verification::Broken(Tamper { seq, kind, detail }))
}

/// Checks the whole log and its anchor; stops at the first problem. Reads the anchor first, so
/// it can run while entries are being appended (the log only grows past the anchor).
pub fn verify(log: &dyn AuditLog) -> Result<Verification, StoreError> {
    let anchor = log.anchor()?;
    let mut expected = 1u64;
    let mut prev: ChainHash = GENESIS;
    let mut at_anchor: Option<ChainHash> = None;
    loop {
        let page = log.chain(expected - 1, VERIFY_PAGE)?;
        if page.is_empty() {
            break;
        }
        for link in page {
            let (Ok(stored_prev), Ok(stored_hash)) = (
                ChainHash::try_from(link.prev_hash.as_slice()),
                ChainHash::try_from(link.hash.as_slice()),
            ) else {
                return broken(
                    link.seq,
                    TamperKind::EntryAltered,
                    "the stored hashes are not 32 bytes long".into(),
                );
            };
            if chain_hash(&stored_prev, link.seq, &link.entry_json) != stored_hash {
                return match moved_from(&link, &stored_prev, &stored_hash) {
                    Some(original) => broken(
                        link.seq,
                        TamperKind::OutOfOrder,
                        format!(
                            "the entry stored at seq {} was recorded as seq {original}",
                            link.seq
                        ),
                    ),
                    None => broken(
                        link.seq,
                        TamperKind::EntryAltered,
                        "the entry does not match its hash: it was edited".into(),
                    ),
                };
            }
            if link.seq != expected {
                let gap = if link.seq - expected == 1 {
                    format!("seq {expected} is missing")
                } else {
                    format!("seqs {expected} to {} are missing", link.seq - 1)
                };
                return broken(expected, TamperKind::EntryMissing, gap);
            }
            if stored_prev != prev {
                return broken(
                    link.seq,
                    TamperKind::EntryMissing,
                    format!(
                        "the entry was chained to a predecessor that is not the entry now at seq {}: \
                         entries before it were removed or replaced",
                        link.seq.saturating_sub(1)
                    ),
                );
            }
            match AuditEntry::from_json(&link.entry_json) {
                Ok(entry) if IndexedColumns::of(&entry) == link.indexed => {}
                Ok(_) => {
                    return broken(
                        link.seq,
                        TamperKind::EntryAltered,
                        "the search columns (time, agent, action or patients) differ from the \
                         entry: searches would not find it where they should"
                            .into(),
                    );
                }
                Err(e) => {
                    return broken(
                        link.seq,
                        TamperKind::EntryAltered,
                        format!("the entry is hashed correctly but cannot be read: {e}"),
                    );
                }
            }
            if anchor.is_some_and(|a| a.seq == link.seq) {
                at_anchor = Some(stored_hash);
            }
            prev = stored_hash;
            expected += 1;
        }
    }
    let entries = expected - 1;
    let head = (entries > 0).then_some(AuditHead {
        seq: entries,
        hash: prev,
    });
    match anchor {
        Some(a) if a.seq > entries => broken(
            entries + 1,
            TamperKind::TailTruncated,
            format!(
                "the anchor names seq {} but the log ends at seq {entries}: the last {} entries were removed",
                a.seq,
                a.seq - entries
            ),
        ),
        Some(a) if a.seq > 0 && at_anchor != Some(a.hash) => broken(
            a.seq,
            TamperKind::AnchorMismatch,
            "the entry at the anchor's seq has a different hash than the anchor: the chain was rewritten"
                .into(),
        ),
        None if entries > 0 => broken(
            entries,
            TamperKind::AnchorMissing,
            "the log has entries but its anchor (audit.head) is missing: a cut-off tail could not be noticed"
                .into(),
        ),
        _ => Ok(Verification::Intact {
            entries,
            head,
            anchor,
        }),
    }
}

/// The seq near `link.seq` at which this row's content was originally chained, if any.
fn moved_from(link: &ChainLink, prev: &ChainHash, hash: &ChainHash) -> Option<u64> {
    let low = link.seq.saturating_sub(MOVED_ENTRY_WINDOW).max(1);
    let high = link.seq.saturating_add(MOVED_ENTRY_WINDOW);
    (low..=high)
        .filter(|&s| s != link.seq)
        .find(|&s| chain_hash(prev, s, &link.entry_json) == *hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_the_predecessor_the_seq_and_the_bytes() {
        let a = chain_hash(&GENESIS, 1, "{}");
        assert_ne!(a, chain_hash(&GENESIS, 2, "{}"));
        assert_ne!(a, chain_hash(&[1; 32], 1, "{}"));
        assert_ne!(a, chain_hash(&GENESIS, 1, "{ }"));
        // SHA-256 of 32 zero bytes, then 0x0000000000000001, then "{}": fixed forever.
        let mut h = Sha256::new();
        h.update([0u8; 32]);
        h.update([0, 0, 0, 0, 0, 0, 0, 1]);
        h.update(b"{}");
        assert_eq!(a, <[u8; 32]>::from(h.finalize()));
    }

    #[test]
    fn the_anchor_text_round_trips_and_refuses_garbage() {
        let head = AuditHead {
            seq: 42,
            hash: [0xab; 32],
        };
        assert_eq!(
            AuditHead::from_text(&format!("{}\n", head.to_text())),
            Some(head)
        );
        assert_eq!(AuditHead::from_text("42"), None);
        assert_eq!(AuditHead::from_text("42 abcd"), None);
        assert_eq!(
            AuditHead::from_text(&format!("x {}", "ab".repeat(32))),
            None
        );
        assert_eq!(
            AuditHead::from_text(&format!("{} extra", head.to_text())),
            None
        );
    }
}
