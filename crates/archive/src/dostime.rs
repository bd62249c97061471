//! Unix seconds to and from zip's MS-DOS date and time, read as UTC.
//!
//! By hand rather than through zip's `jiff-02` feature: that feature turns on jiff's default
//! features (time zone database and all) for the whole workspace.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Unix seconds as an MS-DOS time in UTC, when in its range (1980 to 2107); odd seconds round down.
pub(crate) fn to_dos(seconds: i64) -> Option<zip::DateTime> {
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let second_of_day = seconds.rem_euclid(86_400);
    zip::DateTime::from_date_and_time(
        u16::try_from(year).ok()?,
        u8::try_from(month).ok()?,
        u8::try_from(day).ok()?,
        u8::try_from(second_of_day / 3600).ok()?,
        u8::try_from(second_of_day / 60 % 60).ok()?,
        u8::try_from(second_of_day % 60).ok()?,
    )
    .ok()
}

/// An MS-DOS time, read as UTC, in Unix seconds.
pub(crate) fn from_dos(time: &zip::DateTime) -> i64 {
    let days = days_from_civil(
        i64::from(time.year()),
        i64::from(time.month()),
        i64::from(time.day()),
    );
    days * 86_400
        + i64::from(time.hour()) * 3600
        + i64::from(time.minute()) * 60
        + i64::from(time.second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates_convert_both_ways() {
        // 2020-09-13T12:26:40Z
        let dos = to_dos(1_600_000_000).unwrap();
        assert_eq!((dos.year(), dos.month(), dos.day()), (2020, 9, 13));
        assert_eq!((dos.hour(), dos.minute(), dos.second()), (12, 26, 40));
        assert_eq!(from_dos(&dos), 1_600_000_000);
        // A leap day, and odd seconds rounding down.
        let leap = to_dos(951_782_401).unwrap();
        assert_eq!((leap.year(), leap.month(), leap.day()), (2000, 2, 29));
        assert_eq!(from_dos(&leap), 951_782_400);
        assert!(to_dos(0).is_none());
        for seconds in (315_532_800..4_354_819_198).step_by(7_777_777) {
            let even = seconds - seconds % 2;
            assert_eq!(from_dos(&to_dos(seconds).unwrap()), even, "{seconds}");
        }
    }
}
