//! The path engine: turns the items a user wrote into the items an invalidation request sends.
//!
//! An item is a path (`/index.html`, `/static/*`) or a cache tag (`#product:electronics`).
//! Pure and free of I/O. [`normalize`] validates every item (reporting all problems at once),
//! adds a missing leading `/` to paths, URL-encodes exactly what CloudFront wants encoded in
//! paths, drops duplicates and drops paths already covered by a wildcard in the same request.
//! Dropping never changes what gets invalidated, only what gets billed: a wildcard path counts
//! as one path however many objects it evicts, and so does a tag.
//!
//! Rules follow the CloudFront Developer Guide, "Specifying the files to invalidate"
//! (`Invalidation.md`, section `invalidation-specifying-objects`):
//! - paths are case sensitive (`/images/image.jpg` and `/images/Image.jpg` are different files);
//! - the path is relative to the distribution; the API requires the leading `/`;
//! - `*` replaces zero or more characters and must be the last character of the path;
//! - the maximum length of a path is 4,000 characters;
//! - non-ASCII characters and the unsafe characters of RFC 1738 must be URL-encoded, and no
//!   other character may be, "or CloudFront will not invalidate the old version".
//!
//! Tags follow "Invalidating content by cache tags" (`invalidation-by-tags.md`) and "What you
//! need to know when invalidating tags" (`invalidation-specifying-tags.md`):
//! - a tag item starts with `#`; the rest is the tag, sent exactly as written (never encoded,
//!   never given a `/`: `/%23tag` would be a path that matches nothing, billed all the same);
//! - ASCII visible characters 33-126 without commas, at most 256 characters;
//! - case-insensitive (`#Product:Electronics` = `#product:electronics`): duplicates are
//!   compared ignoring ASCII case and the first spelling is the one sent;
//! - no `*` wildcard; each item matches one exact tag, so a wildcard path never covers a tag
//!   and a tag never covers a path;
//! - paths and tags may be mixed in one batch; each tag counts (and is billed) as one path.

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// Most paths CloudFront accepts in one `CreateInvalidation` request (over: `BatchTooLarge`).
pub const MAX_PATHS: usize = 3000;

/// Longest tag CloudFront accepts, in characters, not counting the leading `#`.
pub const MAX_TAG_LEN: usize = 256;

/// The character that makes an item a tag.
pub const TAG_PREFIX: char = '#';

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

    /// Submitted items that are not wildcard paths (object paths and tags): these count against
    /// the limit of 3,000 paths in progress per distribution (see [`is_tag`] for why tags do).
    pub fn objects(&self) -> usize {
        self.billed() - self.wildcards()
    }

    /// Submitted tag items.
    pub fn tags(&self) -> usize {
        self.paths.iter().filter(|p| is_tag(p)).count()
    }

    /// Submitted path items (wildcard or not), i.e. everything but tags.
    pub fn path_items(&self) -> usize {
        self.billed() - self.tags()
    }
}

/// One input path that is not submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedPath {
    /// The path as the user wrote it.
    pub input: String,
    /// The item after normalization (a path with its leading `/` and URL-encoding; a tag as
    /// written). For a duplicate: the item sent in its place (a tag's first spelling).
    pub normalized: String,
    /// Why it is not submitted.
    pub reason: DropReason,
}

/// Why an input item is not submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    /// An earlier input normalizes to the same path, or is the same tag (ignoring case).
    Duplicate,
    /// The submitted wildcard path given here already invalidates it.
    CoveredBy(String),
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::Duplicate => f.write_str("duplicate of an earlier item"),
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
    /// A tag item (`#...`) with nothing after the `#`.
    #[error("spec.paths[{index}]: a tag item needs a tag after \"#\" (rule: tag-not-empty)")]
    EmptyTag { index: usize },
    /// A tag longer than [`MAX_TAG_LEN`] characters.
    #[error(
        "spec.paths[{index}]: a tag may be at most {max} characters after \"#\", this one is {len} (rule: tag-length): {preview}",
        max = MAX_TAG_LEN,
        preview = preview(.tag)
    )]
    TagTooLong {
        index: usize,
        tag: String,
        len: usize,
    },
    /// A `*` in a tag item: tags match exactly, CloudFront has no tag wildcard.
    #[error(
        "spec.paths[{index}]: a tag item cannot contain the \"*\" wildcard, tags match exactly (rule: tag-no-wildcard): {tag:?}"
    )]
    TagWildcard { index: usize, tag: String },
    /// A character outside ASCII 33-126, or a comma, in a tag.
    #[error(
        "spec.paths[{index}]: a tag may contain only visible ASCII characters (33-126) and no comma, found {found:?} (rule: tag-characters): {tag:?}"
    )]
    TagCharacter {
        index: usize,
        tag: String,
        found: char,
    },
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

/// Whether `item` is a wildcard path (ends with `*`, the only place a `*` may be; tags have
/// no wildcard).
pub fn is_wildcard(item: &str) -> bool {
    !is_tag(item) && item.ends_with('*')
}

