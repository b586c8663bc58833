//! JSONPath queries (RFC 9535) as a template uses them: parsed once when the template is
//! validated, with the extra rules of the template contract (length, nesting, no absolute query
//! inside a filter, singular where one value is meant).

use serde_json::Value;
use serde_json_path::JsonPath;

use super::TemplateProblem;

/// Deepest nesting of brackets and parentheses accepted in a path. RFC 9535 sets no bound; the
/// parser recurses on nesting, so a bound keeps a hostile template from exhausting the stack.
pub const MAX_PATH_NESTING: usize = 8;

/// A validated JSONPath query and the text it was written as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Path {
    text: String,
    query: JsonPath,
}

/// One value a singular query found, and where (RFC 6901 JSON Pointer, relative to the value the
/// query ran on).
pub(crate) struct Found<'v> {
    pub value: &'v Value,
    pub pointer: String,
}

impl Path {
    /// Parses `text`, refusing what the template contract refuses. `singular`: the query must
    /// be a singular query (RFC 9535 §2.3.5.1: names and indices only), which selects at most
    /// one value.
    pub(crate) fn parse(
        text: &str,
        singular: bool,
        max_len: usize,
    ) -> Result<Path, TemplateProblem> {
        if text.len() > max_len {
            return Err(TemplateProblem::PathTooLong {
                len: text.len(),
                max: max_len,
            });
        }
        let shape = scan(text);
        if let Some(position) = shape.inner_root {
            return Err(TemplateProblem::PathNotAllowed {
                path: text.to_owned(),
                why: NotAllowed::AbsoluteInFilter { position },
            });
        }
        if shape.depth > MAX_PATH_NESTING {
            return Err(TemplateProblem::PathNotAllowed {
                path: text.to_owned(),
                why: NotAllowed::TooDeep {
                    depth: shape.depth,
                    max: MAX_PATH_NESTING,
                },
            });
        }
        let query = JsonPath::parse(text).map_err(|e| TemplateProblem::BadPath {
            path: text.to_owned(),
            position: e.position(),
            message: e.message().to_owned(),
        })?;
        if singular && !is_singular(text) {
            return Err(TemplateProblem::PathNotSingular {
                path: text.to_owned(),
            });
        }
        Ok(Path {
            text: text.to_owned(),
            query,
        })
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// The query as the parser prints it back (blank space and quoting normalised), to find a
    /// rule written twice.
    pub(crate) fn printed(&self) -> String {
        self.query.to_string()
    }

    /// The one value a singular query finds in `root`, if any.
    pub(crate) fn find<'v>(&self, root: &'v Value) -> Option<Found<'v>> {
        let found = self.query.query_located(root);
        found.first().map(|node| Found {
            value: node.node(),
            pointer: node.location().to_json_pointer(),
        })
    }

    /// Every value the query finds in `root`, in the order RFC 9535 defines.
    pub(crate) fn find_all<'v>(&self, root: &'v Value) -> Vec<Found<'v>> {
        self.query
            .query_located(root)
            .iter()
            .map(|node| Found {
                value: node.node(),
                pointer: node.location().to_json_pointer(),
            })
            .collect()
    }
}

/// Why a path that parses is still refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAllowed {
    /// A query inside a filter starts at the root (`$`): it would be evaluated once per
    /// candidate node, which makes the cost grow with the square of the message size.
    AbsoluteInFilter { position: usize },
    /// Brackets and parentheses nested deeper than [`MAX_PATH_NESTING`].
    TooDeep { depth: usize, max: usize },
}

impl std::fmt::Display for NotAllowed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotAllowed::AbsoluteInFilter { position } => write!(
                f,
                "a query inside a filter must start at the current node (@), not at the root ($ at \
                 character {position})"
            ),
            NotAllowed::TooDeep { depth, max } => write!(
                f,
                "brackets and parentheses are nested {depth} deep; at most {max} are accepted"
            ),
        }
    }
}

struct Shape {
    /// 0-based character offset of a `$` after the first character, outside string literals.
    inner_root: Option<usize>,
    depth: usize,
}

/// One pass over the text outside string literals: nesting depth and root identifiers. Run
/// before the real parser, so it never relies on the text being a valid query.
fn scan(text: &str) -> Shape {
    let mut shape = Shape {
        inner_root: None,
        depth: 0,
    };
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (index, c) in text.chars().enumerate() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '[' | '(' => {
                depth += 1;
                shape.depth = shape.depth.max(depth);
            }
            ']' | ')' => depth = depth.saturating_sub(1),
            '$' if index > 0 && shape.inner_root.is_none() => shape.inner_root = Some(index),
            _ => {}
        }
    }
    shape
}

