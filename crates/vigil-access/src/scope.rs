//! SMART on FHIR v2 scopes (SMART App Launch 2.0, "Scopes and Launch Context"):
//! `context/resource.permissions`, where context is `patient`, `user` or `system`, resource is a
//! FHIR resource type or `*`, and permissions are a subset of `cruds` written in that order.
//! SMART v1's `.read`, `.write` and `.*` are accepted as their v2 equivalents (`rs`, `cud`,
//! `cruds`), as the specification allows servers to.
//!
//! Scopes narrow what a role may do; they never widen it. Finer-grained scopes with search
//! parameters (`patient/Observation.rs?category=vital-signs`) grant nothing here rather than
//! being widened to the whole resource type: a server that cannot enforce a restriction must not
//! act as though it were absent.

use std::fmt;

/// Whose data a scope is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScopeContext {
    /// The one patient in the launch context (a patient's own app, a caregiver's patient).
    Patient,
    /// Whatever the signed-in user may see.
    User,
    /// A backend system acting on its own (an EHR interface), not on behalf of a person.
    System,
}

/// A FHIR interaction, as SMART v2 permissions name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Interaction {
    Create,
    Read,
    Update,
    Delete,
    Search,
}

impl Interaction {
    pub const ALL: [Interaction; 5] = [
        Interaction::Create,
        Interaction::Read,
        Interaction::Update,
        Interaction::Delete,
        Interaction::Search,
    ];

    /// The permission letter (`c`, `r`, `u`, `d`, `s`).
    pub fn letter(self) -> char {
        match self {
            Interaction::Create => 'c',
            Interaction::Read => 'r',
            Interaction::Update => 'u',
            Interaction::Delete => 'd',
            Interaction::Search => 's',
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// One granted resource scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    pub context: ScopeContext,
    /// A FHIR resource type; `None` is `*` (every type).
    pub resource: Option<String>,
    permissions: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("scope {0:?} is not of the form context/Resource.permissions")]
    Shape(String),
    #[error("scope {0:?}: the context must be patient, user or system")]
    Context(String),
    #[error("scope {0:?}: {1:?} is not a FHIR resource type name")]
    Resource(String, String),
    #[error(
        "scope {0:?}: permissions must be a non-empty subset of c, r, u, d, s in that order (or read, write, *)"
    )]
    Permissions(String),
    #[error("scope {0:?}: search-parameter restrictions are not supported")]
    Restricted(String),
}

impl Scope {
    pub fn new(
        context: ScopeContext,
        resource: Option<&str>,
        interactions: &[Interaction],
    ) -> Scope {
        Scope {
            context,
            resource: resource.map(str::to_owned),
            permissions: interactions.iter().fold(0, |acc, i| acc | i.bit()),
        }
    }

    /// Parses one resource scope strictly.
    pub fn parse(raw: &str) -> Result<Scope, ScopeError> {
        if raw.contains('?') {
            return Err(ScopeError::Restricted(raw.into()));
        }
        let (context, rest) = raw
            .split_once('/')
            .ok_or_else(|| ScopeError::Shape(raw.into()))?;
        let context = match context {
            "patient" => ScopeContext::Patient,
            "user" => ScopeContext::User,
            "system" => ScopeContext::System,
            _ => return Err(ScopeError::Context(raw.into())),
        };
        let (resource, permissions) = rest
            .rsplit_once('.')
            .ok_or_else(|| ScopeError::Shape(raw.into()))?;
        let resource = match resource {
            "*" => None,
            name if is_resource_type_name(name) => Some(name.to_owned()),
            name => return Err(ScopeError::Resource(raw.into(), name.into())),
        };
        let permissions =
            parse_permissions(permissions).ok_or_else(|| ScopeError::Permissions(raw.into()))?;
        Ok(Scope {
            context,
            resource,
            permissions,
        })
    }

    pub fn allows(&self, interaction: Interaction) -> bool {
        self.permissions & interaction.bit() != 0
    }

    fn covers(&self, resource_type: &str) -> bool {
        self.resource.as_deref().is_none_or(|r| r == resource_type)
    }
}

/// FHIR resource type names are an upper-case letter then letters (R4 has no digits in them).
fn is_resource_type_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_alphabetic())
        && name.len() <= 64
}

fn parse_permissions(raw: &str) -> Option<u8> {
    match raw {
        "read" => return Some(Interaction::Read.bit() | Interaction::Search.bit()),
        "write" => {
            return Some(
                Interaction::Create.bit() | Interaction::Update.bit() | Interaction::Delete.bit(),
            );
        }
        "*" => return Some(0b1_1111),
        _ => {}
    }
    if raw.is_empty() {
        return None;
    }
    // v2: each letter at most once, in the order c r u d s.
    let mut next = 0;
    let mut bits = 0;
    for c in raw.chars() {
        let position = Interaction::ALL[next..]
            .iter()
            .position(|i| i.letter() == c)?;
        let interaction = Interaction::ALL[next + position];
        bits |= interaction.bit();
        next += position + 1;
    }
    Some(bits)
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let context = match self.context {
            ScopeContext::Patient => "patient",
            ScopeContext::User => "user",
            ScopeContext::System => "system",
        };
        let letters: String = Interaction::ALL
            .iter()
            .filter(|i| self.allows(**i))
            .map(|i| i.letter())
            .collect();
        write!(
            f,
            "{context}/{}.{letters}",
            self.resource.as_deref().unwrap_or("*")
        )
    }
}

