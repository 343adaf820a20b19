//! FHIRPath `Quantity`: a decimal with a UCUM unit or a calendar duration
//! keyword (<https://hl7.org/fhirpath/N1/#quantity>), with the part of UCUM
//! (<https://ucum.org/ucum>) needed to compare and combine common clinical
//! units: metric prefixes on m, g, s, L, mol; min, h, d, wk, mo, a; inch,
//! foot, pound, ounce; products, quotients and integer powers.

use std::cmp::Ordering;
use std::fmt;

use crate::decimal::Decimal;
use crate::temporal::TimeUnit;

/// A value with a unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantity {
    /// The number.
    pub value: Decimal,
    /// The UCUM code, or the calendar keyword as written (`week`, `days`).
    pub unit: Box<str>,
    /// True when `unit` is a calendar duration keyword, not UCUM.
    pub calendar: bool,
}

/// Base dimensions: m, g, s, mol, K, calendar month.
const DIMS: usize = 6;
type Dims = [i8; DIMS];
const CAL_MONTH: usize = 5;

/// A unit reduced to a factor times a product of base dimensions.
#[derive(Debug, Clone, PartialEq)]
struct Canonical {
    factor: Decimal,
    dims: Dims,
}

const CALENDAR: [(&str, &str); 16] = [
    ("year", "year"),
    ("years", "year"),
    ("month", "month"),
    ("months", "month"),
    ("week", "week"),
    ("weeks", "week"),
    ("day", "day"),
    ("days", "day"),
    ("hour", "hour"),
    ("hours", "hour"),
    ("minute", "minute"),
    ("minutes", "minute"),
    ("second", "second"),
    ("seconds", "second"),
    ("millisecond", "millisecond"),
    ("milliseconds", "millisecond"),
];

/// The singular calendar keyword for a keyword as written.
pub(crate) fn calendar_keyword(word: &str) -> Option<&'static str> {
    CALENDAR
        .iter()
        .find(|(w, _)| *w == word)
        .map(|(_, singular)| *singular)
}

fn dec(text: &str) -> Decimal {
    Decimal::parse(text).unwrap_or(Decimal::ZERO)
}

fn dim(index: usize) -> Dims {
    let mut d = [0; DIMS];
    if let Some(slot) = d.get_mut(index) {
        *slot = 1;
    }
    d
}

/// UCUM atoms: (symbol, factor to the base, dimension index, metric).
fn atom(symbol: &str) -> Option<(Decimal, Dims, bool)> {
    let (factor, dims, metric) = match symbol {
        "m" => ("1", dim(0), true),
        "g" => ("1", dim(1), true),
        "s" => ("1", dim(2), true),
        "mol" => ("1", dim(3), true),
        "K" => ("1", dim(4), true),
        "L" | "l" => ("0.001", [3, 0, 0, 0, 0, 0], true),
        "min" => ("60", dim(2), false),
        "h" => ("3600", dim(2), false),
        "d" => ("86400", dim(2), false),
        "wk" => ("604800", dim(2), false),
        "mo" => ("2629800", dim(2), false),
        "a" => ("31557600", dim(2), false),
        "[in_i]" => ("0.0254", dim(0), false),
        "[ft_i]" => ("0.3048", dim(0), false),
        "[lb_av]" => ("453.59237", dim(1), false),
        "[oz_av]" => ("28.349523125", dim(1), false),
        "%" => ("0.01", [0; DIMS], false),
        "1" => ("1", [0; DIMS], false),
        _ => return None,
    };
    Some((dec(factor), dims, metric))
}

fn prefix(p: &str) -> Option<i32> {
    Some(match p {
        "Y" => 24,
        "Z" => 21,
        "E" => 18,
        "P" => 15,
        "T" => 12,
        "G" => 9,
        "M" => 6,
        "k" => 3,
        "h" => 2,
        "da" => 1,
        "d" => -1,
        "c" => -2,
        "m" => -3,
        "u" => -6,
        "n" => -9,
        "p" => -12,
        "f" => -15,
        "a" => -18,
        _ => return None,
    })
}

fn power_of_ten(n: i32) -> Option<Decimal> {
    if !(-38..=38).contains(&n) {
        return None;
    }
    Some(if n >= 0 {
        Decimal::new(10i128.checked_pow(n.unsigned_abs())?, 0)
    } else {
        Decimal::new(1, n.unsigned_abs())
    })
}

fn symbol(s: &str) -> Option<Canonical> {
    if let Some((factor, dims, _)) = atom(s) {
        return Some(Canonical { factor, dims });
    }
    for len in [2, 1] {
        let (Some(p), Some(rest)) = (s.get(..len), s.get(len..)) else {
            continue;
        };
        if let (Some(exp), Some((factor, dims, true))) = (prefix(p), atom(rest)) {
            return Some(Canonical {
                factor: factor.mul(&power_of_ten(exp)?)?,
                dims,
            });
        }
    }
    None
}

