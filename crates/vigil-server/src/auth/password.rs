//! Local account passwords: rules for choosing them, argon2id hashes, and the lockout that slows
//! down guessing.
//!
//! Rules follow NIST SP 800-63B §5.1.1.2 rather than composition rules: a minimum length, a
//! maximum generous enough for passphrases, no password that contains the account name, and none
//! from a short list of the passwords tried first in every guessing attack. Hashes are argon2id
//! (RFC 9106) with the OWASP Password Storage Cheat Sheet's parameters (19 MiB, 2 passes, 1
//! lane), stored as PHC strings so parameters can be raised later without breaking old hashes.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use vigil_model::Instant;

/// Shortest password accepted.
pub const MIN_LENGTH: usize = 12;
/// Longest: a passphrase fits, an attempt to make hashing expensive does not.
pub const MAX_LENGTH: usize = 128;
/// Failed logins allowed before the account locks.
pub const LOCKOUT_THRESHOLD: u32 = 5;
/// The first lock lasts this long; each further failure doubles it.
pub const LOCKOUT_BASE: chrono::Duration = chrono::Duration::seconds(30);
/// The longest a lock lasts.
pub const LOCKOUT_MAX: chrono::Duration = chrono::Duration::hours(1);

/// Passwords every guessing attack tries first (lower-cased; compared case-insensitively).
const COMMON: &[&str] = &[
    "password1234",
    "password12345",
    "passw0rd1234",
    "123456789012",
    "1234567890123",
    "qwertyuiop12",
    "qwertyuiopasdf",
    "iloveyou1234",
    "letmein12345",
    "welcome12345",
    "administrator",
    "changeme1234",
    "hospital1234",
    "healthcare123",
    "nurse1234567",
    "doctor123456",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRejected {
    #[error("the password must be at least {MIN_LENGTH} characters long")]
    TooShort,
    #[error("the password must be at most {MAX_LENGTH} characters long")]
    TooLong,
    #[error("the password must not contain the account name")]
    ContainsAccountName,
    #[error("the password is one of the most commonly guessed passwords")]
    Common,
    #[error("the password must not be a single repeated character or a simple sequence")]
    Trivial,
}

/// Checks a new password for `account` against the rules.
pub fn check_rules(password: &str, account: &str) -> Result<(), PasswordRejected> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err(PasswordRejected::TooShort);
    }
    if length > MAX_LENGTH {
        return Err(PasswordRejected::TooLong);
    }
    let lower = password.to_lowercase();
    if !account.is_empty() && lower.contains(&account.to_lowercase()) {
        return Err(PasswordRejected::ContainsAccountName);
    }
    if COMMON.contains(&lower.as_str()) {
        return Err(PasswordRejected::Common);
    }
    let chars: Vec<char> = password.chars().collect();
    let repeated = chars.iter().all(|c| *c == chars[0]);
    let step = |d: i64| {
        chars
            .windows(2)
            .all(|w| i64::from(u32::from(w[1])) - i64::from(u32::from(w[0])) == d)
    };
    if repeated || step(1) || step(-1) {
        return Err(PasswordRejected::Trivial);
    }
    Ok(())
}

/// A new password for an account an operator creates or resets: 20 characters from an alphabet
/// without look-alikes (about 115 bits), shown once.
pub fn generate() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[derive(Debug, thiserror::Error)]
#[error("could not hash the password: {0}")]
pub struct HashError(String);

fn hasher() -> Argon2<'static> {
    // OWASP: m=19456 KiB, t=2, p=1. `Params::new` only fails for out-of-range values.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The argon2id PHC string for a password (random salt).
pub fn hash(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Whether `password` matches the stored hash. A malformed hash matches nothing.
pub fn verify(stored: &str, password: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spends the time a real verification would, so that a login for an account that does not
/// exist takes as long as one with a wrong password (no account enumeration by timing).
pub fn verify_nothing(password: &str) {
    static DUMMY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if let Some(dummy) = DUMMY.get_or_init(|| hash("an unguessable dummy passphrase").ok()) {
        let _ = verify(dummy, password);
    }
}

/// When an account that has now failed `failed_logins` times in a row is locked until, if at
/// all: from the threshold on, 30 s, then doubling per further failure, at most an hour.
pub fn locked_until(failed_logins: u32, now: Instant) -> Option<Instant> {
    let beyond = failed_logins.checked_sub(LOCKOUT_THRESHOLD)?;
    let factor = 1i64.checked_shl(beyond.min(30)).unwrap_or(i64::MAX);
    let seconds = LOCKOUT_BASE
        .num_seconds()
        .saturating_mul(factor)
        .min(LOCKOUT_MAX.num_seconds());
    Some(now + chrono::Duration::seconds(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_follow_length_and_blocklist_not_composition() {
        assert_eq!(
            check_rules("short pass", "ana"),
            Err(PasswordRejected::TooShort)
        );
        assert_eq!(
            check_rules(&"x".repeat(11), "ana"),
            Err(PasswordRejected::TooShort)
        );
        assert!(check_rules("correct horse battery", "ana").is_ok());
        assert!(
            check_rules("all lower case letters", "ana").is_ok(),
            "no composition rules"
        );
        assert_eq!(
            check_rules(&"ab".repeat(65), "ana"),
            Err(PasswordRejected::TooLong)
        );
        assert!(
            check_rules(&"ab".repeat(64), "zz").is_ok(),
            "128 is allowed"
        );
        assert_eq!(
            check_rules("my name is Nurse.Ana ok", "nurse.ana"),
            Err(PasswordRejected::ContainsAccountName)
        );
        assert_eq!(
            check_rules("Password1234", "ana"),
            Err(PasswordRejected::Common)
        );
        assert_eq!(
            check_rules("aaaaaaaaaaaa", "b"),
            Err(PasswordRejected::Trivial)
        );
        assert_eq!(
            check_rules("abcdefghijklm", "z"),
            Err(PasswordRejected::Trivial)
        );
        assert_eq!(
            check_rules("zyxwvutsrqpo", "a"),
            Err(PasswordRejected::Trivial)
        );
    }

    #[test]
    fn hashes_are_argon2id_and_verify_only_the_right_password() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify(&h, "correct horse battery"));
        assert!(!verify(&h, "correct horse batterY"));
        assert!(!verify("not a hash", "correct horse battery"));
        assert_ne!(h, hash("correct horse battery").unwrap(), "salted");
    }

    #[test]
    fn lockout_starts_at_the_threshold_and_backs_off_to_an_hour() {
        let now = chrono::Utc::now();
        assert_eq!(locked_until(0, now), None);
        assert_eq!(locked_until(LOCKOUT_THRESHOLD - 1, now), None);
        let at = |n| locked_until(n, now).map(|t| (t - now).num_seconds());
        assert_eq!(at(LOCKOUT_THRESHOLD), Some(30));
        assert_eq!(at(LOCKOUT_THRESHOLD + 1), Some(60));
        assert_eq!(at(LOCKOUT_THRESHOLD + 2), Some(120));
        assert_eq!(at(LOCKOUT_THRESHOLD + 6), Some(1920));
        assert_eq!(at(LOCKOUT_THRESHOLD + 7), Some(3600), "capped at an hour");
        assert_eq!(at(u32::MAX), Some(3600));
    }
}
