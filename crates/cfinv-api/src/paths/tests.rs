//! The path engine's rules, one test per rule and the combinations users hit.

use super::*;

fn ok(input: &[&str]) -> NormalizedPaths {
    normalize(input).unwrap_or_else(|e| panic!("{input:?} should normalize: {e}"))
}

fn kept(input: &[&str]) -> Vec<String> {
    ok(input).paths
}

fn errs(input: &[&str]) -> Vec<PathError> {
    match normalize(input) {
        Ok(n) => panic!("{input:?} should fail, got {n:?}"),
        Err(PathErrors(errors)) => errors,
    }
}

fn one(path: &str) -> String {
    let mut paths = kept(&[path]);
    assert_eq!(paths.len(), 1);
    paths.remove(0)
}

// ---- list-level rules ----

#[test]
fn empty_list_is_an_error() {
    let empty: [&str; 0] = [];
    let e = normalize(&empty).unwrap_err();
    assert_eq!(e.0, vec![PathError::NoPaths]);
    assert_eq!(e.to_string(), "spec.paths: at least one path is required");
}

#[test]
fn accepts_exactly_max_paths() {
    let input: Vec<String> = (0..MAX_PATHS).map(|i| format!("/f{i}")).collect();
    let n = normalize(&input).unwrap();
    assert_eq!(n.billed(), MAX_PATHS);
}

#[test]
fn more_than_max_paths_is_an_error_saying_how_many() {
    let input: Vec<String> = (0..=MAX_PATHS).map(|i| format!("/f{i}")).collect();
    let e = normalize(&input).unwrap_err();
    assert_eq!(e.0, vec![PathError::TooManyPaths { count: 3001 }]);
    assert_eq!(
        e.to_string(),
        "spec.paths: 3001 paths given, at most 3000 are allowed in one request"
    );
}

#[test]
fn too_many_counts_inputs_before_deduplication() {
    let input = vec!["/same"; MAX_PATHS + 1];
    assert_eq!(
        normalize(&input).unwrap_err().0,
        vec![PathError::TooManyPaths { count: 3001 }]
    );
}

#[test]
fn accepts_owned_and_borrowed_strings() {
    let owned = vec![String::from("a"), String::from("b")];
    assert_eq!(normalize(&owned).unwrap().paths, ["/a", "/b"]);
    assert_eq!(normalize(&["a", "b"]).unwrap().paths, ["/a", "/b"]);
}

// ---- per-path rules ----

#[test]
fn empty_path_is_an_error_naming_the_index() {
    let e = errs(&["/a", ""]);
    assert_eq!(e, vec![PathError::EmptyPath { index: 1 }]);
    assert_eq!(e[0].to_string(), "spec.paths[1]: a path must not be empty");
}

#[test]
fn adds_missing_leading_slash() {
    assert_eq!(one("images/a.jpg"), "/images/a.jpg");
    assert_eq!(one("/images/a.jpg"), "/images/a.jpg");
    assert_eq!(one("*"), "/*");
    assert_eq!(one("/"), "/");
    assert_eq!(one("index.html"), "/index.html");
}

#[test]
fn keeps_a_doubled_leading_slash() {
    // `//a` is a different URL path from `/a`; not ours to merge.
    assert_eq!(one("//a"), "//a");
}

#[test]
fn wildcard_allowed_as_last_character() {
    for path in [
        "/*",
        "/images/*",
        "/images/image*",
        "/directory-path*",
        "/a.jpg*",
    ] {
        assert_eq!(one(path), path);
    }
}

#[test]
fn wildcard_before_the_end_is_an_error_naming_index_and_path() {
    let e = errs(&["/ok", "/ok2", "/ok3", "/assets/app.*.js"]);
    assert_eq!(
        e,
        vec![PathError::WildcardNotLast {
            index: 3,
            path: "/assets/app.*.js".into()
        }]
    );
    assert_eq!(
        e[0].to_string(),
        r#"spec.paths[3]: "*" is allowed only as the last character: "/assets/app.*.js""#
    );
}

