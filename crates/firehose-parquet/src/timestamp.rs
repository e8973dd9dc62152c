//! Timestamp and date parsing for `timestamp` and `date` columns.
//!
//! Firehose accepts, without configuration (reference §13):
//! - `yyyy-MM-dd'T'HH:mm:ss[.S]'Z'` and `yyyy-[M]M-[d]d HH:mm:ss[.S]` (the latter is
//!   `java.sql.Timestamp.valueOf`), with 1 to 9 fraction digits; both read as UTC;
//! - epoch seconds or epoch milliseconds as a JSON integer, told apart by magnitude
//!   ([`EPOCH_MILLIS_FROM`]), and float epoch seconds.
//!
//! The Hive JSON SerDe's `TimestampFormats` add Joda-Time patterns, tried in order before those
//! defaults (Hive's timestamp parser falls back to `Timestamp.valueOf` when no pattern matches), and
//! the special format `millis`, which makes integers always epoch milliseconds.
//!
//! Results are milliseconds since the epoch, UTC; finer fractions are truncated, as the column is
//! TIMESTAMP(MILLIS).

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use serde_json::Number;

/// An integer epoch at or beyond this magnitude is milliseconds, below it seconds. As seconds it
/// would be the year 5138; as milliseconds it is March 1973, so both readings of any realistic
/// event time stay unambiguous.
pub(crate) const EPOCH_MILLIS_FROM: i64 = 100_000_000_000;
/// The special `TimestampFormats` entry for epoch milliseconds.
const MILLIS_FORMAT: &str = "millis";
/// Fraction digits beyond nanoseconds are meaningless; more is treated as a mismatch.
const FRACTION_DIGITS_MAX: usize = 9;
/// Longest digit run a year may take in a pattern that does not fix its width.
const YEAR_DIGITS_MAX: usize = 9;
/// Two-digit years (`yy`) land in 1950..=2049. Joda centres its window on the current year; a
/// fixed window keeps conversion deterministic.
const TWO_DIGIT_YEAR_PIVOT: i32 = 50;

/// One configured `TimestampFormats` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TimestampFormat {
    EpochMillis,
    Pattern(Vec<Token>),
}

impl TimestampFormat {
    /// # Errors
    /// The reason, when the pattern uses a letter we do not support or is malformed.
    pub(crate) fn compile(text: &str) -> Result<Self, String> {
        if text == MILLIS_FORMAT {
            return Ok(TimestampFormat::EpochMillis);
        }
        compile_pattern(text).map(TimestampFormat::Pattern)
    }
}

/// A timestamp from a JSON number.
pub(crate) fn timestamp_from_number(number: &Number, formats: &[TimestampFormat]) -> Option<i64> {
    if let Some(integer) = number.as_i64() {
        let millis_configured = formats.contains(&TimestampFormat::EpochMillis);
        return epoch_integer_to_millis(integer, millis_configured);
    }
    if number.is_u64() {
        return None; // beyond i64 in either unit
    }
    let seconds = number.as_f64()?;
    let millis = (seconds * 1000.0).round();
    // i64::MAX as f64 rounds up to 2^63, so `<` keeps the cast in range.
    if !millis.is_finite() || millis < i64::MIN as f64 || millis >= i64::MAX as f64 {
        return None;
    }
    #[allow(clippy::cast_possible_truncation)] // range checked above; the value is integral
    Some(millis as i64)
}

fn epoch_integer_to_millis(integer: i64, millis_configured: bool) -> Option<i64> {
    if millis_configured || integer.unsigned_abs() >= EPOCH_MILLIS_FROM.unsigned_abs() {
        Some(integer)
    } else {
        integer.checked_mul(1000)
    }
}

