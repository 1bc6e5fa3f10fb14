//! Dates by hand, for the naive evaluator: its own reading of the instants
//! `docs/query-language.md` promises, its own calendar months, its own
//! clock. Nothing here calls chrono or the engine, so a date bug in either
//! shows up as a disagreement instead of being shared.
//!
//! The calendar is the proleptic Gregorian one counted from 1970-01-01 in
//! whole days, leap years by the three rules, every division rounded down so
//! that years before 1970 (and before year 0) count the same way.

pub const MS_PER_DAY: i64 = 86_400_000;

/// A moment as a calendar shows it in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub milli: u32,
}

pub fn is_leap(year: i64) -> bool {
    year.rem_euclid(4) == 0 && (year.rem_euclid(100) != 0 || year.rem_euclid(400) == 0)
}

pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => panic!("no month {month}"),
    }
}

/// How many leap years there are in 1..=year (negative below year 1).
fn leap_years_through(year: i64) -> i64 {
    year.div_euclid(4) - year.div_euclid(100) + year.div_euclid(400)
}

/// Days from 1970-01-01 to the first of January of `year`.
fn days_before_year(year: i64) -> i64 {
    365 * (year - 1970) + leap_years_through(year - 1) - leap_years_through(1969)
}

/// Days from 1970-01-01 to a date. `day` may run past the end of the month
/// (the 31st of February is the 3rd of March, or the 2nd in a leap year).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let months: i64 = (1..month).map(|m| i64::from(days_in_month(year, m))).sum();
    days_before_year(year) + months + i64::from(day) - 1
}

/// The date `days` after 1970-01-01 (before it when negative).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let mut year = 1970 + days.div_euclid(366);
    while days_before_year(year) > days {
        year -= 1;
    }
    while days_before_year(year + 1) <= days {
        year += 1;
    }
    let mut rest = days - days_before_year(year);
    let mut month = 1;
    while rest >= i64::from(days_in_month(year, month)) {
        rest -= i64::from(days_in_month(year, month));
        month += 1;
    }
    (year, month, rest as u32 + 1)
}

pub fn civil(ms: i64) -> Civil {
    let (year, month, day) = civil_from_days(ms.div_euclid(MS_PER_DAY));
    let in_day = ms.rem_euclid(MS_PER_DAY);
    Civil {
        year,
        month,
        day,
        hour: (in_day / 3_600_000) as u32,
        minute: (in_day / 60_000 % 60) as u32,
        second: (in_day / 1000 % 60) as u32,
        milli: (in_day % 1000) as u32,
    }
}

pub fn from_civil(c: Civil) -> i64 {
    days_from_civil(c.year, c.month, c.day) * MS_PER_DAY
        + ((i64::from(c.hour) * 60 + i64::from(c.minute)) * 60 + i64::from(c.second)) * 1000
        + i64::from(c.milli)
}

/// The same time of day `n` calendar months earlier, the day clamped to
/// that month's length (31 March minus one month is 28 or 29 February).
pub fn months_before(ms: i64, n: u32) -> i64 {
    let c = civil(ms);
    let index = c.year * 12 + i64::from(c.month) - 1 - i64::from(n);
    let year = index.div_euclid(12);
    let month = index.rem_euclid(12) as u32 + 1;
    from_civil(Civil {
        year,
        month,
        day: c.day.min(days_in_month(year, month)),
        ..c
    })
}

/// `2026-06-15T12:00:00.000Z`: how explanations write a time.
pub fn format_utc(ms: i64) -> String {
    let c = civil(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.milli
    )
}

/// How [`write`] spells the fraction of a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fraction {
    /// None at all (only for whole seconds).
    None,
    /// As few digits as the milliseconds need (`.5`, `.25`, `.125`).
    Short,
    /// Always three (`.500`).
    Millis,
    /// Six, the last three zero (`.500000`).
    Micros,
}

