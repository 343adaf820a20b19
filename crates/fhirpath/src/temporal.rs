//! FHIRPath `Date`, `DateTime` and `Time` with partial precision
//! (<https://hl7.org/fhirpath/N1/#datetime>): values keep the precision they
//! were written with, and comparing two values of different precision is
//! empty when the common components are equal
//! (<https://hl7.org/fhirpath/N1/#comparison>).

use std::cmp::Ordering;
use std::fmt;

/// Which of the three temporal types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemporalKind {
    /// `Date`: year to day.
    Date,
    /// `DateTime`: year to millisecond, optional offset.
    DateTime,
    /// `Time`: hour to millisecond.
    Time,
}

/// The finest component a value carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Precision {
    /// `YYYY`.
    Year,
    /// `YYYY-MM`.
    Month,
    /// `YYYY-MM-DD`.
    Day,
    /// `THH`.
    Hour,
    /// `THH:MM`.
    Minute,
    /// `THH:MM:SS`.
    Second,
    /// `THH:MM:SS.fff`.
    Millisecond,
}

/// A calendar or clock unit for date arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    /// year.
    Year,
    /// month.
    Month,
    /// week.
    Week,
    /// day.
    Day,
    /// hour.
    Hour,
    /// minute.
    Minute,
    /// second.
    Second,
    /// millisecond.
    Millisecond,
}

/// A date, date-time or time of some precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Temporal {
    /// Date, DateTime or Time.
    pub kind: TemporalKind,
    /// Finest component present.
    pub precision: Precision,
    year: i32,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    millis: u16,
    /// Offset from UTC in minutes, when written.
    tz: Option<i16>,
}

fn digits(s: &str, n: usize) -> Option<(u32, &str)> {
    let head = s.get(..n)?;
    if !head.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((head.parse().ok()?, s.get(n..)?))
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u8) -> u8 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (proleptic Gregorian), after H. Hinnant's
/// `days_from_civil`.
fn days_from_civil(y: i32, m: u8, d: u8) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i32, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (
        i32::try_from(y).unwrap_or(i32::MAX),
        u8::try_from(m).unwrap_or(1),
        u8::try_from(d).unwrap_or(1),
    )
}

const MS_PER_DAY: i64 = 86_400_000;

impl Temporal {
    fn blank(kind: TemporalKind, precision: Precision) -> Temporal {
        Temporal {
            kind,
            precision,
            year: 0,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
            millis: 0,
            tz: None,
        }
    }

    /// `YYYY(-MM(-DD)?)?`.
    pub fn parse_date(s: &str) -> Option<Temporal> {
        let (t, rest) = Temporal::date_part(s, TemporalKind::Date)?;
        rest.is_empty().then_some(t)
    }

    /// `YYYY(-MM(-DD(THH(:MM(:SS(.f+)?)?)?)?)?)?` with an optional `T` after
    /// any date precision and an optional offset after the time.
    pub fn parse_datetime(s: &str) -> Option<Temporal> {
        let (mut t, rest) = Temporal::date_part(s, TemporalKind::DateTime)?;
        if rest.is_empty() {
            return Some(t);
        }
        let rest = rest.strip_prefix('T')?;
        if rest.is_empty() {
            return Some(t);
        }
        if t.precision != Precision::Day {
            return None;
        }
        let rest = t.time_part(rest)?;
        let rest = t.offset(rest)?;
        rest.is_empty().then_some(t)
    }

    /// `HH(:MM(:SS(.f+)?)?)?`.
    pub fn parse_time(s: &str) -> Option<Temporal> {
        let mut t = Temporal::blank(TemporalKind::Time, Precision::Hour);
        let rest = t.time_part(s)?;
        rest.is_empty().then_some(t)
    }

    fn date_part(s: &str, kind: TemporalKind) -> Option<(Temporal, &str)> {
        let mut t = Temporal::blank(kind, Precision::Year);
        let (y, mut rest) = digits(s, 4)?;
        t.year = i32::try_from(y).ok()?;
        if let Some(r) = rest.strip_prefix('-') {
            let (m, r) = digits(r, 2)?;
            if !(1..=12).contains(&m) {
                return None;
            }
            t.month = u8::try_from(m).ok()?;
            t.precision = Precision::Month;
            rest = r;
            if let Some(r) = rest.strip_prefix('-') {
                let (d, r) = digits(r, 2)?;
                let d = u8::try_from(d).ok()?;
                if d == 0 || d > days_in_month(t.year, t.month) {
                    return None;
                }
                t.day = d;
                t.precision = Precision::Day;
                rest = r;
            }
        }
        Some((t, rest))
    }