impl Canonical {
    fn one() -> Canonical {
        Canonical {
            factor: Decimal::from_i64(1),
            dims: [0; DIMS],
        }
    }

    fn times(&self, other: &Canonical, sign: i8) -> Option<Canonical> {
        let mut dims = self.dims;
        for (d, o) in dims.iter_mut().zip(other.dims) {
            *d = d.checked_add(o.checked_mul(sign)?)?;
        }
        let factor = if sign > 0 {
            self.factor.mul(&other.factor)?
        } else {
            self.factor.div(&other.factor)?
        };
        Some(Canonical { factor, dims })
    }

    fn pow(&self, n: i8) -> Option<Canonical> {
        let mut out = Canonical::one();
        for _ in 0..n.unsigned_abs() {
            out = out.times(self, if n > 0 { 1 } else { -1 })?;
        }
        Some(out)
    }
}

/// Parses a UCUM expression: `term := '/'? component (('.'|'/') component)*`.
struct UnitParser<'s> {
    s: &'s str,
    pos: usize,
}

impl UnitParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn term(&mut self) -> Option<Canonical> {
        let mut acc = Canonical::one();
        let mut sign = 1;
        if self.peek() == Some(b'/') {
            self.pos += 1;
            sign = -1;
        }
        loop {
            let c = self.component()?;
            acc = acc.times(&c, sign)?;
            match self.peek() {
                Some(b'.') => sign = 1,
                Some(b'/') => sign = -1,
                _ => return Some(acc),
            }
            self.pos += 1;
        }
    }

    fn component(&mut self) -> Option<Canonical> {
        let base = match self.peek()? {
            b'(' => {
                self.pos += 1;
                let inner = self.term()?;
                if self.peek() != Some(b')') {
                    return None;
                }
                self.pos += 1;
                inner
            }
            b'{' => {
                self.skip_annotation()?;
                return Some(Canonical::one());
            }
            b'0'..=b'9' => {
                let start = self.pos;
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.pos += 1;
                }
                let n = Decimal::parse(self.s.get(start..self.pos)?)?;
                if self.s.get(self.pos..)?.starts_with("*") {
                    // 10*3 style powers of ten.
                    self.pos += 1;
                    let exp = self.exponent()?;
                    return Some(Canonical {
                        factor: power_of_ten(i32::from(exp))?,
                        dims: [0; DIMS],
                    });
                }
                Canonical {
                    factor: n,
                    dims: [0; DIMS],
                }
            }
            _ => {
                let start = self.pos;
                while let Some(b) = self.peek() {
                    match b {
                        b'[' => {
                            while self.peek().is_some_and(|b| b != b']') {
                                self.pos += 1;
                            }
                            self.pos += 1;
                        }
                        b'.' | b'/' | b'(' | b')' | b'{' | b'0'..=b'9' | b'-' | b'+' => break,
                        _ => self.pos += 1,
                    }
                }
                symbol(self.s.get(start..self.pos)?)?
            }
        };
        let exp = if matches!(self.peek(), Some(b'0'..=b'9' | b'-' | b'+')) {
            self.exponent()?
        } else {
            1
        };
        if self.peek() == Some(b'{') {
            self.skip_annotation()?;
        }
        base.pow(exp)
    }

    fn exponent(&mut self) -> Option<i8> {
        let start = self.pos;
        if matches!(self.peek(), Some(b'-' | b'+')) {
            self.pos += 1;
        }
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.s.get(start..self.pos)?.parse().ok()
    }

    fn skip_annotation(&mut self) -> Option<()> {
        while self.peek()? != b'}' {
            self.pos += 1;
        }
        self.pos += 1;
        Some(())
    }
}

fn canonical(unit: &str, calendar: bool) -> Option<Canonical> {
    if calendar {
        let (factor, dims) = match calendar_keyword(unit)? {
            "year" => ("12", dim(CAL_MONTH)),
            "month" => ("1", dim(CAL_MONTH)),
            "week" => ("604800", dim(2)),
            "day" => ("86400", dim(2)),
            "hour" => ("3600", dim(2)),
            "minute" => ("60", dim(2)),
            "second" => ("1", dim(2)),
            _ => ("0.001", dim(2)),
        };
        return Some(Canonical {
            factor: dec(factor),
            dims,
        });
    }
    let mut p = UnitParser { s: unit, pos: 0 };
    let c = p.term()?;
    (p.pos == unit.len()).then_some(c)
}

impl Quantity {
    /// A quantity with a UCUM unit.
    pub fn ucum(value: Decimal, unit: &str) -> Quantity {
        Quantity {
            value,
            unit: unit.into(),
            calendar: false,
        }
    }

    fn same_unit(&self, other: &Quantity) -> bool {
        self.unit == other.unit && self.calendar == other.calendar
            || (self.calendar
                && other.calendar
                && calendar_keyword(&self.unit) == calendar_keyword(&other.unit))
    }

