//! Topic names and topic filters (section 4.7; shared subscriptions 4.8.2 of 5.0).
//!
//! Statement ids follow MQTT 3.1.1 numbering for section 4.7 (the rules are
//! the same in 5.0) and 5.0 numbering for shared subscriptions.

use crate::error::Violation;

const MAX_LEN: usize = u16::MAX as usize;
const SHARE_PREFIX: &str = "$share/";

/// The checks every topic name and filter shares: length and U+0000.
fn check_common(s: &str, what: &'static str) -> Result<(), Violation> {
    if s.is_empty() {
        return Err(Violation::protocol("MQTT-4.7.3-1", what));
    }
    if s.len() > MAX_LEN {
        return Err(Violation::malformed("MQTT-4.7.3-3", "topic longer than 65,535 bytes"));
    }
    if s.contains('\0') {
        return Err(Violation::malformed("MQTT-4.7.3-2", "topic contains U+0000"));
    }
    Ok(())
}

/// Checks a topic name of a PUBLISH or will: at least one character, no `+` or `#`.
pub fn validate_topic_name(topic: &str) -> Result<(), Violation> {
    check_common(topic, "empty topic name")?;
    if has_wildcard(topic) {
        return Err(Violation::malformed("MQTT-4.7.1-1", "topic name contains a wildcard"));
    }
    Ok(())
}

/// Checks a topic filter: at least one character; `#` only as the whole last
/// level; `+` only as a whole level. A `$share/{group}/{filter}` filter also
/// needs a non-empty group without `/`, `+`, `#` and a valid filter.
pub fn validate_topic_filter(filter: &str) -> Result<(), Violation> {
    check_common(filter, "empty topic filter")?;
    let Some(rest) = filter.strip_prefix(SHARE_PREFIX) else {
        return check_levels(filter);
    };
    let Some((group, inner)) = rest.split_once('/') else {
        return Err(if rest.is_empty() {
            Violation::protocol("MQTT-4.8.2-1", "shared subscription without share name")
        } else {
            Violation::protocol("MQTT-4.8.2-2", "shared subscription without topic filter")
        });
    };
    if group.is_empty() {
        return Err(Violation::protocol("MQTT-4.8.2-1", "shared subscription without share name"));
    }
    if has_wildcard(group) {
        return Err(Violation::protocol("MQTT-4.8.2-2", "share name contains a wildcard"));
    }
    if inner.is_empty() {
        return Err(Violation::protocol("MQTT-4.8.2-2", "shared subscription without topic filter"));
    }
    check_levels(inner)
}