/// `ms` written as a query or a value may write it: a date alone when
/// `date_only` and it is midnight UTC, else an RFC 3339 time at
/// `offset_minutes` east of UTC (`Z` for 0 unless `numeric_zero`), with the
/// fraction spelled as asked and `t`/`z` in lower case when `lower`.
pub fn write(
    ms: i64,
    date_only: bool,
    offset_minutes: i32,
    numeric_zero: bool,
    fraction: Fraction,
    lower: bool,
) -> String {
    if date_only && ms.rem_euclid(MS_PER_DAY) == 0 {
        let c = civil(ms);
        return format!("{:04}-{:02}-{:02}", c.year, c.month, c.day);
    }
    let c = civil(ms + i64::from(offset_minutes) * 60_000);
    let fraction = match fraction {
        Fraction::None if c.milli == 0 => String::new(),
        Fraction::None | Fraction::Short => {
            format!(".{:03}", c.milli).trim_end_matches('0').to_owned()
        }
        Fraction::Millis => format!(".{:03}", c.milli),
        Fraction::Micros => format!(".{:03}000", c.milli),
    };
    let fraction = if fraction == "." {
        ".0".to_owned()
    } else {
        fraction
    };
    let offset = if offset_minutes == 0 && !numeric_zero {
        "Z".to_owned()
    } else {
        let sign = if offset_minutes < 0 { '-' } else { '+' };
        let m = offset_minutes.unsigned_abs();
        format!("{sign}{:02}:{:02}", m / 60, m % 60)
    };
    let text = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{fraction}{offset}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    );
    if lower { text.to_lowercase() } else { text }
}

