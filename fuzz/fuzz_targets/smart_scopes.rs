//! Arbitrary UTF-8 into the SMART on FHIR v2 scope parsers of `vigil_access`: `Scope::parse` (one
//! scope), `Scopes::parse` (the operator's strict list) and `Scopes::from_granted` (an
//! authorization server's `scope` claim). Nothing may panic; a parsed scope must print in the v2
//! form and read back as the same scope; a strict list must agree with the lenient reading of
//! its own rendering; the lenient reading keeps only scopes that parse on their own.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_access::{Interaction, Scope, Scopes};

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    match Scope::parse(text) {
        Ok(scope) => check_scope(&scope),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    let granted = Scopes::from_granted(text);
    for scope in granted.iter() {
        check_scope(scope);
    }
    assert!(granted.iter().count() <= text.split_ascii_whitespace().count());
    assert_eq!(Scopes::from_granted(&granted.to_string()), granted);
    match Scopes::parse(text) {
        Ok(strict) => {
            assert_eq!(
                strict, granted,
                "every member parses, so nothing is dropped"
            );
            assert_eq!(Scopes::parse(&strict.to_string()).as_ref(), Ok(&strict));
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert!(
                text.split_ascii_whitespace()
                    .any(|s| Scope::parse(s).is_err())
            );
        }
    }
});

fn check_scope(scope: &Scope) {
    let printed = scope.to_string();
    assert_eq!(Scope::parse(&printed).as_ref(), Ok(scope), "{printed}");
    assert!(printed.is_ascii() && !printed.contains(char::is_whitespace));
    assert!(
        Interaction::ALL.iter().any(|i| scope.allows(*i)),
        "a scope permits something"
    );
}