    /// `other`'s value expressed in `self`'s unit, when the units are
    /// commensurable.
    pub fn convert_other(&self, other: &Quantity) -> Option<Decimal> {
        if self.same_unit(other) {
            return Some(other.value);
        }
        let a = canonical(&self.unit, self.calendar)?;
        let b = canonical(&other.unit, other.calendar)?;
        if a.dims != b.dims {
            return None;
        }
        other.value.mul(&b.factor)?.div(&a.factor)
    }

    /// Orders two quantities; `None` when the units are not commensurable.
    pub fn compare(&self, other: &Quantity) -> Option<Ordering> {
        if self.same_unit(other) {
            return Some(self.value.cmp_value(&other.value));
        }
        let a = canonical(&self.unit, self.calendar)?;
        let b = canonical(&other.unit, other.calendar)?;
        if a.dims != b.dims {
            return None;
        }
        let x = self.value.mul(&a.factor)?;
        let y = other.value.mul(&b.factor)?;
        Some(x.cmp_value(&y))
    }

    /// FHIRPath `~`: equal once rounded to the least precise operand.
    pub fn equivalent(&self, other: &Quantity) -> bool {
        let Some(converted) = self.convert_other(other) else {
            return false;
        };
        let places = self.value.scale().min(converted.scale());
        self.value.round(places) == converted.round(places)
    }

    /// True when both units reduce to the same dimensions.
    pub fn comparable(&self, other: &Quantity) -> bool {
        self.convert_other(other).is_some()
    }

    /// `self + other` (`sign` 1) or `self - other` (`sign` -1), in `self`'s unit.
    pub fn add(&self, other: &Quantity, sign: i8) -> Option<Quantity> {
        let v = self.convert_other(other)?;
        let value = if sign > 0 {
            self.value.add(&v)?
        } else {
            self.value.sub(&v)?
        };
        Some(Quantity {
            value,
            unit: self.unit.clone(),
            calendar: self.calendar,
        })
    }

    fn ucum_text(&self) -> Option<String> {
        if !self.calendar {
            return Some(self.unit.to_string());
        }
        Some(
            match calendar_keyword(&self.unit)? {
                "week" => "wk",
                "day" => "d",
                "hour" => "h",
                "minute" => "min",
                "second" => "s",
                "millisecond" => "ms",
                _ => return None,
            }
            .to_owned(),
        )
    }

    /// `self * other` (`divide` false) or `self / other`.
    pub fn mul(&self, other: &Quantity, divide: bool) -> Option<Quantity> {
        let (a, b) = (self.ucum_text()?, other.ucum_text()?);
        let value = if divide {
            self.value.div(&other.value)?
        } else {
            self.value.mul(&other.value)?
        };
        let unit = match (a.as_str(), b.as_str(), divide) {
            (a, "1", _) => a.to_owned(),
            ("1", b, false) => b.to_owned(),
            (a, b, false) => format!("({a}).({b})"),
            (a, b, true) => format!("({a})/({b})"),
        };
        Some(Quantity::ucum(value, &unit))
    }

    /// The date arithmetic unit, `Err` when the unit is not a duration that
    /// may be added to a date (UCUM `a` and `mo` are not: FHIRPath §6.6.1).
    pub fn time_unit(&self) -> Option<TimeUnit> {
        let unit = if self.calendar {
            calendar_keyword(&self.unit)?
        } else {
            &self.unit
        };
        Some(match unit {
            "year" => TimeUnit::Year,
            "month" => TimeUnit::Month,
            "week" | "wk" => TimeUnit::Week,
            "day" | "d" => TimeUnit::Day,
            "hour" | "h" => TimeUnit::Hour,
            "minute" | "min" => TimeUnit::Minute,
            "second" | "s" => TimeUnit::Second,
            "millisecond" | "ms" => TimeUnit::Millisecond,
            _ => return None,
        })
    }
}

impl fmt::Display for Quantity {
    /// FHIRPath literal form: `1 'wk'`, `1 week`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.calendar {
            write!(f, "{} {}", self.value, self.unit)
        } else {
            write!(f, "{} '{}'", self.value, self.unit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(v: &str, u: &str) -> Quantity {
        Quantity::ucum(Decimal::parse(v).unwrap(), u)
    }

    #[test]
    fn conversions() {
        assert_eq!(
            q("4.0000", "g").compare(&q("4000.0", "mg")),
            Some(Ordering::Equal)
        );
        assert!(q("4", "g").equivalent(&q("4040", "mg")));
        let week = Quantity {
            value: Decimal::from_i64(1),
            unit: "week".into(),
            calendar: true,
        };
        assert_eq!(q("7", "d").compare(&week), Some(Ordering::Equal));
        let cm_m = q("2.0", "cm").mul(&q("2.0", "m"), false).unwrap();
        assert_eq!(cm_m.compare(&q("0.040", "m2")), Some(Ordering::Equal));
        assert_eq!(
            q("1", "mg/dL").compare(&q("10", "mg/L")),
            Some(Ordering::Equal)
        );
        assert_eq!(
            q("1", "a").compare(&Quantity {
                calendar: true,
                ..q("1", "year")
            }),
            None
        );
    }
}
