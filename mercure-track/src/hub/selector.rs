//! Topic matchers: for protocol 0.x `*`, an exact topic, or a URI template (RFC 6570); for
//! protocol 1.0 `*`, an exact topic, or a WHATWG URL Pattern (through the `urlpattern` crate,
//! whose matching is also regex-based and linear). Both arrive as [`Matcher`]s decoded by the
//! [`crate::protocol`] module of their generation.
//!
//! The reference hub (v0.24.2, `topicselector.go`) matches a selector that is `*` or equal to
//! the topic; otherwise, when the selector parses as a URI template, it matches the topic
//! against the regular expression the `yosida95/uritemplate` v3 library derives from it
//! (`Template.Regexp`); a selector that does not parse matches only itself. This module
//! follows the same rules, written from that library's documented behaviour: the grammar of
//! `parse.go` (literals, operators, variable names, prefixes, explode) and the expression
//! shapes of `expression.go` (every expression optional, values of the operator's character
//! class, `,` inside values of the simple and label operators).
//!
//! Templates compile to a [`regex::Regex`], whose matching time is linear in the topic length
//! (no backtracking): a selector such as `{+v0}{+v1}…{+v9}Z` costs the same as `{+v}`.

use regex::Regex;
use url::Url;
use urlpattern::{UrlPattern, UrlPatternInit, UrlPatternMatchInput};

use crate::protocol::Matcher;

/// A URL pattern that does not compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidPattern;

/// A compiled topic selector.
#[derive(Debug)]
pub(crate) enum Selector {
    /// `*`: every topic.
    Any,
    /// A URI template (also matches its own text exactly, as in the reference).
    Template { raw: String, regex: Regex },
    /// A plain string, or a template that does not parse: exact match only.
    Exact(String),
    /// A URL pattern; topics are read as URLs relative to `base`.
    UrlPattern { pattern: Box<UrlPattern>, base: Url },
}

impl Selector {
    /// Compiles `matcher`; URL patterns are read relative to `base`.
    pub(crate) fn compile(matcher: &Matcher, base: &Url) -> Result<Self, InvalidPattern> {
        Ok(match matcher {
            Matcher::Any => Self::Any,
            Matcher::Exact(exact) => Self::Exact(exact.clone()),
            Matcher::Template(template) => Self::new(template),
            Matcher::UrlPattern(pattern) => {
                let init =
                    UrlPatternInit::parse_constructor_string::<Regex>(pattern, Some(base.clone()))
                        .map_err(|_| InvalidPattern)?;
                Self::UrlPattern {
                    pattern: Box::new(
                        UrlPattern::parse(init, Default::default()).map_err(|_| InvalidPattern)?,
                    ),
                    base: base.clone(),
                }
            }
        })
    }

    /// Compiles a 0.x selector string.
    pub(crate) fn new(selector: &str) -> Self {
        if selector == "*" {
            return Self::Any;
        }
        if selector.contains('{')
            && let Some(pattern) = template_regex(selector)
            && let Ok(regex) = Regex::new(&pattern)
        {
            return Self::Template {
                raw: selector.to_owned(),
                regex,
            };
        }
        Self::Exact(selector.to_owned())
    }

    /// Whether this selector selects `topic`.
    pub(crate) fn matches(&self, topic: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(exact) => exact == topic,
            Self::Template { raw, regex } => raw == topic || regex.is_match(topic),
            Self::UrlPattern { pattern, base } => base.join(topic).is_ok_and(|url| {
                pattern
                    .test(UrlPatternMatchInput::Url(url))
                    .unwrap_or(false)
            }),
        }
    }

    /// Whether this is the `*` selector.
    pub(crate) fn is_any(&self) -> bool {
        matches!(self, Self::Any)
    }
}

/// A set of compiled selectors.
#[derive(Debug, Default)]
pub(crate) struct Selectors(Vec<Selector>);