/// Whether `item` is a cache tag item (starts with `#`), as CloudFront reads `Paths.Items`.
///
/// For the in-progress quota a tag counts as one path: the developer guide says tag items
/// "count toward the same concurrent invalidation limits as path items. Each tag item counts as
/// one invalidation path". It does not name which of the two limits; the wildcard limit is
/// defined by the `*` character, which a tag cannot contain, so tags are counted with the 3,000
/// individual paths (counting them as wildcards would refuse requests of 16 or more tags that
/// CloudFront accepts).
pub fn is_tag(item: &str) -> bool {
    item.starts_with(TAG_PREFIX)
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
    if is_tag(wildcard) || is_tag(path) {
        return false;
    }
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

/// Checks one tag item: sent exactly as written when valid.
fn check_tag(index: usize, input: &str, errors: &mut Vec<PathError>) -> Option<String> {
    let tag = &input[TAG_PREFIX.len_utf8()..];
    if tag.is_empty() {
        errors.push(PathError::EmptyTag { index });
        return None;
    }
    let before = errors.len();
    let len = tag.chars().count();
    if len > MAX_TAG_LEN {
        errors.push(PathError::TagTooLong {
            index,
            tag: input.to_owned(),
            len,
        });
    }
    if tag.contains('*') {
        errors.push(PathError::TagWildcard {
            index,
            tag: input.to_owned(),
        });
    }
    if let Some(found) = tag
        .chars()
        .find(|&c| c != '*' && (!matches!(c, '!'..='~') || c == ','))
    {
        errors.push(PathError::TagCharacter {
            index,
            tag: input.to_owned(),
            found,
        });
    }
    (errors.len() == before).then(|| input.to_owned())
}

/// Checks one input item and returns it as it will be sent, pushing every broken rule.
fn normalize_one(index: usize, input: &str, errors: &mut Vec<PathError>) -> Option<String> {
    if input.is_empty() {
        errors.push(PathError::EmptyPath { index });
        return None;
    }
    if is_tag(input) {
        return check_tag(index, input, errors);
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

/// Validates, normalizes, deduplicates and prunes a request's items (paths and tags).
///
/// Each path gets a leading `/` if it lacks one and is URL-encoded with [`encode`]; a tag
/// (see [`is_tag`]) is kept exactly as written. Errors: an empty list, more than [`MAX_PATHS`]
/// inputs, an empty path, a `*` before the last character, a path longer than
/// [`MAX_PATH_LEN`] once encoded, a tag that is empty, longer than [`MAX_TAG_LEN`], has a `*`,
/// a comma or a character outside ASCII 33-126; all of them are reported.
///
/// Then, in first-seen order: a path equal (after normalization) to an earlier one, or a tag
/// equal to an earlier tag ignoring ASCII case, is dropped as [`DropReason::Duplicate`] (the
/// first spelling is sent); a path covered by a wildcard path of the same request
/// (see [`covers`]) is dropped as [`DropReason::CoveredBy`] naming a submitted wildcard. Tags
/// are never covered and cover nothing. Every input stays invalidated: each is submitted,
/// equal to a submitted item, or covered by a submitted wildcard. No submitted path covers
/// another.
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

    // Duplicates: the first occurrence stands for all. Paths compare exactly (case matters),
    // tags ignoring ASCII case (a tag is ASCII only); a path never equals a tag (`#` vs `/`).
    let keys: Vec<Cow<'_, str>> = normalized
        .iter()
        .map(|item| {
            if is_tag(item) {
                Cow::Owned(item.to_ascii_lowercase())
            } else {
                Cow::Borrowed(item.as_str())
            }
        })
        .collect();
    let mut first_seen: HashMap<&str, usize> = HashMap::with_capacity(normalized.len());
    let mut first_of = vec![None; normalized.len()];
    for (index, key) in keys.iter().enumerate() {
        match first_seen.entry(key.as_ref()) {
            Entry::Occupied(first) => first_of[index] = Some(*first.get()),
            Entry::Vacant(slot) => {
                slot.insert(index);
            }
        }
    }

    // Only paths take part in coverage: a tag neither covers nor is covered.
    let coverage = Coverage::new(
        normalized
            .iter()
            .zip(&first_of)
            .filter(|(item, first)| first.is_none() && !is_tag(item))
            .map(|(path, _)| path.as_str()),
    );

    let mut paths = Vec::new();
    let mut dropped = Vec::new();
    for ((raw, item), first) in input.iter().zip(&normalized).zip(&first_of) {
        let (reason, sent_as) = if let Some(first) = first {
            (DropReason::Duplicate, &normalized[*first])
        } else if let Some(wildcard) = (!is_tag(item))
            .then(|| coverage.covering_wildcard(item))
            .flatten()
        {
            (DropReason::CoveredBy(wildcard), item)
        } else {
            paths.push(item.clone());
            continue;
        };
        dropped.push(DroppedPath {
            input: raw.as_ref().to_owned(),
            normalized: sent_as.clone(),
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