/// A timestamp from a JSON string: configured patterns first, then the defaults, then an epoch
/// number written as a string.
pub(crate) fn timestamp_from_text(text: &str, formats: &[TimestampFormat]) -> Option<i64> {
    for format in formats {
        if let TimestampFormat::Pattern(tokens) = format
            && let Some(millis) = parse_with_pattern(text, tokens)
        {
            return Some(millis);
        }
    }
    if let Some(millis) = parse_default_text(text) {
        return Some(millis);
    }
    let trimmed = text.trim();
    if trimmed.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        let integer: i64 = trimmed.parse().ok()?;
        return epoch_integer_to_millis(integer, formats.contains(&TimestampFormat::EpochMillis));
    }
    let number: f64 = trimmed.parse().ok()?;
    timestamp_from_number(&Number::from_f64(number)?, formats)
}

/// `yyyy-[M]M-[d]d`, as Hive's `Date.valueOf`. Days since the epoch.
pub(crate) fn date_from_text(text: &str) -> Option<i32> {
    let mut cursor = Cursor::new(text.trim());
    let date = cursor.date()?;
    if !cursor.is_done() {
        return None;
    }
    let days = date
        .signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1)?)
        .num_days();
    i32::try_from(days).ok()
}

/// The two default text forms: `yyyy-MM-dd'T'HH:mm:ss[.S]'Z'` and `yyyy-[M]M-[d]d HH:mm:ss[.S]`.
fn parse_default_text(text: &str) -> Option<i64> {
    let mut cursor = Cursor::new(text.trim());
    let date = cursor.date()?;
    let iso = match cursor.next_char()? {
        'T' => true,
        ' ' => false,
        _ => return None,
    };
    let hour = cursor.digits(1, 2)?;
    cursor.literal(":")?;
    let minute = cursor.digits(2, 2)?;
    cursor.literal(":")?;
    let second = cursor.digits(2, 2)?;
    let mut nanos = 0;
    if cursor.literal(".").is_some() {
        nanos = cursor.fraction_nanos()?;
    }
    if iso {
        cursor.literal("Z")?;
    }
    if !cursor.is_done() {
        return None;
    }
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    Some(NaiveDateTime::new(date, time).and_utc().timestamp_millis())
}

/// A Joda-Time pattern element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    Literal(String),
    /// `y`, `Y` (year of era, the same for positive years), `yy` is a two-digit year.
    Year(usize),
    /// `M`/`MM` numeric, `MMM`+ an English month name (short or long).
    Month(usize),
    Day(usize),
    DayOfYear(usize),
    /// `H` 0-23, `k` 1-24.
    Hour24 {
        width: usize,
        one_based: bool,
    },
    /// `h` 1-12, `K` 0-11; combined with `a`.
    Hour12 {
        width: usize,
        one_based: bool,
    },
    Minute(usize),
    Second(usize),
    Fraction(usize),
    HalfDay,
    /// `E`: an English weekday name, checked for shape only and otherwise ignored.
    DayOfWeek,
    /// `Z`/`ZZ`: `Z`, `+hh`, `+hhmm` or `+hh:mm`.
    Offset,
}

impl Token {
    fn is_numeric(&self) -> bool {
        matches!(
            self,
            Token::Year(_)
                | Token::Day(_)
                | Token::DayOfYear(_)
                | Token::Hour24 { .. }
                | Token::Hour12 { .. }
                | Token::Minute(_)
                | Token::Second(_)
                | Token::Fraction(_)
        ) || matches!(self, Token::Month(width) if *width <= 2)
    }
}