impl Selectors {
    /// Compiles every matcher.
    pub(crate) fn compile(matchers: &[Matcher], base: &Url) -> Result<Self, InvalidPattern> {
        matchers
            .iter()
            .map(|m| Selector::compile(m, base))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether any selector selects any of `topics` (the reference's `canReceive`).
    pub(crate) fn any_topic(&self, topics: &[String]) -> bool {
        topics
            .iter()
            .any(|topic| self.0.iter().any(|s| s.matches(topic)))
    }

    /// Whether every topic is selected by some selector, or `*` is among the selectors (the
    /// reference's `canDispatch`).
    pub(crate) fn every_topic(&self, topics: &[String]) -> bool {
        if self.0.iter().any(Selector::is_any) {
            return true;
        }
        topics
            .iter()
            .all(|topic| self.0.iter().any(|s| s.matches(topic)))
    }
}

/// The operators of RFC 6570 level 3 and 4 expressions.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Operator {
    Simple,
    Reserved,
    Fragment,
    Label,
    Path,
    PathParameter,
    Query,
    QueryContinuation,
}

impl Operator {
    /// What precedes the first value.
    fn first(self) -> &'static str {
        match self {
            Self::Simple | Self::Reserved => "",
            Self::Fragment => "#",
            Self::Label => ".",
            Self::Path => "/",
            Self::PathParameter => ";",
            Self::Query => "?",
            Self::QueryContinuation => "&",
        }
    }

    /// What separates values.
    fn separator(self) -> &'static str {
        match self {
            Self::Simple | Self::Reserved | Self::Fragment => ",",
            Self::Label => ".",
            Self::Path => "/",
            Self::PathParameter => ";",
            Self::Query | Self::QueryContinuation => "&",
        }
    }

    /// Whether values are `name=value` pairs.
    fn named(self) -> bool {
        matches!(
            self,
            Self::PathParameter | Self::Query | Self::QueryContinuation
        )
    }

    /// Whether values may contain reserved characters unencoded.
    fn allows_reserved(self) -> bool {
        matches!(self, Self::Reserved | Self::Fragment)
    }
}

/// RFC 3986 unreserved characters, as a regex class body.
const UNRESERVED: &str = r"\x2d\x2e\x30-\x39\x41-\x5a\x5f\x61-\x7a\x7e";
/// RFC 3986 reserved characters, as a regex class body.
const RESERVED: &str = r"\x21\x23\x24\x26-\x2c\x2f\x3a\x3b\x3d\x3f\x40\x5b\x5d";

/// One value: characters of the operator's class or percent-encoded octets.
fn value_class(out: &mut String, operator: Operator, named: bool) {
    out.push_str("(?:(?:[");
    if operator.allows_reserved() {
        out.push_str(UNRESERVED);
        out.push_str(RESERVED);
    } else {
        out.push_str(r"\x2c");
        if named {
            out.push_str(r"\x3d");
        }
        out.push_str(UNRESERVED);
    }
    out.push_str("]|%[[:xdigit:]][[:xdigit:]])*)");
}

/// A parsed variable specification.
struct VarSpec {
    explode: bool,
}

/// The regular expression of `template`, or `None` when it is not a valid URI template.
fn template_regex(template: &str) -> Option<String> {
    let mut out = String::from("^");
    let mut rest = template;
    while !rest.is_empty() {
        let open = rest.find('{').unwrap_or(rest.len());
        let literal = &rest[..open];
        if !literal.is_empty() {
            check_literal(literal)?;
            out.push_str("(?:");
            out.push_str(&regex::escape(literal));
            out.push(')');
        }
        if open == rest.len() {
            break;
        }
        let close = rest[open..].find('}')? + open;
        expression_regex(&mut out, &rest[open + 1..close])?;
        rest = &rest[close + 1..];
    }
    out.push('$');
    Some(out)
}

