//! The path half of target normalisation: percent-escapes, dot segments, repeated slashes.

use std::borrow::Cow;

use super::{EscapedSlashes, TargetError, TargetRules};

/// Normalises an origin-form path (no query) by [`TargetRules`]; borrows when nothing changes.
///
/// The order matters and is the one RFC 3986 §6.2.2 implies: percent-escapes first (so `%2e%2e`
/// becomes `..` before dot segments are resolved), then dot segments (§5.2.4), merging repeated
/// slashes on the way. The result starts with `/`, has no `.` or `..` segment, and (with
/// `merge_slashes`) no empty segment except a final one (a trailing slash is kept: `/a/` and `/a` are
/// different resources).
///
/// ```
/// use mesh_core::proxy::{TargetRules, normalize_path};
///
/// let rules = TargetRules::default();
/// assert_eq!(normalize_path("/x/../admin/users", &rules).unwrap(), "/admin/users");
/// assert_eq!(normalize_path("//admin/./users/", &rules).unwrap(), "/admin/users/");
/// assert_eq!(normalize_path("/%61dmin/%7Euser", &rules).unwrap(), "/admin/~user");
/// assert!(normalize_path("/admin%2Fusers", &rules).is_err()); // an encoded '/' is refused
/// ```
///
/// # Errors
///
/// [`TargetError`] when the path does not start with `/`, holds a broken percent-escape (`%`
/// not followed by two hex digits), or (by default) an encoded `/` or `\` or a raw `\`.
pub fn normalize_path<'a>(path: &'a str, rules: &TargetRules) -> Result<Cow<'a, str>, TargetError> {
    if !path.starts_with('/') {
        return Err(TargetError::NotOriginForm);
    }
    let decoded = decode_unreserved(path, rules.escaped_slashes)?;
    match remove_dot_segments(&decoded, rules.merge_slashes) {
        Some(resolved) => Ok(Cow::Owned(resolved)),
        None => Ok(decoded),
    }
}

/// Whether `byte` is unreserved (RFC 3986 §2.3): its escape and itself mean the same thing.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Decodes escapes of unreserved characters and upper-cases the hex digits of the others
/// (RFC 3986 §6.2.2.1–2). Borrows when there is nothing to change.
fn decode_unreserved(path: &str, slashes: EscapedSlashes) -> Result<Cow<'_, str>, TargetError> {
    let bytes = path.as_bytes();
    if slashes == EscapedSlashes::Reject && bytes.contains(&b'\\') {
        return Err(TargetError::Backslash);
    }
    if !bytes.contains(&b'%') {
        return Ok(Cow::Borrowed(path));
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte != b'%' {
            out.push(byte);
            i += 1;
            continue;
        }
        let (Some(hi), Some(lo)) = (
            bytes.get(i + 1).copied().and_then(hex_value),
            bytes.get(i + 2).copied().and_then(hex_value),
        ) else {
            return Err(TargetError::BadPercentEncoding);
        };
        let value = hi << 4 | lo;
        if is_unreserved(value) {
            out.push(value);
        } else {
            if matches!(value, b'/' | b'\\') && slashes == EscapedSlashes::Reject {
                return Err(TargetError::EncodedSlash);
            }
            out.push(b'%');
            out.push(bytes[i + 1].to_ascii_uppercase());
            out.push(bytes[i + 2].to_ascii_uppercase());
        }
        i += 3;
    }
    // Only ASCII was written: the input's bytes outside escapes are copied as they were (a valid
    // `str`), and decoded bytes are unreserved ASCII.
    let out = String::from_utf8(out).map_err(|_| TargetError::BadPercentEncoding)?;
    Ok(if out == path {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(out)
    })
}