fn compile_pattern(pattern: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut index = 0;
    while index < chars.len() {
        let letter = chars[index];
        if letter == '\'' {
            // Quoted literal; '' inside or outside quotes is one quote.
            let mut literal = String::new();
            index += 1;
            if chars.get(index) == Some(&'\'') {
                push_literal(&mut tokens, "'");
                index += 1;
                continue;
            }
            loop {
                match chars.get(index) {
                    None => return Err(format!("unterminated quote in pattern '{pattern}'")),
                    Some('\'') if chars.get(index + 1) == Some(&'\'') => {
                        literal.push('\'');
                        index += 2;
                    }
                    Some('\'') => {
                        index += 1;
                        break;
                    }
                    Some(other) => {
                        literal.push(*other);
                        index += 1;
                    }
                }
            }
            push_literal(&mut tokens, &literal);
            continue;
        }
        let width = chars[index..].iter().take_while(|c| **c == letter).count();
        index += width;
        let token = match letter {
            'y' | 'Y' => Token::Year(width),
            'M' => Token::Month(width),
            'd' => Token::Day(width),
            'D' => Token::DayOfYear(width),
            'H' => Token::Hour24 {
                width,
                one_based: false,
            },
            'k' => Token::Hour24 {
                width,
                one_based: true,
            },
            'h' => Token::Hour12 {
                width,
                one_based: true,
            },
            'K' => Token::Hour12 {
                width,
                one_based: false,
            },
            'm' => Token::Minute(width),
            's' => Token::Second(width),
            'S' => Token::Fraction(width),
            'a' => Token::HalfDay,
            'E' => Token::DayOfWeek,
            'Z' => Token::Offset,
            other if other.is_ascii_alphabetic() => {
                return Err(format!(
                    "unsupported pattern letter '{other}' in timestamp format '{pattern}'"
                ));
            }
            other => {
                push_literal(&mut tokens, &other.to_string().repeat(width));
                continue;
            }
        };
        tokens.push(token);
    }
    if tokens.is_empty() {
        return Err("empty timestamp format".to_owned());
    }
    Ok(tokens)
}

fn push_literal(tokens: &mut Vec<Token>, text: &str) {
    if let Some(Token::Literal(previous)) = tokens.last_mut() {
        previous.push_str(text);
    } else {
        tokens.push(Token::Literal(text.to_owned()));
    }
}

fn parse_with_pattern(text: &str, tokens: &[Token]) -> Option<i64> {
    let mut cursor = Cursor::new(text.trim());
    let mut year = 1970;
    let mut month = 1;
    let mut day = 1;
    let mut day_of_year = None;
    let mut hour = 0;
    let mut hour12 = None;
    let mut pm = None;
    let mut minute = 0;
    let mut second = 0;
    let mut nanos = 0;
    let mut offset_seconds = 0;
    for (index, token) in tokens.iter().enumerate() {
        // Joda reads exactly `width` digits when another number follows immediately
        // (`yyyyMMdd`), and otherwise any count.
        let adjacent = tokens.get(index + 1).is_some_and(Token::is_numeric);
        let digits = |cursor: &mut Cursor, width: usize, most: usize| {
            if adjacent {
                cursor.digits(width, width)
            } else {
                cursor.digits(1, most.max(width))
            }
        };
        match token {
            Token::Literal(literal) => cursor.literal(literal)?,
            Token::Year(2) => {
                let start = cursor.position;
                let value = i32::try_from(digits(&mut cursor, 2, YEAR_DIGITS_MAX)?).ok()?;
                year = if cursor.position - start == 2 {
                    if value < TWO_DIGIT_YEAR_PIVOT {
                        2000 + value
                    } else {
                        1900 + value
                    }
                } else {
                    value
                };
            }
            Token::Year(width) => {
                year = i32::try_from(digits(&mut cursor, *width, YEAR_DIGITS_MAX)?).ok()?;
            }
            Token::Month(width) if *width <= 2 => month = digits(&mut cursor, *width, 2)?,
            Token::Month(_) => month = cursor.month_name()?,
            Token::Day(width) => day = digits(&mut cursor, *width, 2)?,
            Token::DayOfYear(width) => day_of_year = Some(digits(&mut cursor, *width, 3)?),
            Token::Hour24 { width, one_based } => {
                let value = digits(&mut cursor, *width, 2)?;
                hour = if *one_based && value == 24 { 0 } else { value };
            }
            Token::Hour12 { width, one_based } => {
                let value = digits(&mut cursor, *width, 2)?;
                if (*one_based && !(1..=12).contains(&value)) || (!*one_based && value > 11) {
                    return None;
                }
                hour12 = Some(value % 12);
            }
            Token::Minute(width) => minute = digits(&mut cursor, *width, 2)?,
            Token::Second(width) => second = digits(&mut cursor, *width, 2)?,
            Token::Fraction(width) => {
                let start = cursor.position;
                let value = digits(&mut cursor, *width, FRACTION_DIGITS_MAX)?;
                let count = cursor.position - start;
                if count > FRACTION_DIGITS_MAX {
                    return None;
                }
                let count = u32::try_from(count).ok()?;
                nanos = value * 10u32.pow(u32::try_from(FRACTION_DIGITS_MAX).ok()? - count);
            }
            Token::HalfDay => pm = Some(cursor.half_day()?),
            Token::DayOfWeek => cursor.weekday_name()?,
            Token::Offset => offset_seconds = cursor.offset_seconds()?,
        }
    }
    if !cursor.is_done() {
        return None;
    }
    if let Some(value) = hour12 {
        hour = value + if pm == Some(true) { 12 } else { 0 };
    }
    let date = match day_of_year {
        Some(ordinal) => NaiveDate::from_yo_opt(year, ordinal)?,
        None => NaiveDate::from_ymd_opt(year, month, day)?,
    };
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    let local_millis = NaiveDateTime::new(date, time).and_utc().timestamp_millis();
    local_millis.checked_sub(i64::from(offset_seconds).checked_mul(1000)?)
}