fn check_levels(filter: &str) -> Result<(), Violation> {
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        match level {
            "#" if levels.peek().is_some() => {
                return Err(Violation::malformed("MQTT-4.7.1-2", "'#' is not the last level"));
            }
            "#" | "+" => {}
            _ if level.contains('#') => {
                return Err(Violation::malformed("MQTT-4.7.1-2", "'#' does not occupy a whole level"));
            }
            _ if level.contains('+') => {
                return Err(Violation::malformed("MQTT-4.7.1-3", "'+' does not occupy a whole level"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Splits `$share/{group}/{filter}` into (group, filter); `None` for other filters.
pub fn parse_shared(filter: &str) -> Option<(&str, &str)> {
    filter.strip_prefix(SHARE_PREFIX)?.split_once('/')
}

/// True if `topic` matches `filter`. Topics starting with `$` are not matched
/// by a filter whose first level is a wildcard ([MQTT-4.7.2-1]).
///
/// The filter is taken literally: strip a `$share/{group}/` prefix with
/// [`parse_shared`] first.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut filter_levels = filter.split('/');
    let mut topic_levels = topic.split('/');
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            // `#` also matches the parent level: `sport/#` matches `sport`.
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(f), Some(t)) if f == t => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// True if the filter contains `+` or `#`.
pub fn has_wildcard(filter: &str) -> bool {
    filter.bytes().any(|b| b == b'+' || b == b'#')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::reason::ReasonCode;

    fn check_filter(filter: &str, expected: Result<(), (&str, ReasonCode)>) {
        let got = validate_topic_filter(filter).map_err(|v| (v.statement, v.reason));
        assert_eq!(got, expected, "filter {filter:?}");
    }

    fn check_name(topic: &str, expected: Result<(), (&str, ReasonCode)>) {
        let got = validate_topic_name(topic).map_err(|v| (v.statement, v.reason));
        assert_eq!(got, expected, "topic {topic:?}");
    }

    fn check_match(filter: &str, topic: &str, expected: bool) {
        assert_eq!(matches(filter, topic), expected, "filter {filter:?} topic {topic:?}");
    }

    const MALFORMED: ReasonCode = ReasonCode::MALFORMED_PACKET;
    const PROTOCOL: ReasonCode = ReasonCode::PROTOCOL_ERROR;

    #[test]
    fn plain_names_are_valid() {
        check_name("a", Ok(()));
        check_name("sport/tennis/player1", Ok(()));
        check_name("/", Ok(()));
        check_name("$SYS/broker", Ok(()));
        check_name(" ", Ok(()));
    }

    #[test]
    fn empty_name_is_rejected() {
        check_name("", Err(("MQTT-4.7.3-1", PROTOCOL)));
    }

    #[test]
    fn wildcards_in_names_are_rejected() {
        check_name("a/+", Err(("MQTT-4.7.1-1", MALFORMED)));
        check_name("#", Err(("MQTT-4.7.1-1", MALFORMED)));
        check_name("a#b", Err(("MQTT-4.7.1-1", MALFORMED)));
    }

    #[test]
    fn null_character_is_rejected() {
        check_name("a\0b", Err(("MQTT-4.7.3-2", MALFORMED)));
        check_filter("a\0", Err(("MQTT-4.7.3-2", MALFORMED)));
    }

    #[test]
    fn over_long_topics_are_rejected() {
        let long = "a".repeat(MAX_LEN + 1);
        check_name(&long, Err(("MQTT-4.7.3-3", MALFORMED)));
        check_filter(&long, Err(("MQTT-4.7.3-3", MALFORMED)));
        check_name(&long[1..], Ok(()));
    }

    #[test]
    fn well_placed_wildcards_are_valid() {
        for filter in ["#", "+", "+/+", "sport/#", "sport/+/player1", "/+", "+/", "a//#", "$SYS/#"] {
            check_filter(filter, Ok(()));
        }
    }

    #[test]
    fn empty_filter_is_rejected() {
        check_filter("", Err(("MQTT-4.7.3-1", PROTOCOL)));
    }

    #[test]
    fn hash_must_be_last_and_whole() {
        check_filter("sport/#/ranking", Err(("MQTT-4.7.1-2", MALFORMED)));
        check_filter("sport#", Err(("MQTT-4.7.1-2", MALFORMED)));
        check_filter("#/", Err(("MQTT-4.7.1-2", MALFORMED)));
    }

    #[test]
    fn plus_must_be_whole_level() {
        check_filter("sport+", Err(("MQTT-4.7.1-3", MALFORMED)));
        check_filter("sport/+tennis", Err(("MQTT-4.7.1-3", MALFORMED)));
    }

    #[test]
    fn shared_filters_are_valid() {
        check_filter("$share/group/sport/#", Ok(()));
        check_filter("$share/g/+", Ok(()));
        check_filter("$share/g//", Ok(()));
        check_filter("$share", Ok(()));
        check_filter("$shared/x", Ok(()));
    }

    #[test]
    fn share_name_must_not_be_empty() {
        check_filter("$share//a", Err(("MQTT-4.8.2-1", PROTOCOL)));
        check_filter("$share/", Err(("MQTT-4.8.2-1", PROTOCOL)));
    }

    #[test]
    fn share_name_must_not_hold_wildcards() {
        check_filter("$share/g+/a", Err(("MQTT-4.8.2-2", PROTOCOL)));
        check_filter("$share/#/a", Err(("MQTT-4.8.2-2", PROTOCOL)));
    }

    #[test]
    fn shared_filter_needs_a_filter() {
        check_filter("$share/group", Err(("MQTT-4.8.2-2", PROTOCOL)));
        check_filter("$share/group/", Err(("MQTT-4.8.2-2", PROTOCOL)));
    }

    #[test]
    fn shared_inner_filter_is_checked() {
        check_filter("$share/g/a#", Err(("MQTT-4.7.1-2", MALFORMED)));
        check_filter("$share/g/#/a", Err(("MQTT-4.7.1-2", MALFORMED)));
    }

    #[test]
    fn parse_shared_splits_group_and_filter() {
        assert_eq!(parse_shared("$share/g/a/b"), Some(("g", "a/b")));
        assert_eq!(parse_shared("$share/g/#"), Some(("g", "#")));
        assert_eq!(parse_shared("$share/g"), None);
        assert_eq!(parse_shared("a/b"), None);
        assert_eq!(parse_shared("$SHARE/g/a"), None);
    }

    #[test]
    fn has_wildcard_finds_plus_and_hash() {
        assert!(has_wildcard("a/+"));
        assert!(has_wildcard("#"));
        assert!(!has_wildcard("a/b"));
    }

    #[test]
    fn exact_filter_matches() {
        check_match("sport/tennis", "sport/tennis", true);
        check_match("sport/tennis", "sport/tennis/player1", false);
        check_match("sport/tennis", "sport", false);
        check_match("Sport", "sport", false);
    }

    #[test]
    fn hash_matches_all_remaining_levels() {
        check_match("sport/tennis/player1/#", "sport/tennis/player1", true);
        check_match("sport/tennis/player1/#", "sport/tennis/player1/ranking", true);
        check_match("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true);
        check_match("sport/#", "sport", true);
        check_match("#", "sport/tennis", true);
        check_match("#", "/", true);
        check_match("sport/#", "sports", false);
    }

    #[test]
    fn plus_matches_one_level() {
        check_match("sport/tennis/+", "sport/tennis/player1", true);
        check_match("sport/tennis/+", "sport/tennis/player1/ranking", false);
        check_match("sport/+", "sport", false);
        check_match("sport/+", "sport/", true);
        check_match("+/+", "/finance", true);
        check_match("/+", "/finance", true);
        check_match("+", "/finance", false);
        check_match("+/tennis/#", "sport/tennis/player1", true);
    }

    #[test]
    fn plus_matches_an_empty_level() {
        check_match("a/+/b", "a//b", true);
        check_match("+", "", true);
    }

    #[test]
    fn wildcards_do_not_match_dollar_topics() {
        check_match("#", "$SYS/broker/uptime", false);
        check_match("+/monitor/Clients", "$SYS/monitor/Clients", false);
        check_match("+", "$SYS", false);
        check_match("$SYS/#", "$SYS/broker/uptime", true);
        check_match("$SYS/monitor/+", "$SYS/monitor/Clients", true);
        check_match("a/#", "a/$b", true);
    }
}