#[test]
fn wildcard_error_cases() {
    for path in ["**", "/**", "/*/a", "*a", "/a*b*", "/a/*?v=1"] {
        assert!(
            matches!(
                errs(&[path])[..],
                [PathError::WildcardNotLast { index: 0, .. }]
            ),
            "{path}"
        );
    }
}

#[test]
fn wildcard_error_shows_the_input_as_written() {
    let e = errs(&["assets/app.*.js"]);
    assert_eq!(
        e[0].to_string(),
        r#"spec.paths[0]: "*" is allowed only as the last character: "assets/app.*.js""#
    );
}

#[test]
fn length_limit_applies_after_encoding() {
    let at_limit = format!("/{}", "a".repeat(MAX_PATH_LEN - 1));
    assert_eq!(one(&at_limit).len(), MAX_PATH_LEN);

    // 3,999 raw characters, but each space becomes three: too long once encoded.
    let raw = format!("/{}", " ".repeat(1999));
    assert_eq!(raw.len(), 2000);
    let e = errs(&[&raw]);
    assert!(
        matches!(&e[..], [PathError::TooLong { index: 0, encoded_len: 5998, path }] if path.len() == 5998),
        "{e:?}"
    );
    let msg = e[0].to_string();
    assert!(
            msg.starts_with(
                "spec.paths[0]: a path may be at most 4000 characters after URL-encoding, this one is 5998: \"/%20%20"
            ),
            "{msg}"
        );
    assert!(
        msg.ends_with("…"),
        "long paths are shortened in messages: {msg}"
    );
    assert!(msg.len() < 200, "{msg}");
}

#[test]
fn length_counts_the_added_slash() {
    let raw = "a".repeat(MAX_PATH_LEN);
    assert!(matches!(
        errs(&[&raw])[..],
        [PathError::TooLong {
            encoded_len: 4001,
            ..
        }]
    ));
    assert_eq!(one(&raw[1..]).len(), MAX_PATH_LEN);
}

#[test]
fn non_ascii_counts_encoded_length() {
    // `é` is two UTF-8 bytes, so six characters once encoded.
    let fits = format!("/{}", "é".repeat(666)); // 1 + 666 * 6 = 3997
    assert_eq!(one(&fits).len(), 3997);
    let too_long = format!("/{}", "é".repeat(667)); // 1 + 667 * 6 = 4003
    assert!(matches!(
        errs(&[&too_long])[..],
        [PathError::TooLong {
            encoded_len: 4003,
            ..
        }]
    ));
}

#[test]
fn reports_all_errors_in_input_order() {
    let long = "x".repeat(MAX_PATH_LEN + 1);
    let e = errs(&["/fine", "", "/a*b", &long, "/c*d*"]);
    assert_eq!(e.len(), 4, "{e:?}");
    assert!(matches!(e[0], PathError::EmptyPath { index: 1 }));
    assert!(matches!(e[1], PathError::WildcardNotLast { index: 2, .. }));
    assert!(matches!(e[2], PathError::TooLong { index: 3, .. }));
    assert!(matches!(e[3], PathError::WildcardNotLast { index: 4, .. }));
}

#[test]
fn one_path_can_break_two_rules() {
    let bad = format!("/a*{}", "b".repeat(MAX_PATH_LEN));
    let e = errs(&[&bad]);
    assert!(matches!(
        e[..],
        [
            PathError::WildcardNotLast { index: 0, .. },
            PathError::TooLong { index: 0, .. }
        ]
    ));
}

#[test]
fn too_many_is_reported_together_with_path_errors() {
    let mut input: Vec<String> = (0..=MAX_PATHS).map(|i| format!("/f{i}")).collect();
    input[7] = String::new();
    let e = normalize(&input).unwrap_err();
    assert_eq!(
        e.0,
        vec![
            PathError::TooManyPaths { count: 3001 },
            PathError::EmptyPath { index: 7 }
        ]
    );
}

