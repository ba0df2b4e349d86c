//! CloudFront's rules for an invalidation batch: how many paths, and what a path may look like.

use super::errors::ApiError;

/// At most this many paths in one `CreateInvalidation` request (over: `BatchTooLarge`).
pub const MAX_PATHS_PER_BATCH: usize = 3000;
/// At most this many characters in one path (over: `InvalidArgument`).
pub const MAX_PATH_LENGTH: usize = 4000;

/// A batch as it came off the wire, before validation (absent elements are `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawBatch {
    /// `<Paths><Quantity>`, as written.
    pub quantity: Option<String>,
    /// `<Paths><Items><Path>…`; `None` when `<Items>` is absent.
    pub items: Option<Vec<String>>,
    /// Whether `<Paths>` was present at all.
    pub has_paths: bool,
    /// `<CallerReference>`.
    pub caller_reference: Option<String>,
}

/// A valid batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The caller reference.
    pub caller_reference: String,
    /// The paths, in request order.
    pub paths: Vec<String>,
}

/// At most this many characters in one cache tag, after the `#`.
pub const MAX_TAG_LENGTH: usize = 256;

/// A wildcard path ends in `*` (the only place a `*` may be); a tag is never a wildcard.
pub fn is_wildcard(path: &str) -> bool {
    !is_tag(path) && path.ends_with('*')
}

/// A cache tag item starts with `#` ("What you need to know when invalidating tags").
pub fn is_tag(item: &str) -> bool {
    item.starts_with('#')
}

/// Why a tag item is not valid, or `None` if it is: 1 to 256 characters after the `#`, ASCII
/// visible characters (33-126) without commas, no `*` wildcard.
pub fn tag_problem(item: &str) -> Option<String> {
    let tag = &item[1..];
    if tag.is_empty() {
        return Some("a tag invalidation item needs a tag after #".into());
    }
    let len = tag.chars().count();
    if len > MAX_TAG_LENGTH {
        return Some(format!(
            "a cache tag is {len} characters long; the maximum is {MAX_TAG_LENGTH}"
        ));
    }
    if tag.contains('*') {
        return Some(format!(
            "tag invalidation items do not support the * wildcard: {item:?}"
        ));
    }
    if let Some(c) = tag.chars().find(|&c| !matches!(c, '!'..='~') || c == ',') {
        return Some(format!(
            "a cache tag may contain only ASCII visible characters (33-126) excluding commas, found {c:?} in {item:?}"
        ));
    }
    None
}

/// Why a path (or tag item) is not valid, or `None` if it is.
pub fn path_problem(path: &str) -> Option<String> {
    if path.is_empty() {
        return Some("an invalidation path must not be empty".into());
    }
    if is_tag(path) {
        return tag_problem(path);
    }
    let len = path.chars().count();
    if len > MAX_PATH_LENGTH {
        return Some(format!(
            "an invalidation path is {len} characters long; the maximum is {MAX_PATH_LENGTH}"
        ));
    }
    if let Some(pos) = path.find('*')
        && pos + 1 != path.len()
    {
        return Some(format!(
            "the wildcard * must be the last character of a path: {path:?}"
        ));
    }
    None
}

