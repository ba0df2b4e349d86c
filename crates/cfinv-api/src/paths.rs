//! The path engine: turns the paths a user wrote into the paths an invalidation request sends.
//!
//! Pure and free of I/O. [`normalize`] validates every path (reporting all problems at once),
//! adds a missing leading `/`, URL-encodes exactly what CloudFront wants encoded, drops exact
//! duplicates and drops paths already covered by a wildcard in the same request. Dropping never
//! changes what gets invalidated, only what gets billed: a wildcard path counts as one path
//! however many objects it evicts.
//!
//! Rules follow the CloudFront Developer Guide, "Specifying the files to invalidate"
//! (`Invalidation.md`, section `invalidation-specifying-objects`):
//! - paths are case sensitive (`/images/image.jpg` and `/images/Image.jpg` are different files);
//! - the path is relative to the distribution; the API requires the leading `/`;
//! - `*` replaces zero or more characters and must be the last character of the path;
//! - the maximum length of a path is 4,000 characters;
//! - non-ASCII characters and the unsafe characters of RFC 1738 must be URL-encoded, and no
//!   other character may be, "or CloudFront will not invalidate the old version".

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// Most paths CloudFront accepts in one `CreateInvalidation` request (over: `BatchTooLarge`).
pub const MAX_PATHS: usize = 3000;

/// Longest path CloudFront accepts, in characters, measured on the path as it is sent
/// (after URL-encoding, so `é` counts as the six characters of `%C3%A9`).
pub const MAX_PATH_LEN: usize = 4000;

/// Characters encoded on the way out: the unsafe characters of RFC 1738 section 2.2 plus
/// everything [`CONTROLS`] holds (0x00–0x1F and 0x7F, which RFC 1738 also requires to be
/// encoded). Bytes of non-ASCII characters (0x80–0xFF) are always encoded by
/// [`utf8_percent_encode`], one `%XX` per UTF-8 byte, with uppercase hex digits.
///
/// Everything else is kept as written, including `?` `&` `=` `/` `*` `+` `:` `@` `!` `$` `'`
/// `(` `)` `,` `;`: the developer guide warns that CloudFront misses the cached object when
/// any other character is encoded (`?` and `=` must stay literal to invalidate query-string
/// variants such as `/images/image.jpg?parameter1=a`; `*` must stay literal to be a wildcard).
///
/// `~` is encoded as `%7E`. RFC 1738 lists it as unsafe ("gateways and other transport agents
/// are known to sometimes modify such characters"), the developer guide points to RFC 1738,
/// and CloudFront rejects a raw `~` in an invalidation path with `InvalidArgument` ("Your
/// request contains one or more invalid invalidation paths"; reported in aws/aws-sdk#525,
/// bep/s3deploy#46, apancutt/deploy-aws-s3-cloudfront#6), so encoding is the only form the
/// API accepts. Caveat from aws/aws-sdk#525: `%7E` is accepted but was reported not to evict
/// objects requested with a literal `~` (such as webpack's `runtime~main.js`); a wildcard
/// that ends before the `~` (`/static/js/runtime*`) is the reliable fallback.
///
/// `%` is in the set, but a `%` that starts a valid escape (`%` and two hex digits) is copied
/// as written instead (see [`encode`]): that part of the path is already encoded.
const UNSAFE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'<')
    .add(b'>')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'\\')
    .add(b'^')
    .add(b'~')
    .add(b'[')
    .add(b']')
    .add(b'`');

/// The paths to submit, and everything that was left out with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedPaths {
    /// What to submit: normalized, in first-seen input order, without duplicates and without
    /// paths covered by another path in this list.
    pub paths: Vec<String>,
    /// Every input left out, in input order.
    pub dropped: Vec<DroppedPath>,
}

impl NormalizedPaths {
    /// Paths CloudFront bills for this request (every submitted path counts once; a wildcard
    /// counts as one path however many objects it evicts).
    pub fn billed(&self) -> usize {
        self.paths.len()
    }

    /// Submitted wildcard paths: these count against the limit of 15 wildcard paths in
    /// progress per distribution.
    pub fn wildcards(&self) -> usize {
        self.paths.iter().filter(|p| is_wildcard(p)).count()
    }

    /// Submitted individual-object paths: these count against the limit of 3,000 object paths
    /// in progress per distribution.
    pub fn objects(&self) -> usize {
        self.billed() - self.wildcards()
    }
}

/// One input path that is not submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedPath {
    /// The path as the user wrote it.
    pub input: String,
    /// The path after normalization (leading `/`, URL-encoding).
    pub normalized: String,
    /// Why it is not submitted.
    pub reason: DropReason,
}

