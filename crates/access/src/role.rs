//! The ISCO-08 occupation codes an assertion's `role` may carry.
//!
//! ISCO-08 (International Standard Classification of Occupations, ILO 2008,
//! <https://www.ilo.org/public/english/bureau/stat/isco/isco08/>) is
//! hierarchical: the 4-digit unit group `2211` lies within the 3-digit minor
//! group `221`. eHDSI codes the professional's functional role
//! (`urn:oasis:names:tc:xspa:1.0:subject:functional-role`) in ISCO-08.
//!
//! Only the groups the permission matrix speaks about are known; any other
//! code is refused ([`crate::AssertionRefusal::UnknownRole`]) rather than
//! guessed at:
//!
//! | code | ISCO-08 title |
//! | --- | --- |
//! | `221` | Medical doctors |
//! | `2211` | Generalist medical practitioners |
//! | `2212` | Specialist medical practitioners |
//! | `222` | Nursing and midwifery professionals |
//! | `2221` | Nursing professionals |
//! | `2222` | Midwifery professionals |
//! | `2262` | Pharmacists |

use std::fmt;

/// One known ISCO-08 code (a minor group or a unit group).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IscoRole {
    code: &'static str,
    title: &'static str,
}

impl IscoRole {
    /// Every known code, in the order of the table above.
    pub const TABLE: [IscoRole; 7] = [
        IscoRole::new("221", "Medical doctors"),
        IscoRole::new("2211", "Generalist medical practitioners"),
        IscoRole::new("2212", "Specialist medical practitioners"),
        IscoRole::new("222", "Nursing and midwifery professionals"),
        IscoRole::new("2221", "Nursing professionals"),
        IscoRole::new("2222", "Midwifery professionals"),
        IscoRole::new("2262", "Pharmacists"),
    ];

    const fn new(code: &'static str, title: &'static str) -> Self {
        Self { code, title }
    }

    /// The known role with this code, `None` for any other string.
    pub fn parse(code: &str) -> Option<IscoRole> {
        Self::TABLE.into_iter().find(|role| role.code == code)
    }

    /// The ISCO-08 code, e.g. `2262`.
    pub fn code(self) -> &'static str {
        self.code
    }

    /// The ISCO-08 title, e.g. `Pharmacists`.
    pub fn title(self) -> &'static str {
        self.title
    }

    /// Whether this role is `group` or lies within it (`2211` is within
    /// `221`; `221` is within itself; `2262` is not within `221`).
    pub fn is_within(self, group: IscoRole) -> bool {
        self.code.starts_with(group.code)
    }
}

impl fmt::Display for IscoRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code, self.title)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_groups_lie_within_their_minor_group() {
        let doctors = IscoRole::parse("221").unwrap();
        let gp = IscoRole::parse("2211").unwrap();
        let pharmacist = IscoRole::parse("2262").unwrap();
        assert!(gp.is_within(doctors));
        assert!(doctors.is_within(doctors));
        assert!(!doctors.is_within(gp));
        assert!(!pharmacist.is_within(doctors));
    }

    #[test]
    fn unknown_codes_are_not_guessed() {
        for code in ["", "22", "2261", "22111", " 221", "2211 "] {
            assert_eq!(IscoRole::parse(code), None, "{code:?}");
        }
    }
}