#[test]
fn errors_display_joined() {
    let e = normalize(&["", "/a*b"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"spec.paths[0]: a path must not be empty; spec.paths[1]: "*" is allowed only as the last character: "/a*b""#
    );
    let _: &dyn std::error::Error = &e;
}

// ---- encoding ----

#[test]
fn encodes_space() {
    assert_eq!(one("/my file.html"), "/my%20file.html");
}

#[test]
fn keeps_existing_escapes_exactly() {
    assert_eq!(one("/my%20file.html"), "/my%20file.html");
    assert_eq!(one("/a%2Fb"), "/a%2Fb");
    // Lowercase hex is left as written, not rewritten to uppercase.
    assert_eq!(one("/a%7eb%c3%a9"), "/a%7eb%c3%a9");
    assert_eq!(one("/%41"), "/%41");
}

#[test]
fn encodes_a_lone_percent() {
    assert_eq!(one("/100%"), "/100%25");
    assert_eq!(one("/100%.html"), "/100%25.html");
    assert_eq!(one("/a%2"), "/a%252");
    assert_eq!(one("/a%zz"), "/a%25zz");
    assert_eq!(one("/a%g1"), "/a%25g1");
    assert_eq!(one("/%%41"), "/%25%41");
    assert_eq!(one("%"), "/%25");
}

#[test]
fn a_lone_percent_before_a_wildcard_is_encoded() {
    assert_eq!(one("/a%*"), "/a%25*");
    assert_eq!(one("/a%2*"), "/a%252*");
}

#[test]
fn encodes_tilde() {
    assert_eq!(
        one("/static/js/runtime~main.js"),
        "/static/js/runtime%7Emain.js"
    );
    assert_eq!(one("/~user/"), "/%7Euser/");
}

#[test]
fn encodes_hash() {
    assert_eq!(one("/a#b"), "/a%23b");
}

#[test]
fn encodes_every_rfc_1738_unsafe_character() {
    let cases = [
        (' ', "%20"),
        ('<', "%3C"),
        ('>', "%3E"),
        ('"', "%22"),
        ('#', "%23"),
        ('%', "%25"),
        ('{', "%7B"),
        ('}', "%7D"),
        ('|', "%7C"),
        ('\\', "%5C"),
        ('^', "%5E"),
        ('~', "%7E"),
        ('[', "%5B"),
        (']', "%5D"),
        ('`', "%60"),
    ];
    for (c, expected) in cases {
        assert_eq!(one(&format!("/a{c}b")), format!("/a{expected}b"), "{c:?}");
    }
}

#[test]
fn encodes_control_characters() {
    assert_eq!(one("/a\tb"), "/a%09b");
    assert_eq!(one("/a\nb"), "/a%0Ab");
    assert_eq!(one("/a\u{0}b"), "/a%00b");
    assert_eq!(one("/a\u{1f}b"), "/a%1Fb");
    assert_eq!(one("/a\u{7f}b"), "/a%7Fb");
}

#[test]
fn encodes_non_ascii_as_uppercase_utf8_bytes() {
    assert_eq!(one("/café/ü.png"), "/caf%C3%A9/%C3%BC.png");
    assert_eq!(one("/日本.html"), "/%E6%97%A5%E6%9C%AC.html");
    assert_eq!(one("/😀"), "/%F0%9F%98%80");
    // C1 control / NBSP: non-ASCII, so encoded byte by byte.
    assert_eq!(one("/a\u{a0}b"), "/a%C2%A0b");
}

#[test]
fn keeps_reserved_and_safe_characters() {
    let kept = "/a?b&c=d/e+f:g@h!i$j'k(l)m,n;o-p_q.r*";
    assert_eq!(one(kept), kept);
    let alnum = "/ABCXYZabcxyz0189";
    assert_eq!(one(alnum), alnum);
}

#[test]
fn encodes_nothing_but_the_unsafe_set_in_printable_ascii() {
    for b in 0x21u8..=0x7e {
        let c = b as char;
        if c == '*' {
            continue; // tested as a wildcard
        }
        let out = one(&format!("/{c}x"));
        let should_encode = "\"#%<>[\\]^`{|}~".contains(c);
        if should_encode {
            assert_eq!(out, format!("/%{b:02X}x"), "{c:?}");
        } else {
            assert_eq!(out, format!("/{c}x"), "{c:?}");
        }
    }
}

#[test]
fn encoding_is_idempotent() {
    for raw in [
        "/café /ü.png",
        "/a%20b%",
        "/~#{}",
        "/%zz%41",
        "/a\tb?x=1&y=é",
    ] {
        let once = encode(raw);
        assert_eq!(encode(&once), once, "{raw:?}");
    }
}

#[test]
fn query_strings_are_kept() {
    assert_eq!(
        one("/images/image.jpg?parameter1=a"),
        "/images/image.jpg?parameter1=a"
    );
    assert_eq!(one("/search?q=a b"), "/search?q=a%20b");
}

// ---- case, duplicates ----

#[test]
fn case_is_significant() {
    assert_eq!(
        kept(&["/Index.html", "/index.html"]),
        ["/Index.html", "/index.html"]
    );
    assert_eq!(kept(&["/IMG/*", "/img/a.png"]), ["/IMG/*", "/img/a.png"]);
}

#[test]
fn drops_duplicates_after_normalization() {
    let n = ok(&["a.jpg", "/a.jpg", "/a b", "/a%20b", "/a.jpg"]);
    assert_eq!(n.paths, ["/a.jpg", "/a%20b"]);
    assert_eq!(
        n.dropped,
        vec![
            DroppedPath {
                input: "/a.jpg".into(),
                normalized: "/a.jpg".into(),
                reason: DropReason::Duplicate
            },
            DroppedPath {
                input: "/a%20b".into(),
                normalized: "/a%20b".into(),
                reason: DropReason::Duplicate
            },
            DroppedPath {
                input: "/a.jpg".into(),
                normalized: "/a.jpg".into(),
                reason: DropReason::Duplicate
            },
        ]
    );
}

#[test]
fn differently_cased_escapes_are_not_merged() {
    // CloudFront compares what it is sent; merging could leave one spelling cached.
    assert_eq!(kept(&["/a%7e", "/a~"]), ["/a%7e", "/a%7E"]);
}

#[test]
fn equal_wildcards_are_duplicates() {
    let n = ok(&["/img/*", "img/*"]);
    assert_eq!(n.paths, ["/img/*"]);
    assert_eq!(n.dropped[0].reason, DropReason::Duplicate);
}

#[test]
fn keeps_first_seen_order() {
    assert_eq!(
        kept(&["/z", "/a", "/m", "/a", "/b"]),
        ["/z", "/a", "/m", "/b"]
    );
}

// ---- wildcard coverage ----

#[test]
fn is_wildcard_examples() {
    assert!(is_wildcard("/*"));
    assert!(is_wildcard("/img*"));
    assert!(!is_wildcard("/img"));
    assert!(!is_wildcard("/img%2A"));
}

#[test]
fn covers_examples() {
    assert!(covers("/*", "/anything/at/all.html"));
    assert!(covers("/*", "/"));
    assert!(covers("/*", "/img/*"));
    assert!(covers("/img/*", "/img/a.png"));
    assert!(covers("/img/*", "/img/sub/*"));
    assert!(covers("/img/*", "/img/"));
    assert!(covers("/img*", "/img/"));
    assert!(covers("/img*", "/img"));
    assert!(covers("/img*", "/img-2x/a.png"));
    assert!(covers("/im*", "/images/x"));
    assert!(
        !covers("/img*", "/images/x"),
        "plain prefix match: `images` does not start with `img`"
    );
    assert!(covers("/img*", "/img/*"));
    assert!(covers("/app.js*", "/app.js?v=2"));
    assert!(covers("/app.js*", "/app.js"));

    assert!(!covers("/img/*", "/img"), "`/img` is not under `/img/`");
    assert!(!covers("/img/*", "/images/x"));
    assert!(!covers("/img/*", "/img*"));
    assert!(!covers("/img/*", "/IMG/a.png"));
    assert!(!covers("/*", "/*"), "a wildcard never covers itself");
    assert!(!covers("/img/*", "/img/*"));
    assert!(!covers("/img/a.png", "/img/a.png"));
    assert!(!covers("/img", "/img/a.png"), "only wildcards cover");
}

#[test]
fn slash_star_covers_everything() {
    let n = ok(&["/index.html", "/*", "/img/*", "/a b"]);
    assert_eq!(n.paths, ["/*"]);
    assert_eq!(n.billed(), 1);
    assert!(
        n.dropped
            .iter()
            .all(|d| d.reason == DropReason::CoveredBy("/*".into()))
    );
    assert_eq!(n.dropped.len(), 3);
    assert_eq!(n.dropped[2].input, "/a b");
    assert_eq!(n.dropped[2].normalized, "/a%20b");
}

#[test]
fn directory_wildcard_covers_files_and_sub_wildcards() {
    let n = ok(&["/img/a.png", "/img/sub/*", "/img/*", "/css/a.css"]);
    assert_eq!(n.paths, ["/img/*", "/css/a.css"]);
    assert_eq!(
        n.dropped
            .iter()
            .map(|d| (d.normalized.as_str(), &d.reason))
            .collect::<Vec<_>>(),
        [
            ("/img/a.png", &DropReason::CoveredBy("/img/*".into())),
            ("/img/sub/*", &DropReason::CoveredBy("/img/*".into())),
        ]
    );
}

#[test]
fn prefix_wildcard_covers_sibling_names() {
    let n = ok(&["/img/", "/img-2x/x", "/img/*", "/img*", "/im", "/images/x"]);
    assert_eq!(n.paths, ["/img*", "/im", "/images/x"]);
    assert_eq!(n.dropped.len(), 3);
    assert!(
        n.dropped
            .iter()
            .all(|d| d.reason == DropReason::CoveredBy("/img*".into()))
    );
    // A shorter prefix then takes over everything.
    let n = ok(&["/img/", "/images/x", "/img*", "/im*"]);
    assert_eq!(n.paths, ["/im*"]);
}

#[test]
fn query_wildcard_covers_variants() {
    let n = ok(&["/app.js?v=2", "/app.js*", "/app.js", "/app.json"]);
    assert_eq!(n.paths, ["/app.js*"]);
}

#[test]
fn covered_by_names_the_submitted_wildcard() {
    // `/a/b/*` is itself covered, so `/a/b/c` must name `/a/*`, which is submitted.
    let n = ok(&["/a/b/c", "/a/b/*", "/a/*"]);
    assert_eq!(n.paths, ["/a/*"]);
    for d in &n.dropped {
        assert_eq!(d.reason, DropReason::CoveredBy("/a/*".into()));
    }
}

#[test]
fn covered_duplicates_are_reported_as_duplicates() {
    let n = ok(&["/img/a.png", "/img/*", "img/a.png"]);
    assert_eq!(n.paths, ["/img/*"]);
    assert_eq!(n.dropped[0].reason, DropReason::CoveredBy("/img/*".into()));
    assert_eq!(n.dropped[1].reason, DropReason::Duplicate);
}

#[test]
fn coverage_uses_encoded_forms() {
    assert_eq!(kept(&["/my docs/*", "/my%20docs/a.pdf"]), ["/my%20docs/*"]);
    assert_eq!(kept(&["/café*", "/caf%C3%A9/x"]), ["/caf%C3%A9*"]);
}

#[test]
fn unrelated_paths_are_all_kept() {
    let n = ok(&["/a", "/b*", "/c/", "/a/*"]);
    assert_eq!(n.paths, ["/a", "/b*", "/c/", "/a/*"]);
    assert!(n.dropped.is_empty());
}

#[test]
fn counts() {
    let n = ok(&["/a", "/b*", "/c", "/d/*", "/d/x"]);
    assert_eq!(n.billed(), 4);
    assert_eq!(n.wildcards(), 2);
    assert_eq!(n.objects(), 2);
}

#[test]
fn drop_reason_display() {
    assert_eq!(
        DropReason::Duplicate.to_string(),
        "duplicate of an earlier item"
    );
    assert_eq!(
        DropReason::CoveredBy("/img/*".into()).to_string(),
        r#"covered by "/img/*""#
    );
}

// ---- properties ----

/// Small deterministic generator (xorshift64*), so failures reproduce without a seed file.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// A path built from a small alphabet so that collisions and coverage happen often.
fn gen_path(rng: &mut Rng) -> String {
    const PIECES: &[&str] = &[
        "/", "/", "/", "a", "b", "img", "images", "A", ".js", ".png", "?v=2", " ", "%20", "~",
        "%7E", "é", "%", "-",
    ];
    let mut path = String::new();
    if rng.below(4) != 0 {
        path.push('/');
    }
    for _ in 0..rng.below(5) {
        path.push_str(rng.pick(PIECES));
    }
    if rng.below(3) == 0 {
        path.push('*');
    }
    if path.is_empty() {
        path.push('*');
    }
    path
}

/// Checks the invariants that make pruning safe, for one input.
fn check_invariants(input: &[String]) {
    let n = normalize(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
    // Every input stays invalidated: submitted as is, or covered by a submitted wildcard.
    for raw in input {
        let path = one(raw);
        assert!(
            n.paths.iter().any(|k| *k == path || covers(k, &path)),
            "{raw:?} ({path:?}) is no longer invalidated by {:?} (input {input:?})",
            n.paths
        );
    }
    // Nothing submitted is redundant.
    for (i, a) in n.paths.iter().enumerate() {
        for (j, b) in n.paths.iter().enumerate() {
            assert!(i == j || a != b, "{a:?} submitted twice (input {input:?})");
            assert!(!covers(a, b), "{b:?} is covered by {a:?} (input {input:?})");
        }
    }
    // Every input is accounted for exactly once, in input order.
    assert_eq!(n.paths.len() + n.dropped.len(), input.len());
    let mut kept = n.paths.iter();
    let mut dropped = n.dropped.iter();
    let mut seen = std::collections::HashSet::new();
    for raw in input {
        let path = one(raw);
        if seen.insert(path.clone()) && n.paths.contains(&path) {
            assert_eq!(kept.next(), Some(&path), "order (input {input:?})");
            continue;
        }
        let d = dropped
            .next()
            .expect("a dropped entry for every unsubmitted input");
        assert_eq!(&d.input, raw);
        assert_eq!(d.normalized, path);
        match &d.reason {
            DropReason::Duplicate => {}
            DropReason::CoveredBy(w) => {
                assert!(covers(w, &path));
                assert!(n.paths.contains(w), "{w:?} is not submitted");
            }
        }
    }
    assert!(kept.next().is_none() && dropped.next().is_none());
    // Normalizing the result again changes nothing.
    let again = normalize(&n.paths).unwrap();
    assert_eq!(again.paths, n.paths);
    assert!(again.dropped.is_empty());
}

#[test]
fn property_pruning_never_changes_what_is_invalidated() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..3000 {
        let len = 1 + rng.below(12);
        let input: Vec<String> = (0..len).map(|_| gen_path(&mut rng)).collect();
        check_invariants(&input);
    }
}

#[test]
fn property_holds_for_a_full_request() {
    let mut rng = Rng(42);
    for _ in 0..5 {
        let input: Vec<String> = (0..MAX_PATHS).map(|_| gen_path(&mut rng)).collect();
        check_invariants(&input);
    }
}

#[test]
fn a_full_request_of_long_paths_with_a_shared_prefix() {
    // 3,000 distinct paths of ~3,900 characters sharing a long prefix, half of them
    // wildcards each covering one of the others: the worst case for coverage. Speed is
    // measured by `bench`-style numbers, not asserted here (timed tests flake on shared
    // machines); this pins the result.
    let base = "d/".repeat(1900);
    let input: Vec<String> = (0..MAX_PATHS)
        .map(|i| {
            if i % 2 == 0 {
                format!("/{base}{i:05}/*")
            } else {
                format!("/{base}{:05}/f{i}.js", i - 1)
            }
        })
        .collect();
    let n = normalize(&input).unwrap();
    assert_eq!(n.billed(), MAX_PATHS / 2);
    assert_eq!(n.wildcards(), MAX_PATHS / 2);
    assert_eq!(n.dropped.len(), MAX_PATHS / 2);
}

// ---- cache tags ----

#[test]
fn tags_are_sent_as_written_without_slash_or_encoding() {
    assert_eq!(one("#product:electronics"), "#product:electronics");
    // `#`, `%`, `~`, `^` and friends would be encoded in a path; a tag keeps them.
    assert_eq!(one("#a%b~c^d|e"), "#a%b~c^d|e");
    // A `#` after the leading `/` is part of a path and encoded as before.
    assert_eq!(one("/#product"), "/%23product");
}

#[test]
fn tags_are_deduplicated_ignoring_case_keeping_the_first_spelling() {
    let n = ok(&[
        "#Product:Electronics",
        "/index.html",
        "#product:electronics",
        "#PRODUCT:ELECTRONICS",
    ]);
    assert_eq!(n.paths, vec!["#Product:Electronics", "/index.html"]);
    assert_eq!(n.dropped.len(), 2);
    for d in &n.dropped {
        assert_eq!(d.reason, DropReason::Duplicate);
        assert_eq!(
            d.normalized, "#Product:Electronics",
            "the spelling sent in its place"
        );
    }
    assert_eq!(n.dropped[0].input, "#product:electronics");
    assert_eq!((n.billed(), n.tags(), n.path_items()), (2, 1, 1));
}

#[test]
fn paths_stay_case_sensitive_next_to_tags() {
    assert_eq!(
        kept(&["/Index.html", "/index.html", "#Index.html"]).len(),
        3
    );
}

#[test]
fn wildcards_never_cover_tags_and_tags_cover_nothing() {
    let n = ok(&["/*", "#product:electronics", "/index.html"]);
    assert_eq!(n.paths, vec!["/*", "#product:electronics"]);
    assert_eq!(n.dropped.len(), 1);
    assert_eq!(n.dropped[0].reason, DropReason::CoveredBy("/*".into()));
    assert!(!covers("/*", "#tag"));
    assert!(!covers("#tag", "#tag:more"));
    assert!(!is_wildcard("#tag"));
}

#[test]
fn tags_count_with_individual_paths_for_the_quota() {
    let n = ok(&["#a", "#b", "/x", "/y/*"]);
    assert_eq!((n.wildcards(), n.objects(), n.tags()), (1, 3, 2));
}

#[test]
fn mixed_batch_keeps_input_order() {
    assert_eq!(
        kept(&["/a", "#t1", "b", "#t2"]),
        vec!["/a", "#t1", "/b", "#t2"]
    );
}

#[test]
fn longest_tag_is_accepted() {
    let tag = format!("#{}", "t".repeat(MAX_TAG_LEN));
    assert_eq!(one(&tag), tag);
}

#[test]
fn each_broken_tag_rule_names_the_item_and_the_rule() {
    let long = format!("#{}", "t".repeat(MAX_TAG_LEN + 1));
    let cases: [(&str, &str); 6] = [
        ("#", "rule: tag-not-empty"),
        ("#product:*", "rule: tag-no-wildcard"),
        ("#a,b", "rule: tag-characters"),
        ("#a b", "rule: tag-characters"),
        ("#caf\u{e9}", "rule: tag-characters"),
        (long.as_str(), "rule: tag-length"),
    ];
    for (bad, rule) in cases {
        let e = normalize(&["/ok", bad]).unwrap_err();
        assert_eq!(e.0.len(), 1, "{bad}: {e}");
        let message = e.to_string();
        assert!(message.starts_with("spec.paths[1]: "), "{message}");
        assert!(message.contains(rule), "{bad}: {message}");
    }
    assert_eq!(errs(&["#"]), vec![PathError::EmptyTag { index: 0 }]);
    assert_eq!(
        errs(&["#a,b"]),
        vec![PathError::TagCharacter {
            index: 0,
            tag: "#a,b".into(),
            found: ','
        }]
    );
}

#[test]
fn a_tag_with_a_wildcard_and_a_comma_reports_both() {
    let e = errs(&["#a*,b"]);
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(matches!(e[0], PathError::TagWildcard { .. }));
    assert!(matches!(e[1], PathError::TagCharacter { found: ',', .. }));
}
