//! Topic names and topic filters. (Skeleton.)

use crate::error::Violation;

/// Checks a topic name of a PUBLISH or will: at least one character, no `+` or `#`.
pub fn validate_topic_name(topic: &str) -> Result<(), Violation> {
    let _ = topic;
    unimplemented!()
}

/// Checks a topic filter: at least one character; `#` only as the whole last
/// level; `+` only as a whole level. A `$share/{group}/{filter}` filter also
/// needs a non-empty group without `/`, `+`, `#` and a valid filter.
pub fn validate_topic_filter(filter: &str) -> Result<(), Violation> {
    let _ = filter;
    unimplemented!()
}

/// Splits `$share/{group}/{filter}` into (group, filter); `None` for other filters.
pub fn parse_shared(filter: &str) -> Option<(&str, &str)> {
    let _ = filter;
    unimplemented!()
}

/// True if `topic` matches `filter`. Topics starting with `$` are not matched
/// by a filter whose first level is a wildcard ([MQTT-4.7.2-1]).
pub fn matches(filter: &str, topic: &str) -> bool {
    let _ = (filter, topic);
    unimplemented!()
}

/// True if the filter contains `+` or `#`.
pub fn has_wildcard(filter: &str) -> bool {
    filter.bytes().any(|b| b == b'+' || b == b'#')
}