/// Resolves `.` and `..` segments (RFC 3986 §5.2.4; `..` above the root stays at the root) and,
/// with `merge`, drops empty segments. `None` when the path is already in that form.
fn remove_dot_segments(path: &str, merge: bool) -> Option<String> {
    let needs_work = path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
        || (merge && path.contains("//"));
    if !needs_work {
        return None;
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    let mut kept: Vec<&str> = Vec::with_capacity(segments.len());
    let mut trailing_slash = false;
    for (i, segment) in segments.into_iter().enumerate() {
        let is_last = i == last;
        match segment {
            "." => trailing_slash = is_last,
            ".." => {
                kept.pop();
                trailing_slash = is_last;
            }
            "" if merge => trailing_slash = is_last,
            _ => {
                kept.push(segment);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &kept {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || kept.is_empty() {
        out.push('/');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(path: &str) -> Result<String, TargetError> {
        normalize_path(path, &TargetRules::default()).map(Cow::into_owned)
    }

    #[test]
    fn dot_segments_are_resolved() {
        assert_eq!(norm("/x/../admin/users").unwrap(), "/admin/users");
        assert_eq!(norm("/./admin").unwrap(), "/admin");
        assert_eq!(norm("/a/b/../../admin").unwrap(), "/admin");
        assert_eq!(norm("/../../admin").unwrap(), "/admin");
        assert_eq!(norm("/admin/.").unwrap(), "/admin/");
        assert_eq!(norm("/admin/x/..").unwrap(), "/admin/");
        assert_eq!(norm("/..").unwrap(), "/");
        assert_eq!(norm("/a/..b/c.").unwrap(), "/a/..b/c.");
    }

    #[test]
    fn slashes_are_merged_but_a_trailing_one_kept() {
        assert_eq!(norm("//admin/users").unwrap(), "/admin/users");
        assert_eq!(norm("/admin//users//").unwrap(), "/admin/users/");
        assert_eq!(norm("/admin/").unwrap(), "/admin/");
        assert_eq!(norm("/").unwrap(), "/");
        assert_eq!(norm("//").unwrap(), "/");
        let keep = TargetRules::default().merge_slashes(false);
        assert_eq!(normalize_path("//a//b", &keep).unwrap(), "//a//b");
        assert_eq!(normalize_path("//a/./../b", &keep).unwrap(), "//b");
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_others_upper_cased() {
        assert_eq!(norm("/%61dmin/users").unwrap(), "/admin/users");
        assert_eq!(norm("/%2e%2e/admin").unwrap(), "/admin");
        assert_eq!(norm("/x/%2E%2e/admin").unwrap(), "/admin");
        assert_eq!(norm("/a%20b/%7e").unwrap(), "/a%20b/~");
        assert_eq!(norm("/a%3fb%c3%a9").unwrap(), "/a%3Fb%C3%A9");
    }

    #[test]
    fn a_path_already_normal_is_borrowed() {
        let rules = TargetRules::default();
        for path in ["/", "/admin/users", "/a%20b/", "/v1/orders.json"] {
            assert!(matches!(normalize_path(path, &rules), Ok(Cow::Borrowed(p)) if p == path));
        }
    }

    #[test]
    fn encoded_slashes_backslashes_and_broken_escapes_are_refused() {
        assert_eq!(norm("/admin%2Fusers"), Err(TargetError::EncodedSlash));
        assert_eq!(norm("/admin%2fusers"), Err(TargetError::EncodedSlash));
        assert_eq!(norm("/admin%5Cusers"), Err(TargetError::EncodedSlash));
        assert_eq!(norm("/admin\\users"), Err(TargetError::Backslash));
        assert_eq!(norm("/admin%2"), Err(TargetError::BadPercentEncoding));
        assert_eq!(norm("/admin%zz"), Err(TargetError::BadPercentEncoding));
        assert_eq!(norm("admin"), Err(TargetError::NotOriginForm));
        assert_eq!(norm(""), Err(TargetError::NotOriginForm));
        let keep = TargetRules::default().escaped_slashes(EscapedSlashes::Keep);
        assert_eq!(normalize_path("/a%2fb", &keep).unwrap(), "/a%2Fb");
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever the input, an accepted path is in normal form: normalising it again changes
        /// nothing, and no segment is `.`, `..` or (before the last) empty.
        #[test]
        fn normalising_is_idempotent(path in "/[a-zA-Z0-9./%~_-]{0,40}") {
            let rules = TargetRules::default();
            if let Ok(once) = normalize_path(&path, &rules) {
                let twice = normalize_path(&once, &rules).expect("a normal path is accepted");
                prop_assert_eq!(&*twice, &*once);
                let segments: Vec<&str> = once[1..].split('/').collect();
                for (i, segment) in segments.iter().enumerate() {
                    prop_assert!(*segment != "." && *segment != "..", "{}", once);
                    prop_assert!(!segment.is_empty() || i + 1 == segments.len(), "{}", once);
                }
            }
        }
    }
}