    fn time_part<'s>(&mut self, s: &'s str) -> Option<&'s str> {
        let (h, mut rest) = digits(s, 2)?;
        if h > 23 {
            return None;
        }
        self.hour = u8::try_from(h).ok()?;
        self.precision = Precision::Hour;
        if let Some(r) = rest.strip_prefix(':') {
            let (m, r) = digits(r, 2)?;
            if m > 59 {
                return None;
            }
            self.minute = u8::try_from(m).ok()?;
            self.precision = Precision::Minute;
            rest = r;
            if let Some(r) = rest.strip_prefix(':') {
                let (sec, r) = digits(r, 2)?;
                if sec > 59 {
                    return None;
                }
                self.second = u8::try_from(sec).ok()?;
                self.precision = Precision::Second;
                rest = r;
                if let Some(r) = rest.strip_prefix('.') {
                    let n = r.bytes().take_while(u8::is_ascii_digit).count();
                    if n == 0 {
                        return None;
                    }
                    let frac = r.get(..n)?;
                    let mut ms = 0u16;
                    for (i, b) in frac.bytes().take(3).enumerate() {
                        ms += u16::from(b - b'0') * [100, 10, 1].get(i).copied().unwrap_or(0);
                    }
                    self.millis = ms;
                    self.precision = Precision::Millisecond;
                    rest = r.get(n..)?;
                }
            }
        }
        Some(rest)
    }

    fn offset<'s>(&mut self, s: &'s str) -> Option<&'s str> {
        if let Some(r) = s.strip_prefix('Z') {
            self.tz = Some(0);
            return Some(r);
        }
        let sign = match s.as_bytes().first() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return Some(s),
        };
        let (h, r) = digits(s.get(1..)?, 2)?;
        let r = r.strip_prefix(':')?;
        let (m, r) = digits(r, 2)?;
        if h > 14 || m > 59 {
            return None;
        }
        self.tz = Some(sign * i16::try_from(h * 60 + m).ok()?);
        Some(r)
    }

    /// A DateTime (UTC, millisecond) from a system clock reading.
    pub fn from_unix_millis(ms: i64) -> Temporal {
        let days = ms.div_euclid(MS_PER_DAY);
        let rem = ms.rem_euclid(MS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let mut t = Temporal::blank(TemporalKind::DateTime, Precision::Millisecond);
        t.year = year;
        t.month = month;
        t.day = day;
        t.set_ms_of_day(rem);
        t.tz = Some(0);
        t
    }

    fn set_ms_of_day(&mut self, rem: i64) {
        self.hour = u8::try_from(rem / 3_600_000).unwrap_or(0);
        self.minute = u8::try_from(rem / 60_000 % 60).unwrap_or(0);
        self.second = u8::try_from(rem / 1000 % 60).unwrap_or(0);
        self.millis = u16::try_from(rem % 1000).unwrap_or(0);
    }

    fn ms_of_day(&self) -> i64 {
        i64::from(self.hour) * 3_600_000
            + i64::from(self.minute) * 60_000
            + i64::from(self.second) * 1000
            + i64::from(self.millis)
    }

    /// The date part as a `Date` of at most day precision.
    pub fn to_date(&self) -> Temporal {
        let mut t = *self;
        t.kind = TemporalKind::Date;
        t.precision = t.precision.min(Precision::Day);
        t.tz = None;
        t.hour = 0;
        t.minute = 0;
        t.second = 0;
        t.millis = 0;
        t
    }

    /// The same instant as a `DateTime`.
    pub fn to_datetime(&self) -> Temporal {
        let mut t = *self;
        t.kind = TemporalKind::DateTime;
        t
    }

    /// The time part as a `Time`.
    pub fn to_time(&self) -> Option<Temporal> {
        if self.precision < Precision::Hour {
            return None;
        }
        let mut t = *self;
        t.kind = TemporalKind::Time;
        t.tz = None;
        Some(t)
    }

    /// Shifted to UTC (only for values with an offset and an hour).
    fn utc(&self) -> Temporal {
        let (Some(tz), true) = (self.tz, self.precision >= Precision::Hour) else {
            return *self;
        };
        let total = days_from_civil(self.year, self.month, self.day) * MS_PER_DAY
            + self.ms_of_day()
            - i64::from(tz) * 60_000;
        let mut t = *self;
        let (y, m, d) = civil_from_days(total.div_euclid(MS_PER_DAY));
        t.year = y;
        t.month = m;
        t.day = d;
        t.set_ms_of_day(total.rem_euclid(MS_PER_DAY));
        t.tz = Some(0);
        t
    }

    fn components(&self) -> [(Precision, i64); 6] {
        [
            (Precision::Year, i64::from(self.year)),
            (Precision::Month, i64::from(self.month)),
            (Precision::Day, i64::from(self.day)),
            (Precision::Hour, i64::from(self.hour)),
            (Precision::Minute, i64::from(self.minute)),
            (
                Precision::Second,
                i64::from(self.second) * 1000 + i64::from(self.millis),
            ),
        ]
    }

    /// Precision with seconds and milliseconds counted as one.
    fn effective(&self) -> Precision {
        self.precision.min(Precision::Second)
    }

    /// Orders two values: `None` when they are not comparable at their
    /// precisions (FHIRPath: the result is empty).
    pub fn compare(&self, other: &Temporal) -> Option<Ordering> {
        let (a, b) = match (self.tz, other.tz) {
            (Some(_), Some(_)) => (self.utc(), other.utc()),
            (None, None) => (*self, *other),
            _ if self.precision >= Precision::Hour && other.precision >= Precision::Hour => {
                return None;
            }
            _ => (*self, *other),
        };
        let start = if self.kind == TemporalKind::Time {
            Precision::Hour
        } else {
            Precision::Year
        };
        let (pa, pb) = (a.effective(), b.effective());
        for ((p, x), (_, y)) in a.components().into_iter().zip(b.components()) {
            if p < start {
                continue;
            }
            match (p <= pa, p <= pb) {
                (true, true) => match x.cmp(&y) {
                    Ordering::Equal => {}
                    other => return Some(other),
                },
                (false, false) => return Some(Ordering::Equal),
                _ => return None,
            }
        }
        Some(Ordering::Equal)
    }

    /// FHIRPath equivalence (`~`): same precision and equal.
    pub fn equivalent(&self, other: &Temporal) -> bool {
        self.effective() == other.effective() && self.compare(other) == Some(Ordering::Equal)
    }

    /// Adds `n` units; `None` when the result leaves the representable range.
    pub fn add(&self, n: i64, unit: TimeUnit) -> Option<Temporal> {
        // Beyond ±4·10¹⁴ of any unit the result leaves years 0–9999 anyway;
        // refusing early keeps every step below free of overflow.
        if n.unsigned_abs() > 400_000_000_000_000 {
            return None;
        }
        let mut t = *self;
        match unit {
            TimeUnit::Year => {
                t.year = i32::try_from(i64::from(t.year) + n).ok()?;
                t.clamp_day();
            }
            TimeUnit::Month => {
                if t.precision < Precision::Month {
                    t.year = i32::try_from(i64::from(t.year) + n / 12).ok()?;
                } else {
                    let months = i64::from(t.year) * 12 + i64::from(t.month) - 1 + n;
                    t.year = i32::try_from(months.div_euclid(12)).ok()?;
                    t.month = u8::try_from(months.rem_euclid(12) + 1).ok()?;
                    t.clamp_day();
                }
            }
            TimeUnit::Week => return self.add(n.checked_mul(7)?, TimeUnit::Day),
            TimeUnit::Day => {
                if t.kind == TemporalKind::Time {
                    return Some(t);
                }
                if t.precision < Precision::Day {
                    return self.add(n / 30, TimeUnit::Month);
                }
                let (y, m, d) = civil_from_days(days_from_civil(t.year, t.month, t.day) + n);
                t.year = y;
                t.month = m;
                t.day = d;
            }
            TimeUnit::Hour | TimeUnit::Minute | TimeUnit::Second | TimeUnit::Millisecond => {
                let factor = match unit {
                    TimeUnit::Hour => 3_600_000,
                    TimeUnit::Minute => 60_000,
                    TimeUnit::Second => 1000,
                    _ => 1,
                };
                let delta = n.checked_mul(factor)?;
                if t.kind == TemporalKind::Date || t.precision < Precision::Hour {
                    return self.add(delta / MS_PER_DAY, TimeUnit::Day);
                }
                let total = if t.kind == TemporalKind::Time {
                    t.ms_of_day().checked_add(delta)?.rem_euclid(MS_PER_DAY)
                } else {
                    let total = (days_from_civil(t.year, t.month, t.day) * MS_PER_DAY
                        + t.ms_of_day())
                    .checked_add(delta)?;
                    let (y, m, d) = civil_from_days(total.div_euclid(MS_PER_DAY));
                    t.year = y;
                    t.month = m;
                    t.day = d;
                    total.rem_euclid(MS_PER_DAY)
                };
                t.set_ms_of_day(total);
            }
        }
        (0..=9999).contains(&t.year).then_some(t)
    }

    fn clamp_day(&mut self) {
        if self.precision >= Precision::Day {
            self.day = self.day.min(days_in_month(self.year, self.month));
        }
    }

    /// The number of digits of precision (FHIRPath 2.1 `precision()`): 4, 6,
    /// 8, 10, 12, 14, 17 for dates, 2, 4, 6, 9 for times.
    pub fn precision_digits(&self) -> i64 {
        let base = match self.precision {
            Precision::Year => 4,
            Precision::Month => 6,
            Precision::Day => 8,
            Precision::Hour => 10,
            Precision::Minute => 12,
            Precision::Second => 14,
            Precision::Millisecond => 17,
        };
        if self.kind == TemporalKind::Time {
            base - 8
        } else {
            base
        }
    }

    /// The lowest (`high == false`) or highest value within this value's
    /// imprecision, at `digits` precision (FHIRPath 2.1 `lowBoundary()` /
    /// `highBoundary()`); `None` for an unsupported precision.
    pub fn boundary(&self, digits: Option<i64>, high: bool) -> Option<Temporal> {
        let is_time = self.kind == TemporalKind::Time;
        let digits = digits.unwrap_or(if is_time { 9 } else { 17 });
        let target = match (is_time, digits) {
            (false, 4) => Precision::Year,
            (false, 6) => Precision::Month,
            (false, 8) => Precision::Day,
            (false, 10) | (true, 2) => Precision::Hour,
            (false, 12) | (true, 4) => Precision::Minute,
            (false, 14) | (true, 6) => Precision::Second,
            (false, 17) | (true, 9) => Precision::Millisecond,
            _ => return None,
        };
        let mut t = *self;
        let p = self.precision;
        if p < Precision::Month {
            t.month = if high { 12 } else { 1 };
        }
        if p < Precision::Day {
            t.day = if high {
                days_in_month(t.year, t.month)
            } else {
                1
            };
        }
        if p < Precision::Hour {
            t.hour = if high { 23 } else { 0 };
        }
        if p < Precision::Minute {
            t.minute = if high { 59 } else { 0 };
        }
        if p < Precision::Second {
            t.second = if high { 59 } else { 0 };
        }
        if p < Precision::Millisecond {
            t.millis = if high { 999 } else { 0 };
        }
        t.precision = target;
        if t.kind == TemporalKind::DateTime {
            if target <= Precision::Day {
                t.kind = TemporalKind::Date;
                t.tz = None;
            } else if t.tz.is_none() {
                t.tz = Some(if high { -12 * 60 } else { 14 * 60 });
            }
        }
        Some(t)
    }
}