/// True when `text` (already known to parse) is a singular query: `$` followed by child
/// segments of one name or one index each (RFC 9535 §2.3.5.1 `singular-query-segments`, also
/// allowing the blank space a bracketed selection may hold).
fn is_singular(text: &str) -> bool {
    let mut chars = text.chars().peekable();
    if chars.next() != Some('$') {
        return false;
    }
    let blank = |c: &char| matches!(c, ' ' | '\t' | '\n' | '\r');
    loop {
        while chars.next_if(blank).is_some() {}
        match chars.next() {
            None => return true,
            Some('.') => {
                // member-name-shorthand; `..` (descendants) and `.*` (wildcard) are not singular.
                let mut name = 0;
                while chars
                    .next_if(|c| c.is_alphanumeric() || *c == '_' || !c.is_ascii())
                    .is_some()
                {
                    name += 1;
                }
                if name == 0 {
                    return false;
                }
            }
            Some('[') => {
                while chars.next_if(blank).is_some() {}
                match chars.next() {
                    Some(q @ ('\'' | '"')) => {
                        let mut escaped = false;
                        loop {
                            match chars.next() {
                                None => return false,
                                Some(_) if escaped => escaped = false,
                                Some('\\') => escaped = true,
                                Some(c) if c == q => break,
                                Some(_) => {}
                            }
                        }
                    }
                    Some(c) if c == '-' || c.is_ascii_digit() => {
                        while chars.next_if(char::is_ascii_digit).is_some() {}
                    }
                    _ => return false,
                }
                while chars.next_if(blank).is_some() {}
                if chars.next() != Some(']') {
                    return false;
                }
            }
            Some(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn singular(text: &str) -> bool {
        Path::parse(text, false, 512).unwrap();
        is_singular(text)
    }

    #[test]
    fn singular_queries_are_names_and_indices() {
        for yes in [
            "$",
            "$.a",
            "$.a.b_c.d1",
            "$['a b']",
            "$[\"x]y\"]",
            "$['it\\'s']",
            "$.a[0]",
            "$.a[-1]",
            "$[ 'a' ][ 2 ]",
            "$.größe",
        ] {
            assert!(singular(yes), "{yes}");
        }
        for no in [
            "$.*",
            "$..a",
            "$.a[*]",
            "$.a[0,1]",
            "$.a[0:2]",
            "$['a','b']",
            "$.a[?@.b == 1]",
            "$.a[?@.b == 1].c",
        ] {
            assert!(!singular(no), "{no}");
        }
    }

    #[test]
    fn the_parser_position_is_kept() {
        let Err(TemplateProblem::BadPath { position, .. }) = Path::parse("$.a[", false, 512) else {
            panic!()
        };
        assert_eq!(position, 3, "0-based: the bracket that is not closed");
        assert!(matches!(
            Path::parse("a.b", false, 512),
            Err(TemplateProblem::BadPath { .. })
        ));
    }

    #[test]
    fn root_queries_inside_filters_and_deep_nesting_are_refused() {
        let err = Path::parse("$.a[?count($..x) > 0]", false, 512).unwrap_err();
        assert_eq!(
            err,
            TemplateProblem::PathNotAllowed {
                path: "$.a[?count($..x) > 0]".into(),
                why: NotAllowed::AbsoluteInFilter { position: 11 }
            }
        );
        // A `$` inside a string literal is only a character.
        assert!(Path::parse("$.a[?@.unit == '$']", false, 512).is_ok());
        let deep = format!("$[?{}@.a{}]", "(".repeat(9), ")".repeat(9));
        assert!(matches!(
            Path::parse(&deep, false, 512),
            Err(TemplateProblem::PathNotAllowed {
                why: NotAllowed::TooDeep { depth: 10, .. },
                ..
            })
        ));
        let ok = format!("$[?{}@.a{}]", "(".repeat(7), ")".repeat(7));
        assert!(Path::parse(&ok, false, 512).is_ok());
    }

    #[test]
    fn regex_functions_are_not_available() {
        // `match` and `search` compile a regular expression for every node they test; the
        // crate's `regex` feature is off, so the parser does not know them.
        assert!(Path::parse("$.a[?match(@.b, 'x.*')]", false, 512).is_err());
        assert!(Path::parse("$.a[?length(@.b) > 1]", false, 512).is_ok());
    }

    #[test]
    fn found_values_carry_their_json_pointer() {
        let v = serde_json::json!({"a": [{"b/c": 1}, {"b/c": 2}]});
        let p = Path::parse("$.a[*]['b/c']", false, 512).unwrap();
        let found = p.find_all(&v);
        assert_eq!(
            found.iter().map(|f| f.pointer.as_str()).collect::<Vec<_>>(),
            ["/a/0/b~1c", "/a/1/b~1c"]
        );
        assert_eq!(found[1].value, &serde_json::json!(2));
        let one = Path::parse("$.a[1]", true, 512).unwrap();
        assert_eq!(one.find(&v).unwrap().pointer, "/a/1");
        assert!(Path::parse("$.nope", true, 512).unwrap().find(&v).is_none());
    }
}