/// Checks a batch the way CloudFront does: required elements, `Quantity` against `Items`, the
/// batch size, then every path.
pub fn validate(raw: RawBatch) -> Result<Batch, ApiError> {
    let caller_reference = raw.caller_reference.ok_or_else(|| {
        ApiError::malformed_xml("Value null at 'invalidationBatch.callerReference' failed to satisfy constraint: Member must not be null")
    })?;
    if !raw.has_paths {
        return Err(ApiError::malformed_xml(
            "Value null at 'invalidationBatch.paths' failed to satisfy constraint: Member must not be null",
        ));
    }
    let quantity = raw.quantity.ok_or_else(|| {
        ApiError::malformed_xml("Value null at 'invalidationBatch.paths.quantity' failed to satisfy constraint: Member must not be null")
    })?;
    let quantity: i64 = quantity.trim().parse().map_err(|_| {
        ApiError::malformed_xml(format!(
            "Value '{quantity}' at 'invalidationBatch.paths.quantity' is not an integer"
        ))
    })?;
    let paths = raw.items.unwrap_or_default();
    if quantity < 0 || quantity as u64 != paths.len() as u64 {
        return Err(ApiError::inconsistent_quantities());
    }
    if paths.len() > MAX_PATHS_PER_BATCH {
        return Err(ApiError::batch_too_large(MAX_PATHS_PER_BATCH));
    }
    if paths.is_empty() {
        return Err(ApiError::invalid_argument(
            "Your request contains no invalidation paths.",
        ));
    }
    if caller_reference.is_empty() {
        return Err(ApiError::invalid_argument(
            "The CallerReference must not be empty.",
        ));
    }
    if let Some(problem) = paths.iter().find_map(|p| path_problem(p)) {
        return Err(ApiError::invalid_argument(format!(
            "Your request contains one or more invalid invalidation paths: {problem}."
        )));
    }
    Ok(Batch {
        caller_reference,
        paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(quantity: &str, items: &[&str]) -> RawBatch {
        RawBatch {
            quantity: Some(quantity.into()),
            items: Some(items.iter().map(|s| s.to_string()).collect()),
            has_paths: true,
            caller_reference: Some("ref".into()),
        }
    }

    #[test]
    fn valid_paths() {
        for p in [
            "/index.html",
            "index.html",
            "/images/*",
            "/images/image*",
            "/*",
            "*",
            "/a b%20c",
        ] {
            assert_eq!(path_problem(p), None, "{p}");
        }
        let b = validate(raw("2", &["/a", "/b/*"])).unwrap();
        assert_eq!(b.paths, vec!["/a", "/b/*"]);
        assert!(is_wildcard("/b/*") && !is_wildcard("/b"));
    }

    #[test]
    fn invalid_paths() {
        let long = format!("/{}", "a".repeat(MAX_PATH_LENGTH));
        let exact = "a".repeat(MAX_PATH_LENGTH);
        assert!(path_problem(&exact).is_none());
        for p in ["", "/assets/app.*.js", "/**", long.as_str()] {
            assert!(path_problem(p).is_some(), "{p}");
            let err = validate(raw("1", &[p])).unwrap_err();
            assert_eq!(err.code, "InvalidArgument", "{p}");
        }
    }

    #[test]
    fn tag_items() {
        for ok in [
            "#product:electronics",
            "#a",
            "#Brand:ACME",
            &format!("#{}", "t".repeat(256)),
        ] {
            assert_eq!(path_problem(ok), None, "{ok}");
            assert!(!is_wildcard(ok));
        }
        let too_long = format!("#{}", "t".repeat(257));
        for bad in ["#", "#a*", "#a,b", "#a b", "#caf\u{e9}", too_long.as_str()] {
            let err = validate(raw("2", &["/ok", bad])).unwrap_err();
            assert_eq!(
                (err.code, err.status.as_u16()),
                ("InvalidArgument", 400),
                "{bad}"
            );
        }
    }

    #[test]
    fn quantities_and_sizes() {
        assert_eq!(
            validate(raw("3", &["/a", "/b"])).unwrap_err().code,
            "InconsistentQuantities"
        );
        assert_eq!(
            validate(raw("-1", &[])).unwrap_err().code,
            "InconsistentQuantities"
        );
        assert_eq!(
            validate(raw("x", &["/a"])).unwrap_err().code,
            "MalformedXML"
        );
        assert_eq!(validate(raw("0", &[])).unwrap_err().code, "InvalidArgument");
        let many: Vec<String> = (0..=MAX_PATHS_PER_BATCH).map(|i| format!("/{i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let err = validate(raw(&many.len().to_string(), &refs)).unwrap_err();
        assert_eq!((err.code, err.status.as_u16()), ("BatchTooLarge", 413));
        assert!(validate(raw(&(many.len() - 1).to_string(), &refs[1..])).is_ok());
        let mut missing = raw("1", &["/a"]);
        missing.caller_reference = None;
        assert_eq!(validate(missing).unwrap_err().code, "MalformedXML");
    }
}