/// The resource scopes a token or session carries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    pub fn new(scopes: Vec<Scope>) -> Scopes {
        Scopes(scopes)
    }

    /// Reads a space-separated `scope` claim as an authorization server granted it. Scopes that
    /// are not resource scopes (`openid`, `fhirUser`, `launch/patient`, `offline_access`) and
    /// resource scopes Vigil cannot enforce exactly are ignored: they grant nothing.
    pub fn from_granted(claim: &str) -> Scopes {
        Scopes(
            claim
                .split_ascii_whitespace()
                .filter_map(|s| Scope::parse(s).ok())
                .collect(),
        )
    }

    /// Parses a space-separated list strictly (the operator's own input).
    pub fn parse(list: &str) -> Result<Scopes, ScopeError> {
        list.split_ascii_whitespace()
            .map(Scope::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(Scopes)
    }

    /// The contexts in which some scope permits `interaction` on `resource_type`.
    pub fn permitting(&self, resource_type: &str, interaction: Interaction) -> Vec<ScopeContext> {
        let mut contexts: Vec<ScopeContext> = self
            .0
            .iter()
            .filter(|s| s.covers(resource_type) && s.allows(interaction))
            .map(|s| s.context)
            .collect();
        contexts.sort();
        contexts.dedup();
        contexts
    }

    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Interaction::*;

    #[test]
    fn v2_scopes_parse_with_their_permissions() {
        let s = Scope::parse("patient/Observation.rs").unwrap();
        assert_eq!(s.context, ScopeContext::Patient);
        assert_eq!(s.resource.as_deref(), Some("Observation"));
        assert!(s.allows(Read) && s.allows(Search));
        assert!(!s.allows(Create) && !s.allows(Update) && !s.allows(Delete));

        let all = Scope::parse("user/*.cruds").unwrap();
        assert_eq!(all.resource, None);
        assert!(Interaction::ALL.iter().all(|i| all.allows(*i)));

        let r = Scope::parse("system/Observation.r").unwrap();
        assert!(r.allows(Read) && !r.allows(Search));
        assert_eq!(r.to_string(), "system/Observation.r");
        assert_eq!(all.to_string(), "user/*.cruds");
    }

    #[test]
    fn v1_scopes_map_to_their_v2_equivalents() {
        assert_eq!(
            Scope::parse("patient/*.read").unwrap().to_string(),
            "patient/*.rs"
        );
        assert_eq!(
            Scope::parse("user/Observation.write").unwrap().to_string(),
            "user/Observation.cud"
        );
        assert_eq!(
            Scope::parse("system/*.*").unwrap().to_string(),
            "system/*.cruds"
        );
    }

    #[test]
    fn malformed_scopes_are_refused_with_the_reason() {
        for (raw, want) in [
            ("Observation.rs", ScopeError::Shape("Observation.rs".into())),
            (
                "patient/Observation",
                ScopeError::Shape("patient/Observation".into()),
            ),
            (
                "admin/Observation.r",
                ScopeError::Context("admin/Observation.r".into()),
            ),
            (
                "user/observation.r",
                ScopeError::Resource("user/observation.r".into(), "observation".into()),
            ),
            (
                "user/Observation.",
                ScopeError::Permissions("user/Observation.".into()),
            ),
            (
                "user/Observation.sr",
                ScopeError::Permissions("user/Observation.sr".into()),
            ),
            (
                "user/Observation.rr",
                ScopeError::Permissions("user/Observation.rr".into()),
            ),
            (
                "user/Observation.x",
                ScopeError::Permissions("user/Observation.x".into()),
            ),
            (
                "patient/Observation.rs?category=vital-signs",
                ScopeError::Restricted("patient/Observation.rs?category=vital-signs".into()),
            ),
        ] {
            assert_eq!(Scope::parse(raw), Err(want), "{raw}");
        }
    }

    #[test]
    fn granted_claims_keep_only_enforceable_resource_scopes() {
        let scopes = Scopes::from_granted(
            "openid fhirUser launch/patient patient/Observation.rs patient/Flag.rs?status=active offline_access",
        );
        assert_eq!(scopes.to_string(), "patient/Observation.rs");
        assert_eq!(
            scopes.permitting("Observation", Search),
            vec![ScopeContext::Patient]
        );
        assert!(scopes.permitting("Flag", Read).is_empty());
        assert!(scopes.permitting("Observation", Create).is_empty());
    }

    #[test]
    fn strict_lists_refuse_any_bad_member() {
        assert!(Scopes::parse("user/*.rs system/Observation.r").is_ok());
        assert!(Scopes::parse("user/*.rs openid").is_err());
    }
}
