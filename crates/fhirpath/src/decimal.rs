//! Exact decimals: FHIRPath `Decimal` is a base-10 number with a scale
//! (<https://hl7.org/fhirpath/N1/#decimal>), never a binary float: `1.10`
//! keeps its two decimal places for `toString()` and precision, and equals
//! `1.1`.

use std::cmp::Ordering;
use std::fmt;

/// Largest scale kept; results finer than this are rounded.
const MAX_SCALE: u32 = 28;
/// Decimal places of a quotient that does not divide exactly.
const DIVISION_SCALE: u32 = 8;

/// `mantissa / 10^scale`.
#[derive(Debug, Clone, Copy)]
pub struct Decimal {
    mantissa: i128,
    scale: u32,
}

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

impl Decimal {
    /// Zero.
    pub const ZERO: Decimal = Decimal {
        mantissa: 0,
        scale: 0,
    };

    /// From an integer.
    pub fn from_i64(v: i64) -> Decimal {
        Decimal {
            mantissa: i128::from(v),
            scale: 0,
        }
    }

    /// `mantissa / 10^scale`.
    pub fn new(mantissa: i128, scale: u32) -> Decimal {
        Decimal { mantissa, scale }
    }

    /// Digits after the decimal point as written.
    pub fn scale(&self) -> u32 {
        self.scale
    }

