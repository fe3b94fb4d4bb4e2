//! Topic selectors: `*`, an exact topic, or a URI template (RFC 6570 level 1 and 2).

/// Whether `selector` selects `topic`.
pub(crate) fn matches(selector: &str, topic: &str) -> bool {
    if selector == "*" || selector == topic {
        return true;
    }
    if !selector.contains('{') {
        return false;
    }
    match parse_template(selector) {
        Some(parts) => match_parts(&parts, topic),
        None => false,
    }
}

/// Whether any of `selectors` selects any of `topics`.
pub(crate) fn any_matches(selectors: &[String], topics: &[String]) -> bool {
    selectors
        .iter()
        .any(|selector| topics.iter().any(|topic| matches(selector, topic)))
}

enum Part<'a> {
    Literal(&'a str),
    /// `{var}`: one or more characters, none of them reserved (`/`, `?`, `#`, ...).
    Simple,
    /// `{+var}`: one or more characters, anything.
    Reserved,
}

fn parse_template(template: &str) -> Option<Vec<Part<'_>>> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(Part::Literal(&rest[..open]));
        }
        let close = rest[open..].find('}')? + open;
        let expression = &rest[open + 1..close];
        parts.push(if expression.starts_with('+') {
            Part::Reserved
        } else {
            Part::Simple
        });
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Literal(rest));
    }
    Some(parts)
}

fn is_reserved(c: char) -> bool {
    matches!(
        c,
        ':' | '/'
            | '?'
            | '#'
            | '['
            | ']'
            | '@'
            | '!'
            | '$'
            | '&'
            | '\''
            | '('
            | ')'
            | '*'
            | '+'
            | ','
            | ';'
            | '='
    )
}

fn match_parts(parts: &[Part<'_>], topic: &str) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return topic.is_empty();
    };
    match first {
        Part::Literal(literal) => topic
            .strip_prefix(literal)
            .is_some_and(|remaining| match_parts(rest, remaining)),
        Part::Simple | Part::Reserved => {
            let reserved = matches!(first, Part::Reserved);
            // Try every non-empty prefix the expression may take, shortest first.
            for (index, c) in topic.char_indices() {
                if !reserved && is_reserved(c) {
                    return false;
                }
                let end = index + c.len_utf8();
                if match_parts(rest, &topic[end..]) {
                    return true;
                }
            }
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn selectors() {
        assert!(matches("*", "orders/1"));
        assert!(matches("orders", "orders"));
        assert!(!matches("orders", "orders/1"));
        assert!(matches("orders/{id}", "orders/abc"));
        assert!(!matches("orders/{id}", "orders/abc/images"));
        assert!(!matches("orders/{id}", "orders/"));
        assert!(matches("orders/{id}/images", "orders/abc/images"));
        assert!(matches(
            "https://example.com/{+path}",
            "https://example.com/a/b/c"
        ));
        assert!(!matches("users/{id}", "orders/1"));
        assert!(!matches("orders/{id", "orders/1"));
    }
}
