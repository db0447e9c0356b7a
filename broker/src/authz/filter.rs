//! Topic-filter algebra for ACL rules, on filters split into levels.
//!
//! A topic name is a filter without wildcards, so [`covers`] is also plain
//! MQTT matching of a topic. Both functions apply the `$` rule
//! ([MQTT-4.7.2-1]): a filter whose first level is a wildcard matches no topic
//! that starts with `$`, so it neither covers nor overlaps a `$` filter.

/// Whether `rule` matches every topic `requested` can match.
///
/// `a/#` covers `a/+/b` and `a`; `a/+` does not cover `a/#` (which also
/// matches `a/x/y`); `+/x` does not cover `$SYS/x`.
pub fn covers<R: AsRef<str>, Q: AsRef<str>>(rule: &[R], requested: &[Q]) -> bool {
    if let (Some(r), Some(q)) = (rule.first(), requested.first())
        && q.as_ref().starts_with('$')
        && is_wildcard(r.as_ref())
    {
        return false;
    }
    let mut i = 0;
    loop {
        match (rule.get(i).map(|l| l.as_ref()), requested.get(i).map(|l| l.as_ref())) {
            // `#` also matches the parent level, so it covers whatever is left, even nothing.
            (Some("#"), _) => return true,
            (None, None) => return true,
            // The request reaches any depth here and the rule does not.
            (_, Some("#")) => return false,
            (Some("+"), Some(_)) => {}
            // A literal level covers only itself (not a `+`, which matches every level).
            (Some(r), Some(q)) if r == q && q != "+" => {}
            _ => return false,
        }
        i += 1;
    }
}

/// Whether some topic is matched by both filters.
///
/// `a/#` overlaps `a` and `+/b`; `a/+` does not overlap `a`; `#` does not
/// overlap `$SYS/x`.
pub fn overlaps<A: AsRef<str>, B: AsRef<str>>(a: &[A], b: &[B]) -> bool {
    if let (Some(x), Some(y)) = (a.first(), b.first()) {
        let (x, y) = (x.as_ref(), y.as_ref());
        if (x.starts_with('$') && is_wildcard(y)) || (y.starts_with('$') && is_wildcard(x)) {
            return false;
        }
    }
    let mut i = 0;
    loop {
        match (a.get(i).map(|l| l.as_ref()), b.get(i).map(|l| l.as_ref())) {
            (Some("#"), _) | (_, Some("#")) => return true,
            (None, None) => return true,
            (Some("+"), Some(_)) | (Some(_), Some("+")) => {}
            (Some(x), Some(y)) if x == y => {}
            _ => return false,
        }
        i += 1;
    }
}

fn is_wildcard(level: &str) -> bool {
    level == "+" || level == "#"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels(filter: &str) -> Vec<&str> {
        filter.split('/').collect()
    }

    fn check_covers(rule: &str, requested: &str, expected: bool) {
        assert_eq!(covers(&levels(rule), &levels(requested)), expected, "{rule:?} covers {requested:?}");
    }

    fn check_overlaps(a: &str, b: &str, expected: bool) {
        assert_eq!(overlaps(&levels(a), &levels(b)), expected, "{a:?} overlaps {b:?}");
        assert_eq!(overlaps(&levels(b), &levels(a)), expected, "{b:?} overlaps {a:?}");
    }

    #[test]
    fn a_topic_is_covered_as_mqtt_matching_says() {
        check_covers("a/b", "a/b", true);
        check_covers("a/+", "a/b", true);
        check_covers("a/+", "a/b/c", false);
        check_covers("a/+", "a", false);
        check_covers("a/#", "a", true);
        check_covers("a/#", "a/b/c", true);
        check_covers("#", "a/b", true);
        check_covers("+/+", "a/", true);
        check_covers("a/b", "a/c", false);
    }

    #[test]
    fn wildcards_do_not_cover_dollar_topics() {
        check_covers("#", "$SYS/x", false);
        check_covers("+/x", "$SYS/x", false);
        check_covers("$SYS/#", "$SYS/x", true);
        check_covers("$SYS/+", "$SYS/+", true);
    }

    #[test]
    fn a_rule_covers_a_filter_only_when_it_matches_everything_the_filter_does() {
        check_covers("a/#", "a/+/b", true);
        check_covers("a/#", "a/#", true);
        check_covers("#", "+/#", true);
        check_covers("a/+", "a/+", true);
        check_covers("a/+/c", "a/+/c", true);
        check_covers("a/+", "a/#", false);
        check_covers("a/b", "a/+", false);
        check_covers("a/b/#", "a/#", false);
        check_covers("a/+/#", "a/#", false);
        check_covers("+", "#", false);
    }

    #[test]
    fn a_wildcard_first_level_filter_is_covered_by_wildcards_without_the_dollar_rule_in_the_way() {
        check_covers("#", "#", true);
        check_covers("+/b", "+/b", true);
    }

    #[test]
    fn overlap_means_a_common_topic() {
        check_overlaps("a/#", "a", true);
        check_overlaps("a/#", "+/b", true);
        check_overlaps("a/+", "+/b", true);
        check_overlaps("secret/#", "#", true);
        check_overlaps("secret/#", "+/x", true);
        check_overlaps("a/+", "a", false);
        check_overlaps("a/+", "a/b/c", false);
        check_overlaps("a/b", "a/c", false);
        check_overlaps("a/b/#", "a/c/#", false);
    }

    #[test]
    fn dollar_filters_overlap_only_filters_that_name_their_first_level() {
        check_overlaps("#", "$SYS/#", false);
        check_overlaps("+/x", "$SYS/x", false);
        check_overlaps("$SYS/#", "$SYS/+", true);
        check_overlaps("#", "+/x", true);
    }
}