/// Why an input path is not submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    /// An earlier input normalizes to the same path.
    Duplicate,
    /// The submitted wildcard path given here already invalidates it.
    CoveredBy(String),
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::Duplicate => f.write_str("duplicate of an earlier path"),
            DropReason::CoveredBy(wildcard) => write!(f, "covered by {wildcard:?}"),
        }
    }
}

/// One broken rule. Messages name the field (`spec.paths[i]`) and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The list is empty.
    #[error("spec.paths: at least one path is required")]
    NoPaths,
    /// More input paths than one request may carry (counted before deduplication).
    #[error("spec.paths: {count} paths given, at most {max} are allowed in one request", max = MAX_PATHS)]
    TooManyPaths { count: usize },
    /// A path is the empty string.
    #[error("spec.paths[{index}]: a path must not be empty")]
    EmptyPath { index: usize },
    /// `*` appears somewhere other than the last character. `path` is the input as written.
    #[error("spec.paths[{index}]: \"*\" is allowed only as the last character: {path:?}")]
    WildcardNotLast { index: usize, path: String },
    /// The path is longer than [`MAX_PATH_LEN`] once encoded. `path` is the encoded path.
    #[error(
        "spec.paths[{index}]: a path may be at most {max} characters after URL-encoding, this one is {encoded_len}: {preview}",
        max = MAX_PATH_LEN,
        preview = preview(.path)
    )]
    TooLong {
        index: usize,
        path: String,
        encoded_len: usize,
    },
}

/// Every broken rule of a path list, in input order. Display joins them with `"; "`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathErrors(pub Vec<PathError>);

impl fmt::Display for PathErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PathErrors {}

/// Quoted start of a long path, so that an error message stays readable.
fn preview(path: &str) -> String {
    const KEEP: usize = 64;
    match path.char_indices().nth(KEEP) {
        Some((cut, _)) => format!("{:?}…", &path[..cut]),
        None => format!("{path:?}"),
    }
}

/// Whether `path` is a wildcard path (ends with `*`, the only place a `*` may be).
pub fn is_wildcard(path: &str) -> bool {
    path.ends_with('*')
}

/// Whether the wildcard path `wildcard` invalidates everything `path` invalidates, `path`
/// being a different path. Both are compared as normalized (as sent). `*` matches zero or more
/// characters, so `/img*` covers `/img`, `/img/`, `/img-2x/a.png` and `/img/*` (but not
/// `/images/x`: `images` does not start with `img`; `/im*` covers it). A path never covers
/// itself, and a path that is not a wildcard covers nothing else.
///
/// Comparison is byte for byte: case is significant, and `%7e` is not treated as `%7E`
/// (when unsure, keep both: invalidating too much costs a path, too little serves stale data).
pub fn covers(wildcard: &str, path: &str) -> bool {
    match wildcard.strip_suffix('*') {
        Some(prefix) => wildcard != path && path.starts_with(prefix),
        None => false,
    }
}

/// URL-encodes one path as CloudFront wants it: the bytes of non-ASCII characters and the
/// characters in [`UNSAFE`] become uppercase `%XX`; everything else is kept. A valid escape
/// already in the path (`%` and two hex digits, either case) is kept exactly as written, so
/// encoding is idempotent and never double-encodes; a `%` that does not start one becomes `%25`.
/// Does not add the leading `/` nor check any rule; see [`normalize`].
pub fn encode(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let bytes = path.as_bytes();
    let mut segment_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if is_escape(&bytes[i..]) {
            out.extend(utf8_percent_encode(&path[segment_start..i], UNSAFE));
            out.push_str(&path[i..i + 3]);
            i += 3;
            segment_start = i;
        } else {
            i += 1;
        }
    }
    out.extend(utf8_percent_encode(&path[segment_start..], UNSAFE));
    out
}

/// Whether `bytes` starts with a percent escape: `%` followed by two hex digits.
fn is_escape(bytes: &[u8]) -> bool {
    matches!(bytes, [b'%', hi, lo, ..] if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit())
}

/// Checks one input path and returns it as it will be sent, pushing every broken rule.
fn normalize_one(index: usize, input: &str, errors: &mut Vec<PathError>) -> Option<String> {
    if input.is_empty() {
        errors.push(PathError::EmptyPath { index });
        return None;
    }
    let mut ok = true;
    if input.find('*').is_some_and(|at| at != input.len() - 1) {
        errors.push(PathError::WildcardNotLast {
            index,
            path: input.to_owned(),
        });
        ok = false;
    }
    let mut normalized = encode(input);
    if !normalized.starts_with('/') {
        normalized.insert(0, '/');
    }
    // After encoding the path is pure ASCII: its byte length is its character count.
    if normalized.len() > MAX_PATH_LEN {
        errors.push(PathError::TooLong {
            index,
            encoded_len: normalized.len(),
            path: normalized.clone(),
        });
        ok = false;
    }
    ok.then_some(normalized)
}

