//! Semver-ish comparison of business versions (`4.0.1`, `2.0.0-ballot`,
//! `0.1.0-ci-build`), used to pick the latest of several versions of one
//! canonical URL.

use std::cmp::Ordering;

/// Compares two versions the way semantic versioning orders them, loosely:
///
/// * the release part (before the first `-` or `+`) is dot-separated numbers,
///   compared numerically, a missing number counting as 0 (`1.0` = `1.0.0`);
/// * a pre-release (`-ballot`, `-ci-build`) sorts before the release itself;
///   two pre-releases compare by their dot-separated identifiers (numbers
///   numerically and below words, words in ASCII order, fewer identifiers
///   first when one is a prefix of the other);
/// * build metadata (`+...`) is ignored.
///
/// `None` when either is not of that shape (`R4`, `v1`, `current`): such
/// versions are not comparable and the caller keeps the first loaded.
pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    let a = Parsed::new(a)?;
    let b = Parsed::new(b)?;
    let len = a.release.len().max(b.release.len());
    for i in 0..len {
        let x = a.release.get(i).copied().unwrap_or(0);
        let y = b.release.get(i).copied().unwrap_or(0);
        match x.cmp(&y) {
            Ordering::Equal => {}
            other => return Some(other),
        }
    }
    Some(match (a.pre, b.pre) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => compare_pre(x, y),
    })
}

/// The major and minor number of a plain release (`1.1.0`, `1.1`: numbers
/// only, no pre-release or build part), as the Java validator reduces a
/// requested version it does not hold (`VersionUtilities.getMajMin`, used
/// only when the version has no `-` or `+`).
pub fn major_minor(version: &str) -> Option<(u64, u64)> {
    if version.contains(['-', '+']) {
        return None;
    }
    major_minor_of_any(version)
}

/// The major and minor number of any semver-like version (`2.0.0-ballot` →
/// 2.0): the key a held version is found under by a major.minor request.
pub fn major_minor_of_any(version: &str) -> Option<(u64, u64)> {
    let parsed = Parsed::new(version)?;
    match parsed.release.as_slice() {
        [major, minor, ..] => Some((*major, *minor)),
        _ => None,
    }
}

/// The fixed leading numbers of a wildcard version (`0.1.x`, `0.1.*`,
/// `1.x`): `None` for anything else.
pub(crate) fn wildcard_prefix(spec: &str) -> Option<Vec<u64>> {
    let (fixed, last) = spec.rsplit_once('.')?;
    if !matches!(last, "x" | "X" | "*") {
        return None;
    }
    fixed
        .split('.')
        .map(|part| {
            (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse::<u64>().ok())
                .flatten()
        })
        .collect()
}

/// Whether `version` meets a dependency's `spec`: the same version
/// ([`compare`] equal), every version under a wildcard (`0.1.x` meets
/// `0.1.0` and `0.1.7`), or, for a bare major.minor (`1.1`), every version
/// of that major.minor.
pub(crate) fn matches(spec: &str, version: &str) -> bool {
    if let Some(prefix) = wildcard_prefix(spec) {
        return Parsed::new(version).is_some_and(|v| v.release.starts_with(&prefix));
    }
    if let Some(parsed) = Parsed::new(spec)
        && parsed.pre.is_none()
        && parsed.release.len() == 2
    {
        return major_minor_of_any(version) == major_minor(spec);
    }
    compare(spec, version) == Some(Ordering::Equal)
}

struct Parsed<'a> {
    release: Vec<u64>,
    pre: Option<&'a str>,
}

impl<'a> Parsed<'a> {
    fn new(version: &'a str) -> Option<Self> {
        let without_build = version.split_once('+').map_or(version, |(v, _)| v);
        let (release, pre) = match without_build.split_once('-') {
            Some((release, pre)) => (release, Some(pre)),
            None => (without_build, None),
        };
        let release = release
            .split('.')
            .map(|part| {
                if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
                    part.parse::<u64>().ok()
                } else {
                    None
                }
            })
            .collect::<Option<Vec<u64>>>()?;
        Some(Self { release, pre })
    }
}

fn compare_pre(a: &str, b: &str) -> Ordering {
    let mut x = a.split('.');
    let mut y = b.split('.');
    loop {
        match (x.next(), y.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(p), Some(q)) => {
                let order = match (number(p), number(q)) {
                    (Some(m), Some(n)) => m.cmp(&n),
                    (Some(_), None) => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (None, None) => p.cmp(q),
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

fn number(identifier: &str) -> Option<u64> {
    if !identifier.is_empty() && identifier.bytes().all(|b| b.is_ascii_digit()) {
        identifier.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::compare;
    use std::cmp::Ordering::{Equal, Greater, Less};

    #[test]
    fn releases_compare_numerically() {
        assert_eq!(compare("4.0.1", "4.0.0"), Some(Greater));
        assert_eq!(compare("1.10.0", "1.9.0"), Some(Greater));
        assert_eq!(compare("1.0", "1.0.0"), Some(Equal));
        assert_eq!(compare("2", "10"), Some(Less));
    }

    #[test]
    fn pre_releases_sort_before_the_release() {
        assert_eq!(compare("2.0.0-ballot", "2.0.0"), Some(Less));
        assert_eq!(compare("2.0.0-ballot", "1.1.0"), Some(Greater));
        assert_eq!(compare("1.0.0-comment-3", "1.0.0-comment-2"), Some(Greater));
        assert_eq!(compare("1.0.0-alpha.2", "1.0.0-alpha.10"), Some(Less));
        assert_eq!(compare("1.0.0-alpha", "1.0.0-alpha.1"), Some(Less));
        assert_eq!(compare("1.0.0-1", "1.0.0-alpha"), Some(Less));
        assert_eq!(compare("1.0.0+build.5", "1.0.0"), Some(Equal));
    }

    #[test]
    fn dependency_versions_match_exactly_by_wildcard_or_major_minor() {
        use super::{major_minor, major_minor_of_any, matches, wildcard_prefix};
        assert!(matches("1.1.0", "1.1.0"));
        assert!(!matches("1.1.0", "1.1.1"));
        assert!(matches("0.1.x", "0.1.0"));
        assert!(matches("0.1.*", "0.1.7"));
        assert!(!matches("0.1.x", "0.2.0-ci"));
        assert!(matches("1.1", "1.1.0"));
        assert!(!matches("1.1", "2.0.0-ballot"));
        assert!(!matches("current", "2.0.0-ballot"));
        assert_eq!(wildcard_prefix("0.1.x"), Some(vec![0, 1]));
        assert_eq!(wildcard_prefix("current"), None);
        assert_eq!(major_minor("1.1.5"), Some((1, 1)));
        assert_eq!(major_minor("2.0.0-ballot"), None);
        assert_eq!(major_minor_of_any("2.0.0-ballot"), Some((2, 0)));
        assert_eq!(major_minor("4"), None);
    }

    #[test]
    fn other_shapes_are_not_comparable() {
        assert_eq!(compare("R4", "4.0.1"), None);
        assert_eq!(compare("4.0.1", ""), None);
        assert_eq!(compare("1..2", "1.2"), None);
        assert_eq!(compare("v1", "v2"), None);
    }
}