    /// Parses `-?digits(.digits)?([eE][+-]?digits)?` (FHIRPath literal or JSON number).
    pub fn parse(text: &str) -> Option<Decimal> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (number, exponent) = match rest.find(['e', 'E']) {
            Some(i) => (rest.get(..i)?, rest.get(i + 1..)?.parse::<i32>().ok()?),
            None => (rest, 0),
        };
        let (int, frac) = match number.split_once('.') {
            Some((i, f)) => (i, f),
            None => (number, ""),
        };
        if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if number.contains('.') && (frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit())) {
            return None;
        }
        let mut mantissa: i128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            mantissa = mantissa
                .checked_mul(10)?
                .checked_add(i128::from(b - b'0'))?;
        }
        let mut scale = i64::try_from(frac.len()).ok()? - i64::from(exponent);
        if mantissa == 0 {
            // `0e999999999` is zero: no need to scale it (nor to loop).
            scale = scale.clamp(0, 38);
        }
        if scale < -38 {
            return None;
        }
        while scale < 0 {
            mantissa = mantissa.checked_mul(10)?;
            scale += 1;
        }
        let scale = u32::try_from(scale).ok()?;
        if scale > 38 {
            return None;
        }
        Some(Decimal {
            mantissa: if negative { -mantissa } else { mantissa },
            scale,
        })
    }

    /// The value with `scale` decimal places, if it fits.
    fn rescaled(&self, scale: u32) -> Option<i128> {
        match scale.cmp(&self.scale) {
            Ordering::Equal => Some(self.mantissa),
            Ordering::Greater => self.mantissa.checked_mul(pow10(scale - self.scale)?),
            Ordering::Less => Some(self.mantissa / pow10(self.scale - scale)?),
        }
    }

    fn aligned(a: &Decimal, b: &Decimal) -> Option<(i128, i128, u32)> {
        let scale = a.scale.max(b.scale);
        Some((a.rescaled(scale)?, b.rescaled(scale)?, scale))
    }

    /// Numeric comparison (`1.10` equals `1.1`).
    pub fn cmp_value(&self, other: &Decimal) -> Ordering {
        match Decimal::aligned(self, other) {
            Some((a, b, _)) => a.cmp(&b),
            None => self
                .to_f64()
                .partial_cmp(&other.to_f64())
                .unwrap_or(Ordering::Equal),
        }
    }

    /// `self + other`.
    pub fn add(&self, other: &Decimal) -> Option<Decimal> {
        let (a, b, scale) = Decimal::aligned(self, other)?;
        Some(Decimal::new(a.checked_add(b)?, scale))
    }

    /// `self - other`.
    pub fn sub(&self, other: &Decimal) -> Option<Decimal> {
        let (a, b, scale) = Decimal::aligned(self, other)?;
        Some(Decimal::new(a.checked_sub(b)?, scale))
    }

    /// `self * other`.
    pub fn mul(&self, other: &Decimal) -> Option<Decimal> {
        let product = Decimal::new(
            self.mantissa.checked_mul(other.mantissa)?,
            self.scale + other.scale,
        );
        Some(if product.scale > MAX_SCALE {
            product.round(MAX_SCALE)
        } else {
            product
        })
    }

    /// `self / other`: exact when it terminates within the operands' scale,
    /// else 8 decimal places; `None` for division by zero.
    pub fn div(&self, other: &Decimal) -> Option<Decimal> {
        if other.mantissa == 0 {
            return None;
        }
        let target = self.scale.max(other.scale).max(DIVISION_SCALE);
        // self/other = (m1 * 10^(t + s2 - s1 + 1) / m2) / 10^(t+1), then round.
        let shift = i64::from(target) + 1 + i64::from(other.scale) - i64::from(self.scale);
        let numerator = if shift >= 0 {
            self.mantissa
                .checked_mul(pow10(u32::try_from(shift).ok()?)?)?
        } else {
            self.mantissa / pow10(u32::try_from(-shift).ok()?)?
        };
        let q = Decimal::new(numerator / other.mantissa, target + 1).round(target);
        Some(q.trimmed(self.scale.max(other.scale)))
    }

    /// Drops trailing zeros after the point down to `min_scale` places.
    pub fn trimmed(&self, min_scale: u32) -> Decimal {
        let mut d = *self;
        while d.scale > min_scale && d.mantissa % 10 == 0 {
            d.mantissa /= 10;
            d.scale -= 1;
        }
        d
    }

    /// Rounds half away from zero to `places` decimal places.
    pub fn round(&self, places: u32) -> Decimal {
        if places >= self.scale {
            return *self;
        }
        let Some(factor) = pow10(self.scale - places) else {
            return Decimal::ZERO;
        };
        let q = self.mantissa / factor;
        let r = self.mantissa % factor;
        let q = if r.unsigned_abs() >= factor.unsigned_abs().div_ceil(2) {
            q.saturating_add(self.mantissa.signum())
        } else {
            q
        };
        Decimal::new(q, places)
    }

    /// Sets the scale to `places`, padding with zeros or rounding.
    pub fn with_scale(&self, places: u32) -> Option<Decimal> {
        if places >= self.scale {
            Some(Decimal::new(self.rescaled(places)?, places))
        } else {
            Some(self.round(places))
        }
    }

    /// Integer part towards zero.
    pub fn truncate(&self) -> Decimal {
        Decimal::new(self.rescaled(0).unwrap_or(0), 0)
    }

    /// Largest integer not above.
    pub fn floor(&self) -> Decimal {
        let t = self.truncate();
        if self.cmp_value(&t) == Ordering::Less {
            Decimal::new(t.mantissa - 1, 0)
        } else {
            t
        }
    }

    /// Smallest integer not below.
    pub fn ceiling(&self) -> Decimal {
        let t = self.truncate();
        if self.cmp_value(&t) == Ordering::Greater {
            Decimal::new(t.mantissa + 1, 0)
        } else {
            t
        }
    }

    /// Absolute value.
    pub fn abs(&self) -> Decimal {
        Decimal::new(self.mantissa.abs(), self.scale)
    }

    /// `-self`.
    pub fn neg(&self) -> Decimal {
        Decimal::new(-self.mantissa, self.scale)
    }

    /// True for zero.
    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// True below zero.
    pub fn is_negative(&self) -> bool {
        self.mantissa < 0
    }

    /// The integer value, when it is one and fits.
    pub fn to_i64(&self) -> Option<i64> {
        let t = self.truncate();
        if self.cmp_value(&t) != Ordering::Equal {
            return None;
        }
        i64::try_from(t.mantissa).ok()
    }

    /// Nearest binary float (for `exp`, `ln`, `sqrt`, `power`).
    pub fn to_f64(&self) -> f64 {
        self.to_string().parse().unwrap_or(f64::NAN)
    }

    /// From a binary float, by its shortest decimal rendering; `None` for NaN
    /// and infinities.
    pub fn from_f64(v: f64) -> Option<Decimal> {
        if !v.is_finite() {
            return None;
        }
        let d = Decimal::parse(&format!("{v}"))?;
        // Floats carry ~15-17 significant digits: keep 8 places as the
        // FHIRPath precision floor and drop noise beyond it.
        Some(d.round(d.scale.min(15)).trimmed(0))
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        self.cmp_value(other) == Ordering::Equal
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.mantissa.unsigned_abs().to_string();
        if self.mantissa < 0 {
            f.write_str("-")?;
        }
        let scale = self.scale as usize;
        if scale == 0 {
            return f.write_str(&digits);
        }
        if digits.len() <= scale {
            f.write_str("0.")?;
            for _ in 0..scale - digits.len() {
                f.write_str("0")?;
            }
            f.write_str(&digits)
        } else {
            let (int, frac) = digits.split_at(digits.len() - scale);
            write!(f, "{int}.{frac}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    #[test]
    fn parses_and_prints_as_written() {
        assert_eq!(d("1.10").to_string(), "1.10");
        assert_eq!(d("-0.5").to_string(), "-0.5");
        assert_eq!(d("1e2").to_string(), "100");
        assert_eq!(d("1.5e-3").to_string(), "0.0015");
        assert_eq!(
            d("1234567890987654321.0").to_string(),
            "1234567890987654321.0"
        );
        assert!(Decimal::parse("1.").is_none());
        assert!(Decimal::parse("a").is_none());
    }

    #[test]
    fn arithmetic() {
        assert_eq!(d("1.10"), d("1.1"));
        assert_eq!(d("1.2").add(&d("1.8")).unwrap(), d("3"));
        assert_eq!(d("1").div(&d("2")).unwrap().to_string(), "0.5");
        assert_eq!(d("1.2").div(&d("1.8")).unwrap().round(2), d("0.67"));
        assert_eq!(d("3.14159").round(3).to_string(), "3.142");
        assert_eq!(d("-2.1").floor(), d("-3"));
        assert_eq!(d("-1.1").ceiling(), d("-1"));
        assert_eq!(d("-1.56").truncate(), d("-1"));
    }
}