/// Validates, normalizes, deduplicates and prunes a request's paths.
///
/// Each path gets a leading `/` if it lacks one and is URL-encoded with [`encode`]. Errors:
/// an empty list, more than [`MAX_PATHS`] inputs, an empty path, a `*` before the last
/// character, a path longer than [`MAX_PATH_LEN`] once encoded; all of them are reported.
///
/// Then, in first-seen order: a path equal (after normalization) to an earlier one is dropped
/// as [`DropReason::Duplicate`]; a path covered by a wildcard path of the same request
/// (see [`covers`]) is dropped as [`DropReason::CoveredBy`] naming a submitted wildcard.
/// Every input stays invalidated: each is submitted, equal to a submitted path, or covered by
/// a submitted wildcard. No submitted path covers another.
pub fn normalize<S: AsRef<str>>(input: &[S]) -> Result<NormalizedPaths, PathErrors> {
    if input.is_empty() {
        return Err(PathErrors(vec![PathError::NoPaths]));
    }
    let mut errors = Vec::new();
    if input.len() > MAX_PATHS {
        errors.push(PathError::TooManyPaths { count: input.len() });
    }
    let normalized: Vec<Option<String>> = input
        .iter()
        .enumerate()
        .map(|(index, path)| normalize_one(index, path.as_ref(), &mut errors))
        .collect();
    if !errors.is_empty() {
        return Err(PathErrors(errors));
    }
    let normalized: Vec<String> = normalized.into_iter().flatten().collect();

    // Exact duplicates: the first occurrence stands for all.
    let mut first_seen: HashMap<&str, usize> = HashMap::with_capacity(normalized.len());
    let mut is_duplicate = vec![false; normalized.len()];
    for (index, path) in normalized.iter().enumerate() {
        match first_seen.entry(path) {
            Entry::Occupied(_) => is_duplicate[index] = true,
            Entry::Vacant(slot) => {
                slot.insert(index);
            }
        }
    }

    let coverage = Coverage::new(
        normalized
            .iter()
            .zip(&is_duplicate)
            .filter(|(_, dup)| !**dup)
            .map(|(path, _)| path.as_str()),
    );

    let mut paths = Vec::new();
    let mut dropped = Vec::new();
    for ((raw, path), duplicate) in input.iter().zip(&normalized).zip(is_duplicate) {
        let reason = if duplicate {
            DropReason::Duplicate
        } else if let Some(wildcard) = coverage.covering_wildcard(path) {
            DropReason::CoveredBy(wildcard)
        } else {
            paths.push(path.clone());
            continue;
        };
        dropped.push(DroppedPath {
            input: raw.as_ref().to_owned(),
            normalized: path.clone(),
            reason,
        });
    }
    Ok(NormalizedPaths { paths, dropped })
}

/// The wildcard prefixes of a request, reduced to the minimal ones (those no other wildcard
/// covers) and sorted, so that one binary search finds the wildcard covering a path.
///
/// The minimal prefixes are prefix-free, so if one of them is a prefix of a path, it is the
/// greatest prefix that sorts at or before the path: any string sorting strictly between a
/// prefix `p` of `q` and `q` itself also starts with `p`, which prefix-freedom rules out.
/// Building is O(n log n) comparisons, each lookup O(log n).
struct Coverage<'a> {
    minimal_prefixes: Vec<&'a str>,
}

impl<'a> Coverage<'a> {
    fn new(paths: impl Iterator<Item = &'a str>) -> Self {
        let mut prefixes: Vec<&str> = paths.filter_map(|p| p.strip_suffix('*')).collect();
        prefixes.sort_unstable();
        prefixes.dedup();
        // Sorted, every string starting with `p` follows `p` contiguously, so comparing each
        // prefix with the last minimal one kept is enough.
        let mut minimal_prefixes: Vec<&str> = Vec::with_capacity(prefixes.len());
        for prefix in prefixes {
            if !minimal_prefixes
                .last()
                .is_some_and(|kept| prefix.starts_with(kept))
            {
                minimal_prefixes.push(prefix);
            }
        }
        Coverage { minimal_prefixes }
    }

    /// The submitted wildcard covering `path` (never `path` itself), if any. It is the
    /// shortest covering wildcard, which no other wildcard covers, so it is always submitted.
    fn covering_wildcard(&self, path: &str) -> Option<String> {
        let after = self.minimal_prefixes.partition_point(|p| *p <= path);
        let prefix = self.minimal_prefixes[..after].last()?;
        let wildcard = format!("{prefix}*");
        covers(&wildcard, path).then_some(wildcard)
    }
}

#[cfg(test)]
mod tests;