impl fmt::Display for Temporal {
    /// The FHIRPath/ISO 8601 form without the leading `@`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind != TemporalKind::Time {
            write!(f, "{:04}", self.year)?;
            if self.precision >= Precision::Month {
                write!(f, "-{:02}", self.month)?;
            }
            if self.precision >= Precision::Day {
                write!(f, "-{:02}", self.day)?;
            }
            if self.kind == TemporalKind::Date || self.precision < Precision::Hour {
                return Ok(());
            }
            f.write_str("T")?;
        }
        write!(f, "{:02}", self.hour)?;
        if self.precision >= Precision::Minute {
            write!(f, ":{:02}", self.minute)?;
        }
        if self.precision >= Precision::Second {
            write!(f, ":{:02}", self.second)?;
        }
        if self.precision >= Precision::Millisecond {
            write!(f, ".{:03}", self.millis)?;
        }
        if let (TemporalKind::DateTime, Some(tz)) = (self.kind, self.tz) {
            if tz == 0 {
                f.write_str("Z")?;
            } else {
                let sign = if tz < 0 { '-' } else { '+' };
                write!(f, "{sign}{:02}:{:02}", tz.abs() / 60, tz.abs() % 60)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_precision_comparison() {
        let a = Temporal::parse_date("2018-03").unwrap();
        let b = Temporal::parse_date("2018-03-01").unwrap();
        assert_eq!(a.compare(&b), None);
        let c = Temporal::parse_datetime("2017-11-05T01:30:00.0-04:00").unwrap();
        let d = Temporal::parse_datetime("2017-11-05T00:30:00.0-05:00").unwrap();
        assert_eq!(c.compare(&d), Some(Ordering::Equal));
        let e = Temporal::parse_datetime("2012-04-15T15:30:31").unwrap();
        let g = Temporal::parse_datetime("2012-04-15T15:30:31.0").unwrap();
        assert_eq!(e.compare(&g), Some(Ordering::Equal));
    }

    #[test]
    fn arithmetic_and_rendering() {
        let d = Temporal::parse_date("1973-12-25").unwrap();
        assert_eq!(d.add(7, TimeUnit::Day).unwrap().to_string(), "1974-01-01");
        assert_eq!(d.add(1, TimeUnit::Month).unwrap().to_string(), "1974-01-25");
        let t = Temporal::parse_datetime("1973-12-25T00:00:00.000+10:00").unwrap();
        assert_eq!(
            t.add(1, TimeUnit::Hour).unwrap().to_string(),
            "1973-12-25T01:00:00.000+10:00"
        );
        assert!(Temporal::parse_datetime("2015-02-30").is_none());
        assert_eq!(
            Temporal::parse_datetime("2015T").unwrap().to_string(),
            "2015"
        );
    }
}