/// Reads an instant the way `docs/query-language.md` promises: a date
/// `YYYY-MM-DD` (midnight UTC), or an RFC 3339 time `YYYY-MM-DDTHH:MM:SS`,
/// an optional fraction of any length (read to the millisecond, the rest
/// dropped), and `Z` or an offset `±HH:MM`. RFC 3339 allows `t` and `z` in
/// lower case, and a 60th second (a leap second, read as the next second).
pub fn parse_instant(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let (year, month, day) = date(b.get(..10)?)?;
    let midnight = days_from_civil(year, month, day) * MS_PER_DAY;
    if b.len() == 10 {
        return Some(midnight);
    }
    if !matches!(b[10], b'T' | b't') {
        return None;
    }
    let rest = &b[11..];
    let clock = rest.get(..8)?;
    if clock[2] != b':' || clock[5] != b':' {
        return None;
    }
    let (hour, minute, second) = (
        two_digits(&clock[0..2])?,
        two_digits(&clock[3..5])?,
        two_digits(&clock[6..8])?,
    );
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 8;
    let mut milli = 0;
    if rest.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while rest.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 3 {
                milli = milli * 10 + i64::from(rest[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..3 {
            milli *= 10;
        }
    }
    let offset_minutes = match rest.get(i..)? {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (two_digits(&[*h1, *h2])?, two_digits(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = i64::from(h * 60 + m);
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    let in_day = (i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)) * 1000;
    Some(midnight + in_day + milli - offset_minutes * 60_000)
}

fn two_digits(b: &[u8]) -> Option<u32> {
    match b {
        [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            Some(u32::from(a - b'0') * 10 + u32::from(b - b'0'))
        }
        _ => None,
    }
}

/// `YYYY-MM-DD`, a real day of a real month.
fn date(b: &[u8]) -> Option<(i64, u32, u32)> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = i64::from(two_digits(&b[0..2])? * 100 + two_digits(&b[2..4])?);
    let (month, day) = (two_digits(&b[5..7])?, two_digits(&b[8..10])?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some((year, month, day))
}

#[cfg(test)]
mod tests {
    //! Every figure here is worked out by hand (or read off a calendar),
    //! never computed with another date library.

    use super::*;

    const DAY: i64 = MS_PER_DAY;

    #[test]
    fn days_are_counted_from_1970() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(1970, 12, 31), 364);
        assert_eq!(days_from_civil(1971, 1, 1), 365);
        // 1972 is a leap year: 365 + 365 + 31 + 28 days before 29 February.
        assert_eq!(days_from_civil(1972, 2, 29), 789);
        assert_eq!(days_from_civil(1972, 3, 1), 790);
        // 2000-01-01 is 30 years on, 7 of them leap (72, 76, ... 96).
        assert_eq!(days_from_civil(2000, 1, 1), 30 * 365 + 7);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        // 1968 is a leap year: 366 + 365 days back to its first day.
        assert_eq!(days_from_civil(1968, 1, 1), -731);
        // Year 0 is a leap year; 1 BC's first day, 1970 years of 365 days
        // and 478 leap days (by the three rules, 0 through 1968) earlier.
        assert_eq!(days_from_civil(0, 1, 1), -(1970 * 365 + 478));
    }

    #[test]
    fn leap_years_follow_the_three_rules() {
        for (year, leap) in [
            (2024, true),
            (2026, false),
            (1900, false),
            (2000, true),
            (2100, false),
            (0, true),
            (-4, true),
            (-100, false),
            (-400, true),
        ] {
            assert_eq!(is_leap(year), leap, "{year}");
        }
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2026, 2), 28);
        assert_eq!(days_in_month(2026, 4), 30);
    }

    #[test]
    fn a_day_past_the_month_runs_into_the_next() {
        assert_eq!(days_from_civil(2026, 2, 31), days_from_civil(2026, 3, 3));
        assert_eq!(days_from_civil(2024, 2, 31), days_from_civil(2024, 3, 2));
    }

    #[test]
    fn dates_read_back() {
        for days in [
            -800_000, -719_528, -1, 0, 1, 59, 789, 10_956, 20_619, 2_000_000,
        ] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(20_619), (2026, 6, 15));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn the_test_clocks_are_what_they_say() {
        // 2026-06-15: 56 years after 1970, 14 of them leap (72 ... 2024),
        // then January to May of 2026 (151 days) and 14 days of June.
        assert_eq!(days_from_civil(2026, 6, 15), 56 * 365 + 14 + 151 + 14);
        assert_eq!(
            from_civil(Civil {
                year: 2026,
                month: 6,
                day: 15,
                hour: 12,
                minute: 0,
                second: 0,
                milli: 0
            }),
            1_781_524_800_000
        );
        assert_eq!(format_utc(1_781_524_800_000), "2026-06-15T12:00:00.000Z");
        assert_eq!(format_utc(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn months_clamp_to_the_end_of_the_shorter_month() {
        let at = |y, mo, d, h: i64| days_from_civil(y, mo, d) * DAY + h * 3_600_000;
        let cases = [
            // 31 March back one month: the end of February.
            (at(2026, 3, 31, 12), 1, at(2026, 2, 28, 12)),
            (at(2024, 3, 31, 6), 1, at(2024, 2, 29, 6)),
            (at(2024, 3, 31, 6), 2, at(2024, 1, 31, 6)),
            (at(2024, 3, 31, 6), 13, at(2023, 2, 28, 6)),
            (at(2026, 3, 31, 0), 25, at(2024, 2, 29, 0)),
            // 29 February back a year: 28 February; back four: 29 February.
            (at(2024, 2, 29, 0), 12, at(2023, 2, 28, 0)),
            (at(2024, 2, 29, 0), 48, at(2020, 2, 29, 0)),
            // 31 January back one month: 31 December; across a year.
            (at(2026, 1, 31, 23), 1, at(2025, 12, 31, 23)),
            (at(2026, 1, 31, 23), 2, at(2025, 11, 30, 23)),
            // Mid-month: the same day.
            (at(2026, 6, 15, 12), 1, at(2026, 5, 15, 12)),
            (at(2026, 6, 15, 12), 12, at(2025, 6, 15, 12)),
            // 30 May back 3: 28 February (not 2 March).
            (at(2026, 5, 30, 0), 3, at(2026, 2, 28, 0)),
        ];
        for (from, n, want) in cases {
            assert_eq!(
                months_before(from, n),
                want,
                "{} minus {n} months",
                format_utc(from)
            );
        }
        // 100,000 months (8,333 years and 4 months) before 15 June 2026 is
        // 15 February 6308 BC, year -6307: still a real day.
        let far = months_before(at(2026, 6, 15, 12), 100_000);
        assert_eq!(civil(far).year, -6307);
        assert_eq!((civil(far).month, civil(far).day), (2, 15));
    }

    #[test]
    fn instants_as_the_document_writes_them() {
        let noon = 1_781_524_800_000; // 2026-06-15T12:00:00Z
        let cases = [
            ("2026-06-15", Some(noon - 12 * 3_600_000)),
            ("2026-06-15T12:00:00Z", Some(noon)),
            ("2026-06-15t12:00:00z", Some(noon)),
            ("2026-06-15T13:00:00+01:00", Some(noon)),
            ("2026-06-15T06:30:00-05:30", Some(noon)),
            ("2026-06-16T01:45:00+13:45", Some(noon)),
            ("2026-06-15T12:00:00-00:00", Some(noon)),
            ("2026-06-15T12:00:00.5Z", Some(noon + 500)),
            ("2026-06-15T12:00:00.125Z", Some(noon + 125)),
            ("2026-06-15T12:00:00.125999Z", Some(noon + 125)),
            ("2026-06-15T12:00:00.0Z", Some(noon)),
            // A leap second is the next second.
            ("2026-06-15T11:59:60Z", Some(noon)),
            // The offset may cross midnight, and a month, and a year.
            ("2026-01-01T00:30:00+01:00", Some(1_767_223_800_000)),
            ("2024-02-29", Some(1_709_164_800_000)),
            ("1969-12-31T23:59:59.999Z", Some(-1)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_instant(text), want, "{text}");
        }
    }

    #[test]
    fn anything_else_is_not_an_instant() {
        for text in [
            "2026-6-15",
            "2026-06-5",
            " 2026-06-15",
            "2026-06-15 ",
            "+2026-06-15",
            "02026-06-15",
            "2026-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-06-31",
            "2026-06-15T12:00:00",
            "2026-06-15T12:00Z",
            "2026-06-15 12:00:00Z",
            "2026-06-15T24:00:00Z",
            "2026-06-15T12:60:00Z",
            "2026-06-15T12:00:61Z",
            "2026-06-15T12:00:00.Z",
            "2026-06-15T12:00:00+0100",
            "2026-06-15T12:00:00+01",
            "2026-06-15T12:00:00+24:00",
            "2026-06-15T12:00:00+01:60",
            "2026-06-15T12:00:00ZZ",
            "15/06/2026",
            "",
        ] {
            assert_eq!(parse_instant(text), None, "{text:?}");
        }
    }

    #[test]
    fn written_instants_read_back() {
        let noon = 1_781_524_800_000;
        assert_eq!(
            write(noon, false, 60, false, Fraction::None, false),
            "2026-06-15T13:00:00+01:00"
        );
        assert_eq!(
            write(noon + 500, false, -330, false, Fraction::Short, true),
            "2026-06-15t06:30:00.5-05:30"
        );
        assert_eq!(
            write(noon, false, 0, true, Fraction::Micros, false),
            "2026-06-15T12:00:00.000000+00:00"
        );
        assert_eq!(
            write(noon - 12 * 3_600_000, true, 0, false, Fraction::None, false),
            "2026-06-15"
        );
        for ms in [noon, noon + 1, -1, 0, 1_709_164_800_000 - 1] {
            for offset in [0, 60, -330, 825, -720] {
                for fraction in [
                    Fraction::None,
                    Fraction::Short,
                    Fraction::Millis,
                    Fraction::Micros,
                ] {
                    let text = write(ms, true, offset, offset == 60, fraction, offset < 0);
                    assert_eq!(parse_instant(&text), Some(ms), "{text}");
                }
            }
        }
    }
}
