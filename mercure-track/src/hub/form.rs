//! Form and media-type parsing with the strictness of the reference hub's HTTP stack.
//!
//! The reference hub (Go) reads publish bodies with `Request.ParseForm`, which decodes
//! `application/x-www-form-urlencoded` with `url.ParseQuery`: `&` separates pairs, a `;`
//! in a pair is an error ("invalid semicolon separator"), a `%` not followed by two hex digits
//! is an error, `+` is a space. Subscriptions read the query with `URL.Query`, which keeps
//! the pairs that decoded and drops the others.

/// The pairs of a form or query string, in order; `error` when any pair was malformed.
#[derive(Debug, Default)]
pub(crate) struct Form {
    pairs: Vec<(String, String)>,
    /// Keys of which a value was not valid UTF-8 (kept with replacement characters).
    not_utf8: Vec<String>,
    /// Whether a pair was malformed (and dropped).
    pub(crate) malformed: bool,
}

impl Form {
    /// Parses `input` as `url.ParseQuery` does.
    pub(crate) fn parse(input: &[u8]) -> Self {
        let mut form = Self::default();
        for pair in input.split(|&b| b == b'&') {
            if pair.is_empty() {
                continue;
            }
            let (key, value) = match pair.iter().position(|&b| b == b'=') {
                Some(eq) => (&pair[..eq], &pair[eq + 1..]),
                None => (pair, &[][..]),
            };
            if pair.contains(&b';') {
                form.malformed = true;
                continue;
            }
            match (unescape(key), unescape(value)) {
                (Some((key, _)), Some((value, utf8))) => {
                    if !utf8 {
                        form.not_utf8.push(key.clone());
                    }
                    form.pairs.push((key, value));
                }
                _ => form.malformed = true,
            }
        }
        form
    }

    /// Every value of `key`, in order.
    pub(crate) fn all(&self, key: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The first value of `key` (Go's `Values.Get`); `""` when absent.
    pub(crate) fn first(&self, key: &str) -> &str {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Whether every value of `key` was valid UTF-8.
    pub(crate) fn is_utf8(&self, key: &str) -> bool {
        !self.not_utf8.iter().any(|k| k == key)
    }

    /// The pairs, in order.
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether `key` is present, with any value.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == key)
    }
}

/// Percent-decoding of a query component, and whether it was valid UTF-8; `None` for a bad
/// `%` escape.
fn unescape(input: &[u8]) -> Option<(String, bool)> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'%' => {
                let hi = hex(*input.get(i + 1)?)?;
                let lo = hex(*input.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    match String::from_utf8(out) {
        Ok(text) => Some((text, true)),
        Err(error) => Some((
            String::from_utf8_lossy(error.as_bytes()).into_owned(),
            false,
        )),
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The media type of a `Content-Type` value, lowercased, as Go's `mime.ParseMediaType`
/// reads it; `None` when the value is malformed (bad token, bad or repeated parameter).
pub(crate) fn media_type(value: &str) -> Option<String> {
    let (base, mut params) = value.split_once(';').unwrap_or((value, ""));
    let base = base.trim().to_ascii_lowercase();
    let (kind, subtype) = base.split_once('/').unwrap_or((&base, ""));
    if !is_token(kind) || (base.contains('/') && !is_token(subtype)) {
        return None;
    }
    let mut seen = Vec::new();
    loop {
        params = params.trim_start();
        if params.is_empty() {
            break;
        }
        let (param, rest) = split_param(params)?;
        match param {
            // A trailing `;` is ignored.
            None => break,
            Some(key) => {
                if seen.contains(&key) {
                    return None;
                }
                seen.push(key);
            }
        }
        params = rest;
    }
    Some(base)
}

/// One `key=value` parameter (token or quoted-string value) and what follows its `;`.
fn split_param(input: &str) -> Option<(Option<String>, &str)> {
    if input.trim() == ";" || input.is_empty() {
        return Some((None, ""));
    }
    let (key, rest) = input.split_once('=')?;
    let key = key.trim();
    if !is_token(key) {
        return None;
    }
    let rest = rest.trim_start();
    let (value_ok, after) = if let Some(quoted) = rest.strip_prefix('"') {
        let mut escaped = false;
        let mut end = None;
        for (i, c) in quoted.char_indices() {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end?;
        (true, &quoted[end + 1..])
    } else {
        let end = rest.find(|c: char| !is_token_char(c)).unwrap_or(rest.len());
        (end > 0, &rest[end..])
    };
    if !value_ok {
        return None;
    }
    let after = after.trim_start();
    if after.is_empty() {
        return Some((Some(key.to_ascii_lowercase()), ""));
    }
    let rest = after.strip_prefix(';')?;
    Some((Some(key.to_ascii_lowercase()), rest))
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_token_char)
}

fn is_token_char(c: char) -> bool {
    c.is_ascii() && !c.is_ascii_control() && !" ()<>@,;:\\\"/[]?=".contains(c)
}

#[cfg(test)]
mod tests {
    use super::{Form, media_type};

    #[test]
    fn forms_follow_go_parse_query() {
        let form = Form::parse(b"topic=a&topic=b%2Fc&data=x+y&&private");
        assert!(!form.malformed);
        assert_eq!(form.all("topic"), ["a", "b/c"]);
        assert_eq!(form.first("data"), "x y");
        assert!(form.has("private"));
        assert_eq!(form.first("private"), "");
        assert!(Form::parse(b"topic=a;data=b").malformed);
        assert!(Form::parse(b"topic=%zz").malformed);
        assert!(Form::parse(b"topic=%4").malformed);
        // Anywhere in the pair: a raw `;` in a value is an error too (encoded, it is `%3B`).
        assert!(Form::parse(b"data=a;b").malformed);
        assert_eq!(Form::parse(b"data=a%3Bb").first("data"), "a;b");
    }

    #[test]
    fn media_types() {
        let form = "application/x-www-form-urlencoded";
        assert_eq!(media_type(form).as_deref(), Some(form));
        assert_eq!(
            media_type("Application/X-WWW-Form-Urlencoded; charset=UTF-8").as_deref(),
            Some(form)
        );
        assert_eq!(media_type(&format!("{form};")).as_deref(), Some(form));
        assert_eq!(
            media_type(&format!("{form}; charset=\"a b\"")).as_deref(),
            Some(form)
        );
        assert_eq!(media_type(&format!("{form}; charset")), None);
        assert_eq!(media_type(&format!("{form}; a=1; a=2")), None);
        assert_eq!(media_type("application/"), None);
        assert_eq!(media_type("a b/c"), None);
    }
}