/// Literals: the characters RFC 6570 allows outside expressions, and `%XX` triplets.
fn check_literal(literal: &str) -> Option<()> {
    let mut chars = literal.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            let (a, b) = (chars.next()?, chars.next()?);
            if !a.is_ascii_hexdigit() || !b.is_ascii_hexdigit() {
                return None;
            }
            continue;
        }
        let ok = matches!(c,
            '!' | '#' | '$' | '&'..=';' | '=' | '?'..='[' | ']' | '_' | 'a'..='z' | '~'
            | '\u{A0}'..='\u{D7FF}' | '\u{E000}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFEF}'
            | '\u{10000}'..='\u{10FFFD}')
            && !is_noncharacter_plane_end(c)
            && !('\u{E0000}'..='\u{E0FFF}').contains(&c);
        if !ok {
            return None;
        }
    }
    Some(())
}

/// `U+xFFFE` and `U+xFFFF` of planes 1 to 16 are not allowed in literals.
fn is_noncharacter_plane_end(c: char) -> bool {
    let code = u32::from(c);
    code >= 0x1_0000 && (code & 0xFFFF) >= 0xFFFE
}

/// Appends the regex of the expression between braces, `None` when it does not parse.
fn expression_regex(out: &mut String, expression: &str) -> Option<()> {
    let (operator, list) = match expression.chars().next()? {
        '+' => (Operator::Reserved, &expression[1..]),
        '#' => (Operator::Fragment, &expression[1..]),
        '.' => (Operator::Label, &expression[1..]),
        '/' => (Operator::Path, &expression[1..]),
        ';' => (Operator::PathParameter, &expression[1..]),
        '?' => (Operator::Query, &expression[1..]),
        '&' => (Operator::QueryContinuation, &expression[1..]),
        '=' | ',' | '!' | '@' | '|' => return None,
        _ => (Operator::Simple, expression),
    };
    let vars = list.split(',').map(var_spec).collect::<Option<Vec<_>>>()?;
    let first_explodes = vars.first()?.explode;
    let any_explodes = vars.iter().any(|v| v.explode);
    let named = operator.named();

    let prefix = operator.first();
    if !prefix.is_empty() {
        out.push_str("(?:");
        out.push_str(&regex::escape(prefix));
    }
    out.push('(');
    value_class(out, operator, named || first_explodes);
    if vars.len() > 1 || any_explodes {
        out.push_str("(?:");
        out.push_str(&regex::escape(operator.separator()));
        value_class(out, operator, named || any_explodes);
        out.push(')');
        if any_explodes {
            out.push('*');
        } else {
            out.push_str(&format!("{{0,{}}}", vars.len() - 1));
        }
    }
    out.push(')');
    if !prefix.is_empty() {
        out.push(')');
    }
    out.push('?');
    Some(())
}

/// `name`, `name:N` (1 ≤ N ≤ 9999) or `name*`.
fn var_spec(spec: &str) -> Option<VarSpec> {
    let (name, explode) = match spec.strip_suffix('*') {
        Some(name) => (name, true),
        None => (spec, false),
    };
    let name = match name.split_once(':') {
        Some((name, length)) if !explode => {
            if length.is_empty()
                || length.starts_with('0')
                || length.len() > 4
                || !length.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            name
        }
        Some(_) => return None,
        None => name,
    };
    valid_name(name).then_some(VarSpec { explode })
}