const MONTH_NAMES: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const WEEKDAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

struct Cursor<'a> {
    text: &'a str,
    position: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Cursor { text, position: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.position..]
    }

    fn is_done(&self) -> bool {
        self.position == self.text.len()
    }

    fn next_char(&mut self) -> Option<char> {
        let next = self.rest().chars().next()?;
        self.position += next.len_utf8();
        Some(next)
    }

    fn literal(&mut self, expected: &str) -> Option<()> {
        if self.rest().starts_with(expected) {
            self.position += expected.len();
            Some(())
        } else {
            None
        }
    }

    /// `least..=most` ASCII digits as a number.
    fn digits(&mut self, least: usize, most: usize) -> Option<u32> {
        let count = self
            .rest()
            .bytes()
            .take(most)
            .take_while(u8::is_ascii_digit)
            .count();
        if count < least {
            return None;
        }
        let value = self.rest()[..count].parse().ok()?;
        self.position += count;
        Some(value)
    }

    /// 1 to 9 digits read as a decimal fraction of a second, in nanoseconds.
    fn fraction_nanos(&mut self) -> Option<u32> {
        let start = self.position;
        let value = self.digits(1, FRACTION_DIGITS_MAX)?;
        if self.rest().starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        let count = u32::try_from(self.position - start).ok()?;
        Some(value * 10u32.pow(9 - count))
    }

    /// `yyyy-[M]M-[d]d`.
    fn date(&mut self) -> Option<NaiveDate> {
        let year = i32::try_from(self.digits(4, 4)?).ok()?;
        self.literal("-")?;
        let month = self.digits(1, 2)?;
        self.literal("-")?;
        let day = self.digits(1, 2)?;
        NaiveDate::from_ymd_opt(year, month, day)
    }

    /// A month name, long or three-letter, any case. 1-based.
    fn month_name(&mut self) -> Option<u32> {
        let (index, length) = self.name_from(&MONTH_NAMES)?;
        self.position += length;
        u32::try_from(index + 1).ok()
    }

    fn weekday_name(&mut self) -> Option<()> {
        let (_, length) = self.name_from(&WEEKDAY_NAMES)?;
        self.position += length;
        Some(())
    }

    /// The index and matched byte length of the first name (full, else its first three letters)
    /// the rest starts with, ignoring ASCII case.
    fn name_from(&self, names: &[&str]) -> Option<(usize, usize)> {
        let rest = self.rest().as_bytes();
        let starts_with = |prefix: &str| {
            rest.len() >= prefix.len()
                && rest[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
        };
        names.iter().enumerate().find_map(|(index, name)| {
            if starts_with(name) {
                Some((index, name.len()))
            } else if starts_with(&name[..3]) {
                Some((index, 3))
            } else {
                None
            }
        })
    }

    /// `AM`/`PM`, any case; true for PM.
    fn half_day(&mut self) -> Option<bool> {
        let rest = self.rest().as_bytes();
        if rest.len() < 2 {
            return None;
        }
        let pm = match rest[..2].to_ascii_uppercase().as_slice() {
            b"AM" => false,
            b"PM" => true,
            _ => return None,
        };
        self.position += 2;
        Some(pm)
    }

    /// `Z`, `+hh`, `+hhmm` or `+hh:mm` (and `-`), in seconds east of UTC.
    fn offset_seconds(&mut self) -> Option<i32> {
        if self.literal("Z").is_some() {
            return Some(0);
        }
        let sign = match self.next_char()? {
            '+' => 1,
            '-' => -1,
            _ => return None,
        };
        let hours = self.digits(2, 2)?;
        let _ = self.literal(":");
        let minutes = if self.rest().starts_with(|c: char| c.is_ascii_digit()) {
            self.digits(2, 2)?
        } else {
            0
        };
        if hours > 23 || minutes > 59 {
            return None;
        }
        Some(sign * i32::try_from(hours * 3600 + minutes * 60).ok()?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// 2018-02-07T19:58:48.123Z
    const INSTANT_MILLIS: i64 = 1_518_033_528_123;

    impl TimestampFormat {
        fn parse_text(&self, text: &str) -> Option<i64> {
            timestamp_from_text(text, std::slice::from_ref(self))
        }
    }

    fn defaults(text: &str) -> Option<i64> {
        timestamp_from_text(text, &[])
    }

    #[test]
    fn default_text_forms_parse_as_utc() {
        assert_eq!(defaults("2018-02-07T19:58:48.123Z"), Some(INSTANT_MILLIS));
        assert_eq!(defaults("2018-02-07T19:58:48Z"), Some(INSTANT_MILLIS - 123));
        assert_eq!(defaults("2018-02-07 19:58:48.123"), Some(INSTANT_MILLIS));
        assert_eq!(defaults("2018-2-7 19:58:48.1"), Some(INSTANT_MILLIS - 23));
        // Nanosecond digits are accepted and truncated to the millisecond.
        assert_eq!(
            defaults("2018-02-07 19:58:48.123999999"),
            Some(INSTANT_MILLIS)
        );
        assert_eq!(defaults("2018-02-07 19:58:48"), Some(INSTANT_MILLIS - 123));
    }

    #[test]
    fn malformed_text_is_rejected() {
        for text in [
            "",
            "yesterday",
            "2018-02-07",
            "2018-02-07T19:58:48",
            "2018-13-07 19:58:48",
            "2018-02-30 19:58:48",
            "2018-02-07 25:58:48",
            "2018-02-07 19:58:48.",
            "2018-02-07 19:58:48.1234567890",
            "2018-02-07T19:58:48.123Zjunk",
        ] {
            assert_eq!(defaults(text), None, "{text:?}");
        }
    }

    #[test]
    fn epoch_numbers_are_seconds_or_millis_by_magnitude() {
        let number = |text: &str| serde_json::from_str::<Number>(text).unwrap();
        assert_eq!(
            timestamp_from_number(&number("1518033528"), &[]),
            Some(INSTANT_MILLIS - 123)
        );
        assert_eq!(
            timestamp_from_number(&number("1518033528123"), &[]),
            Some(INSTANT_MILLIS)
        );
        assert_eq!(
            timestamp_from_number(&number("1518033528.123"), &[]),
            Some(INSTANT_MILLIS)
        );
        assert_eq!(
            timestamp_from_number(&number("-86400"), &[]),
            Some(-86_400_000)
        );
        assert_eq!(
            timestamp_from_number(&number("18446744073709551615"), &[]),
            None
        );
        assert_eq!(timestamp_from_number(&number("1e300"), &[]), None);
        // The threshold itself is milliseconds.
        assert_eq!(
            timestamp_from_number(&number("100000000000"), &[]),
            Some(EPOCH_MILLIS_FROM)
        );
        assert_eq!(
            timestamp_from_number(&number("99999999999"), &[]),
            Some(99_999_999_999_000)
        );
        // Numbers in strings too.
        assert_eq!(defaults("1518033528"), Some(INSTANT_MILLIS - 123));
        assert_eq!(defaults("1518033528.123"), Some(INSTANT_MILLIS));
    }

    #[test]
    fn millis_format_makes_every_integer_milliseconds() {
        let millis = [TimestampFormat::compile("millis").unwrap()];
        let number = serde_json::from_str::<Number>("1518033528").unwrap();
        assert_eq!(timestamp_from_number(&number, &millis), Some(1_518_033_528));
        assert_eq!(
            timestamp_from_text("1518033528", &millis),
            Some(1_518_033_528)
        );
    }

    #[test]
    fn joda_patterns_cover_the_common_letters() {
        let cases = [
            (
                "yyyy-MM-dd'T'HH:mm:ss.SSSZ",
                "2018-02-07T21:58:48.123+0200",
                INSTANT_MILLIS,
            ),
            (
                "yyyy-MM-dd'T'HH:mm:ss.SSSZZ",
                "2018-02-07T14:58:48.123-05:00",
                INSTANT_MILLIS,
            ),
            (
                "yyyy-MM-dd'T'HH:mm:ssZ",
                "2018-02-07T19:58:48Z",
                INSTANT_MILLIS - 123,
            ),
            (
                "dd/MM/yyyy HH:mm:ss",
                "07/02/2018 19:58:48",
                INSTANT_MILLIS - 123,
            ),
            ("yyyyMMddHHmmssSSS", "20180207195848123", INSTANT_MILLIS),
            (
                "MMM d, yyyy h:mm:ss a",
                "Feb 7, 2018 7:58:48 PM",
                INSTANT_MILLIS - 123,
            ),
            (
                "EEE, dd MMMM yyyy hh:mm:ss.S a",
                "Wed, 07 February 2018 07:58:48.1 pm",
                INSTANT_MILLIS - 23,
            ),
            (
                "yy-MM-dd kk:mm:ss",
                "18-02-07 19:58:48",
                INSTANT_MILLIS - 123,
            ),
            (
                "yyyy.DDD HH:mm:ss",
                "2018.038 19:58:48",
                INSTANT_MILLIS - 123,
            ),
            ("''yyyy-MM-dd''", "'2018-02-07'", 1_517_961_600_000),
        ];
        for (pattern, text, expected) in cases {
            let format = TimestampFormat::compile(pattern).unwrap();
            assert_eq!(
                format.parse_text(text),
                Some(expected),
                "{pattern} / {text}"
            );
        }
        let twelve = TimestampFormat::compile("hh:mm a").unwrap();
        assert_eq!(twelve.parse_text("12:00 AM"), Some(0));
        assert_eq!(twelve.parse_text("12:30 PM"), Some(45_000_000));
        assert_eq!(twelve.parse_text("13:00 PM"), None);
    }

    #[test]
    fn patterns_fall_back_to_the_defaults() {
        let format = [TimestampFormat::compile("dd/MM/yyyy").unwrap()];
        assert_eq!(
            timestamp_from_text("07/02/2018", &format),
            Some(1_517_961_600_000)
        );
        assert_eq!(
            timestamp_from_text("2018-02-07T19:58:48.123Z", &format),
            Some(INSTANT_MILLIS)
        );
        assert_eq!(timestamp_from_text("07/02/2018 junk", &format), None);
    }

    #[test]
    fn unsupported_pattern_letters_are_rejected() {
        for pattern in ["", "yyyy-ww", "G yyyy", "'unterminated"] {
            assert!(TimestampFormat::compile(pattern).is_err(), "{pattern:?}");
        }
    }

    #[test]
    fn dates_are_days_since_the_epoch() {
        assert_eq!(date_from_text("1970-01-01"), Some(0));
        assert_eq!(date_from_text("2018-2-7"), Some(17_569));
        assert_eq!(date_from_text("1969-12-31"), Some(-1));
        assert_eq!(date_from_text("2018-02-30"), None);
        assert_eq!(date_from_text("2018-02-07 10:00:00"), None);
    }
}
