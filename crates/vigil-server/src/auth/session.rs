//! Browser sessions for the web UI: a random cookie (only its hash is stored), an idle and an
//! absolute timeout, and an anti-CSRF token the pages echo in a header on every change
//! (OWASP CSRF Prevention: synchronizer token; the cookie is also `SameSite=Strict`).

use rand::RngCore;
use sha2::{Digest, Sha256};
use vigil_model::Instant;
use vigil_store::{SecretHash, SessionRecord};

/// The session cookie's name.
pub const COOKIE: &str = "vigil_session";
/// The header carrying the anti-CSRF token on state-changing requests.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session ends after this long without a request (HIPAA §164.312(a)(2)(iii) automatic logoff).
pub const IDLE_TIMEOUT: chrono::Duration = chrono::Duration::minutes(30);
/// And after this long in any case (a shift).
pub const ABSOLUTE_TIMEOUT: chrono::Duration = chrono::Duration::hours(12);
/// `last_seen` is written at most this often, so reading pages does not write on every request.
pub const TOUCH_EVERY: chrono::Duration = chrono::Duration::minutes(1);

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub fn hash_token(token: &str) -> SecretHash {
    Sha256::digest(token.as_bytes()).into()
}

/// A new session for `user`: the cookie value to send (never stored) and the record to store.
pub fn start(user: vigil_model::UserId, now: Instant) -> (String, SessionRecord) {
    let token = random_token();
    let record = SessionRecord {
        token_hash: hash_token(&token),
        user,
        csrf: random_token(),
        created_at: now,
        last_seen: now,
        expires_at: now + ABSOLUTE_TIMEOUT,
    };
    (token, record)
}

/// Whether a stored session still signs its user in at `now`.
pub fn is_live(session: &SessionRecord, now: Instant) -> bool {
    now < session.expires_at && now - session.last_seen < IDLE_TIMEOUT
}

/// The `Set-Cookie` value that starts a session. `Secure` whenever Vigil serves TLS (browsers
/// refuse Secure cookies over plain HTTP on anything but localhost, which is the only place
/// Vigil serves plain HTTP without being told to).
pub fn cookie(token: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        ABSOLUTE_TIMEOUT.num_seconds(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that ends it.
pub fn clearing_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The session token in a `Cookie` header, if any.
pub fn from_cookie_header(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|part| part.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_when_idle_or_at_their_absolute_end() {
        let now = chrono::Utc::now();
        let (token, mut s) = start(vigil_model::UserId::new("ana").unwrap(), now);
        assert_eq!(s.token_hash, hash_token(&token));
        assert_ne!(s.csrf, token);
        assert!(is_live(&s, now));
        assert!(is_live(
            &s,
            now + IDLE_TIMEOUT - chrono::Duration::seconds(1)
        ));
        assert!(!is_live(&s, now + IDLE_TIMEOUT), "idle");
        s.last_seen = now + ABSOLUTE_TIMEOUT - chrono::Duration::minutes(1);
        assert!(!is_live(&s, now + ABSOLUTE_TIMEOUT), "absolute end");
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_over_tls() {
        let c = cookie("abc", true);
        assert!(c.starts_with("vigil_session=abc; Path=/; HttpOnly; SameSite=Strict"));
        assert!(c.ends_with("; Secure"));
        assert!(!cookie("abc", false).contains("Secure"));
        assert_eq!(
            from_cookie_header("a=1; vigil_session=xyz; b=2"),
            Some("xyz")
        );
        assert_eq!(from_cookie_header("vigil_session="), None);
        assert_eq!(from_cookie_header("other=1"), None);
    }
}