/// Variable names: letters, digits, `_`, `%XX` triplets, and single dots not at either end.
fn valid_name(name: &str) -> bool {
    if name.is_empty() || name.starts_with('.') || name.ends_with('.') || name.contains("..") {
        return false;
    }
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                if i + 2 >= bytes.len()
                    || !bytes[i + 1].is_ascii_hexdigit()
                    || !bytes[i + 2].is_ascii_hexdigit()
                {
                    return false;
                }
                i += 3;
            }
            b'.' | b'_' => i += 1,
            b if b.is_ascii_alphanumeric() => i += 1,
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::Selector;

    fn matches(selector: &str, topic: &str) -> bool {
        Selector::new(selector).matches(topic)
    }

    #[test]
    fn exact_and_wildcard() {
        assert!(matches("*", "orders/1"));
        assert!(matches("orders", "orders"));
        assert!(!matches("orders", "orders/1"));
        // A selector that is not a valid template still matches itself.
        assert!(matches("orders/{id", "orders/{id"));
        assert!(!matches("orders/{id", "orders/1"));
    }

    #[test]
    fn simple_expressions_follow_the_reference_library() {
        assert!(matches("orders/{id}", "orders/abc"));
        assert!(!matches("orders/{id}", "orders/abc/images"));
        // Every expression is optional and values may contain `,` (a list).
        assert!(matches("orders/{id}", "orders/"));
        assert!(matches("orders/{id}", "orders/a,b"));
        // Spaces are not URI characters; percent-encoded octets are.
        assert!(!matches("orders/{id}", "orders/a b"));
        assert!(matches("orders/{id}", "orders/a%20b"));
        assert!(!matches("orders/{id}", "orders/a%2"));
        assert!(matches("orders/{id}/images", "orders/abc/images"));
        assert!(!matches("users/{id}", "orders/1"));
    }

    #[test]
    fn operators() {
        assert!(matches(
            "https://example.com/{+path}",
            "https://example.com/a/b/c"
        ));
        assert!(matches(
            "https://example.com/books{?topic}",
            "https://example.com/books?topic=x"
        ));
        assert!(matches(
            "https://example.com/books{?topic}",
            "https://example.com/books"
        ));
        assert!(matches("a{/path*}", "a/b/c"));
        assert!(matches("a{#frag}", "a#x/y"));
        assert!(matches("a{.ext}", "a.json"));
        assert!(matches("a{;p}", "a;p=1"));
        assert!(matches("a{?x,y}", "a?x=1&y=2"));
        assert!(!matches("a{?x,y}", "a?x=1&y=2&z=3"));
        assert!(matches("a{?x*}", "a?x=1&y=2&z=3"));
        assert!(matches("a{&x}", "a&x=1"));
        assert!(matches("{id:3}", "abcdef"));
    }

    #[test]
    fn invalid_templates_are_plain_strings() {
        for template in [
            "a{}",
            "a{=x}",
            "a{x:0}",
            "a{x:10000}",
            "a b{x}",
            "a{.x.}",
            "a{x..y}",
        ] {
            assert!(
                matches!(Selector::new(template), Selector::Exact(_)),
                "{template}"
            );
        }
    }

    #[test]
    fn url_patterns() {
        use super::{Matcher, Url};
        let base = Url::parse("https://hub.example/.well-known/mercure").expect("base");
        let pattern =
            |p: &str| Selector::compile(&Matcher::UrlPattern(p.into()), &base).expect("pattern");
        let books = pattern("https://example.com/books/:id");
        assert!(books.matches("https://example.com/books/1"));
        assert!(!books.matches("https://example.com/books/1/chapters"));
        assert!(!books.matches("https://example.com/users/1"));
        // Relative patterns and topics are read against the base.
        let relative = pattern("/orders/:id");
        assert!(relative.matches("/orders/abc"));
        assert!(relative.matches("https://hub.example/orders/abc"));
        assert!(!relative.matches("/orders/abc/images"));
        assert!(
            Selector::compile(&Matcher::UrlPattern("https://example.com/(".into()), &base).is_err()
        );
    }

    #[test]
    fn matching_is_linear() {
        // Selectors that made a backtracking matcher take seconds: now a single pass.
        let selector: String = (0..12).map(|i| format!("{{+v{i}}}")).collect::<String>() + "Z";
        let selector = Selector::new(&selector);
        let topic = "a".repeat(10_000);
        assert!(!selector.matches(&topic));
        assert!(selector.matches(&(topic + "Z")));
    }
}
