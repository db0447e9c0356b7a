use super::*;

fn rules(text: &str) -> Vec<Rule> {
    match parse(text) {
        Ok(set) => set.rules,
        Err((line, e)) => panic!("{text:?}: line {line}: {e}"),
    }
}

fn one(text: &str) -> Rule {
    let mut all = rules(text);
    assert_eq!(all.len(), 1, "{text:?}");
    all.remove(0)
}

/// The error of `text`: its line and a piece of its message.
fn check_error(text: &str, line: usize, needle: &str) {
    match parse(text) {
        Ok(set) => panic!("{text:?} parsed to {set:?}"),
        Err((l, message)) => {
            assert_eq!(l, line, "{text:?}: {message}");
            assert!(message.contains(needle), "{text:?}: {message:?} lacks {needle:?}");
        }
    }
}

fn exact(levels: &[&str]) -> RuleTopic {
    RuleTopic::Filter(levels.iter().map(|l| Box::from(*l)).collect())
}

#[test]
fn empty_text_comments_and_blank_lines_are_no_rules() {
    assert!(rules("").is_empty());
    assert!(rules("\n   \n# allow all all #\n\t# indented comment\n").is_empty());
}

#[test]
fn every_subject_form_parses() {
    assert_eq!(one("allow all publish a").who, Who::All);
    assert_eq!(one("allow user:alice publish a").who, Who::User("alice".into()));
    assert_eq!(one("allow client:dev-1 publish a").who, Who::Client("dev-1".into()));
    assert_eq!(one("allow ip:10.0.0.0/8 publish a").who, Who::Ip(Cidr::parse("10.0.0.0/8").expect("a block")));
    assert!(matches!(one("allow ip:fd00::/8 publish a").who, Who::Ip(_)));
    assert!(matches!(one("allow ip:127.0.0.1 publish a").who, Who::Ip(_)));
    assert_eq!(one("allow \"user:a b\" publish a").who, Who::User("a b".into()));
}

#[test]
fn every_action_and_verdict_parses() {
    let rule = one("allow all publish a");
    assert!(rule.permit);
    assert_eq!(rule.actions, Actions::Publish);
    let rule = one("deny all subscribe a");
    assert!(!rule.permit);
    assert_eq!(rule.actions, Actions::Subscribe);
    assert_eq!(one("allow all all a").actions, Actions::All);
}

#[test]
fn topics_are_filters_eq_literals_and_templates() {
    let rule = one("allow all all a/+/b # eq # \"with space/x\" dev/${clientid}/# u/${username}-in");
    assert_eq!(
        rule.topics,
        vec![
            exact(&["a", "+", "b"]),
            exact(&["#"]),
            RuleTopic::Eq("#".into()),
            exact(&["with space", "x"]),
            RuleTopic::Template(vec![
                Level::Exact("dev".into()),
                Level::Template(vec![Part::ClientId]),
                Level::Exact("#".into())
            ]),
            RuleTopic::Template(vec![
                Level::Exact("u".into()),
                Level::Template(vec![Part::Username, Part::Text("-in".into())])
            ]),
        ]
    );
    assert_eq!(rule.line, 1);
}

#[test]
fn a_quoted_eq_is_a_filter_not_the_keyword() {
    assert_eq!(one("allow all publish \"eq\"").topics, vec![exact(&["eq"])]);
}

#[test]
fn quoted_tokens_unescape() {
    assert_eq!(one(r#"allow all publish "a \"q\" \\ b""#).topics, vec![exact(&[r#"a "q" \ b"#])]);
}

#[test]
fn rules_keep_their_order_and_lines() {
    let all = rules("# head\nallow user:a publish x\n\ndeny all all #\n");
    assert_eq!(all.iter().map(|r| (r.permit, r.line)).collect::<Vec<_>>(), vec![(true, 2), (false, 4)]);
}

#[test]
fn malformed_lines_are_refused_with_their_line_number() {
    check_error("allow all publish a\npermit all publish a", 2, "allow or deny");
    check_error("allow all", 1, "expected");
    check_error("allow all publish", 1, "no topic filter");
    check_error("allow all publsh a", 1, "unknown action");
    check_error("allow everyone publish a", 1, "unknown subject");
    check_error("allow user: publish a", 1, "needs a value");
    check_error("allow client: publish a", 1, "needs a value");
    check_error("allow ip:10.0.0.0/33 publish a", 1, "prefix");
    check_error("allow ip:nowhere publish a", 1, "not an IPv4 or IPv6 address");
    check_error("allow ip:10.1.2.3/8 publish a", 1, "ip: 10.1.2.3/8 has host bits set; did you mean 10.0.0.0/8?");
    check_error("allow ip:fd00::1/8 publish a", 1, "did you mean fd00::/8?");
    check_error("\n\nallow all publish a/#/b", 3, "not a topic filter");
    check_error("allow all publish a+", 1, "not a topic filter");
    check_error("allow all subscribe eq", 1, "`eq` needs a filter");
    check_error("allow all subscribe eq a/#/b", 1, "not a topic filter");
    check_error("allow all subscribe eq dev/${clientid}", 1, "literal");
    check_error("allow all subscribe $share/g/a", 1, "$share");
    check_error("allow all subscribe a/${user}", 1, "unknown placeholder");
    check_error("allow all subscribe a/${clientid", 1, "unclosed");
    check_error("allow all subscribe a/${clientid}+", 1, "not a topic filter");
    check_error("allow all publish \"a", 1, "unterminated");
    check_error("allow all publish \"a\"b", 1, "blank must follow");
    check_error("allow all publish a\"b\"", 1, "quote the whole token");
    check_error("allow all publish \"a\\n\"", 1, "escapes");
    check_error("\"allow\" all publish a", 1, "allow or deny");
}

#[test]
fn an_empty_quoted_filter_is_refused() {
    check_error("allow all publish \"\"", 1, "not a topic filter");
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let path = std::env::temp_dir().join(format!("acl-missing-{}.conf", std::process::id()));
    let error = load(&path).err().unwrap_or_else(|| panic!("{} loaded", path.display()));
    assert_eq!(error.line, None);
    assert!(error.to_string().starts_with(&format!("ACL file {}: ", path.display())), "{error}");
    assert!(error.to_string().contains("cannot read"), "{error}");
}

#[test]
fn a_malformed_file_is_an_error_naming_file_and_line() {
    let path = std::env::temp_dir().join(format!("acl-malformed-{}.conf", std::process::id()));
    std::fs::write(&path, "allow all publish a\n\nallow all publish a/#/b\n").unwrap_or_else(|e| panic!("{e}"));
    let error = load(&path).err().unwrap_or_else(|| panic!("{} loaded", path.display()));
    let _ = std::fs::remove_file(&path);
    assert_eq!(error.line, Some(3));
    assert_eq!(error.to_string(), format!("ACL file {} line 3: {}", path.display(), error.message));
    assert!(error.message.contains("a/#/b"), "{error}");
}

#[test]
fn the_sample_acl_file_parses() {
    let set = parse(include_str!("../../acl.conf")).unwrap_or_else(|(line, e)| panic!("acl.conf:{line}: {e}"));
    assert!(!set.rules.is_empty());
}
