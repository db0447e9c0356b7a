//! How numbers, sizes, dates and text appear in the report.

use std::time::{Duration, SystemTime};

/// Shown where a figure does not apply or was not measured.
pub const NONE: &str = "—";

/// `1234567` -> `1,234,567`.
pub fn int(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate or count that may be fractional: whole and thousands-separated from
/// 100 up, one decimal below.
pub fn rate(r: f64) -> String {
    if !r.is_finite() {
        NONE.to_string()
    } else if r >= 99.95 {
        int(r.round() as u64)
    } else {
        format!("{r:.1}")
    }
}

/// Microseconds as milliseconds with two decimals.
pub fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

/// `achieved` as a percentage of `target`, or nothing when there is no target.
pub fn percent_of(achieved: f64, target: f64) -> Option<String> {
    (target > 0.0 && achieved.is_finite()).then(|| format!("{:.1}%", 100.0 * achieved / target))
}

/// Bytes in binary units: `512 B`, `1.8 KiB`, `12.3 MiB`, `1.20 GiB`.
pub fn bytes(b: f64) -> String {
    const KIB: f64 = 1024.0;
    if !b.is_finite() {
        NONE.to_string()
    } else if b < KIB {
        format!("{b:.0} B")
    } else if b < KIB * KIB {
        format!("{:.1} KiB", b / KIB)
    } else if b < KIB * KIB * KIB {
        format!("{:.1} MiB", b / (KIB * KIB))
    } else {
        format!("{:.2} GiB", b / (KIB * KIB * KIB))
    }
}

/// A short axis label: `0`, `0.25`, `12`, `1.5k`, `20k`, `1.2M`.
pub fn si(v: f64) -> String {
    let (scaled, suffix) = match v.abs() {
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let text = format!("{scaled:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{suffix}")
}

/// Seconds since the Unix epoch as `2026-03-21 12:34:56 UTC`.
pub fn date(unix_s: f64) -> String {
    // humantime formats years 1970..=9999 only (and panics through `Display` after).
    const YEAR_10000_S: f64 = 253_402_300_800.0;
    if !(0.0..YEAR_10000_S).contains(&unix_s) {
        return format!("unknown ({unix_s})");
    }
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(unix_s as u64);
    humantime::format_rfc3339_seconds(at).to_string().replace('T', " ").replace('Z', " UTC")
}

/// The arguments as one shell line, quoting those that need it.
pub fn command_line(args: &[String]) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./:=,@%+".contains(c);
    let quoted: Vec<String> =
        args.iter()
            .map(|a| {
                if !a.is_empty() && a.chars().all(safe) { a.clone() } else { format!("'{}'", a.replace('\'', r"'\''")) }
            })
            .collect();
    quoted.join(" ")
}

/// Text safe inside a Markdown table cell: pipes escaped, one line.
pub fn cell(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.replace('|', r"\|")
}

/// A file name for a Markdown link target (spaces break the link syntax).
pub fn link(path: &str) -> String {
    path.replace(' ', "%20")
}

/// The label of a position on the "nines" axis, where x = -log10(1 - q):
/// 0 -> `0%`, 0.301 -> `50%`, 1 -> `90%`, 2 -> `99%`, 3 -> `99.9%`.
pub fn nines(x: f64) -> String {
    let percent = 100.0 * (1.0 - 10f64.powf(-x));
    let decimals = (x - 1e-6).ceil().max(2.0) as usize - 2;
    format!("{percent:.decimals$}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(int(0), "0");
        assert_eq!(int(999), "999");
        assert_eq!(int(1_000), "1,000");
        assert_eq!(int(1_234_567), "1,234,567");
        assert_eq!(rate(12.34), "12.3");
        assert_eq!(rate(9_999.6), "10,000");
        assert_eq!(rate(f64::NAN), NONE);
        assert_eq!(ms(1_234), "1.23");
        assert_eq!(ms(5), "0.01");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(1_843.0), "1.8 KiB");
        assert_eq!(bytes(3.0 * 1024.0 * 1024.0 * 1024.0), "3.00 GiB");
        assert_eq!(si(0.0), "0");
        assert_eq!(si(0.25), "0.25");
        assert_eq!(si(1_500.0), "1.5k");
        assert_eq!(si(2_000_000.0), "2M");
        assert_eq!(percent_of(50.0, 0.0), None);
        assert_eq!(percent_of(99.0, 100.0).as_deref(), Some("99.0%"));
    }

    #[test]
    fn dates_are_utc_and_out_of_range_dates_do_not_panic() {
        assert_eq!(date(1_700_000_000.5), "2023-11-14 22:13:20 UTC");
        assert!(date(-1.0).starts_with("unknown"));
        assert!(date(1e300).starts_with("unknown"));
        assert!(date(f64::NAN).starts_with("unknown"));
    }

    #[test]
    fn command_lines_quote_what_the_shell_would_split() {
        let args = ["loadgen", "pub", "-t", "a b", "--title", "it's"].map(String::from);
        assert_eq!(command_line(&args), r"loadgen pub -t 'a b' --title 'it'\''s'");
    }

    #[test]
    fn table_cells_escape_pipes_and_newlines() {
        assert_eq!(cell("a|b\nc"), r"a\|b c");
    }

    #[test]
    fn the_nines_axis_is_labelled_in_percentiles() {
        assert_eq!(nines(0.0), "0%");
        assert_eq!(nines(2f64.log10()), "50%");
        assert_eq!(nines(1.0), "90%");
        assert_eq!(nines(2.0), "99%");
        assert_eq!(nines(3.0), "99.9%");
        assert_eq!(nines(5.0), "99.999%");
    }
}
