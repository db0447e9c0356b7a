use super::*;

fn acl(text: &str, no_match: NoMatch) -> AclAuthorizer {
    AclAuthorizer::from_text(text, no_match).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn client(id: &str) -> ClientInfo {
    ClientInfo::new(id.into())
}

fn user(id: &str, name: &str) -> ClientInfo {
    ClientInfo { username: Some(name.into()), ..client(id) }
}

fn from(id: &str, ip: &str) -> ClientInfo {
    ClientInfo { peer: Some(ip.parse().expect("an address")), ..client(id) }
}

/// Checks publish decisions: (topic, allowed).
fn check_pub(acl: &AclAuthorizer, who: &ClientInfo, cases: &[(&str, bool)]) {
    for (topic, allowed) in cases {
        assert_eq!(acl.can_publish(who, topic), *allowed, "{who:?} publish {topic:?}");
    }
}

/// Checks subscribe decisions: (filter, allowed).
fn check_sub(acl: &AclAuthorizer, who: &ClientInfo, cases: &[(&str, bool)]) {
    for (filter, allowed) in cases {
        assert_eq!(acl.can_subscribe(who, filter), *allowed, "{who:?} subscribe {filter:?}");
    }
}

#[test]
fn an_empty_file_decides_everything_by_no_match() {
    let deny = acl("", NoMatch::Deny);
    check_pub(&deny, &client("c"), &[("a", false), ("#x", false)]);
    check_sub(&deny, &client("c"), &[("#", false), ("a/b", false)]);
    let allow = acl("# only a comment\n", NoMatch::Allow);
    check_pub(&allow, &client("c"), &[("a", true)]);
    check_sub(&allow, &client("c"), &[("#", true)]);
}

#[test]
fn no_match_applies_only_where_no_rule_matches() {
    let text = "deny all publish secret\nallow all publish public\n";
    check_pub(&acl(text, NoMatch::Allow), &client("c"), &[("secret", false), ("public", true), ("other", true)]);
    check_pub(&acl(text, NoMatch::Deny), &client("c"), &[("secret", false), ("public", true), ("other", false)]);
}

#[test]
fn the_first_matching_rule_wins() {
    let acl = acl("allow all publish a/x\ndeny all publish a/#\nallow all publish #\n", NoMatch::Deny);
    check_pub(&acl, &client("c"), &[("a/x", true), ("a/y", false), ("a", false), ("b", true)]);
    let reversed =
        AclAuthorizer::from_text("deny all publish a/#\nallow all publish a/x\n", NoMatch::Allow).expect("rules");
    check_pub(&reversed, &client("c"), &[("a/x", false)]);
}

#[test]
fn user_rules_match_the_user_name_only() {
    let acl = acl("allow user:alice all alice/#\n", NoMatch::Deny);
    check_pub(&acl, &user("c1", "alice"), &[("alice/x", true), ("bob/x", false)]);
    check_pub(&acl, &user("alice", "bob"), &[("alice/x", false)]);
    check_pub(&acl, &client("alice"), &[("alice/x", false)]);
}

#[test]
fn client_rules_match_the_client_id_only() {
    let acl = acl("deny client:evil all #\nallow all all #\n", NoMatch::Deny);
    check_pub(&acl, &client("evil"), &[("a", false)]);
    check_pub(&acl, &user("good", "evil"), &[("a", true)]);
    check_sub(&acl, &client("evil"), &[("a/+", false)]);
}

#[test]
fn ip_rules_match_peers_in_the_block() {
    let acl = acl("allow ip:10.0.0.0/8 publish lan/#\nallow ip:fd00::/8 publish lan6/#\n", NoMatch::Deny);
    check_pub(&acl, &from("c", "10.1.2.3"), &[("lan/x", true), ("lan6/x", false)]);
    check_pub(&acl, &from("c", "11.1.2.3"), &[("lan/x", false)]);
    check_pub(&acl, &from("c", "fd00::7"), &[("lan6/x", true), ("lan/x", false)]);
    check_pub(&acl, &from("c", "::ffff:10.0.0.1"), &[("lan/x", true)]);
    check_pub(&acl, &client("no-address"), &[("lan/x", false)]);
}

#[test]
fn actions_limit_a_rule() {
    let acl = acl("allow all publish p/#\nallow all subscribe s/#\nallow all all b/#\n", NoMatch::Deny);
    let c = client("c");
    check_pub(&acl, &c, &[("p/x", true), ("s/x", false), ("b/x", true)]);
    check_sub(&acl, &c, &[("p/x", false), ("s/x", true), ("b/x", true)]);
}

#[test]
fn publish_matches_topics_by_mqtt_rules() {
    let acl = acl("allow all publish a/+/c\nallow all publish d/#\nallow all publish #\n", NoMatch::Deny);
    check_pub(&acl, &client("c"), &[("a/b/c", true), ("d", true), ("e/f", true), ("$SYS/x", false)]);
    let dollar = AclAuthorizer::from_text("allow all publish $SYS/#\n", NoMatch::Deny).expect("rules");
    check_pub(&dollar, &client("c"), &[("$SYS/x", true), ("x", false)]);
}

#[test]
fn an_allow_grants_only_filters_it_covers() {
    let acl = acl("allow all subscribe a/#\nallow all subscribe b/+\n", NoMatch::Deny);
    check_sub(
        &acl,
        &client("c"),
        &[("a/#", true), ("a/+/b", true), ("a", true), ("b/x", true), ("b/+", true), ("b/#", false), ("#", false)],
    );
}

#[test]
fn a_deny_refuses_every_filter_that_overlaps_it() {
    let acl = acl("deny all subscribe secret/#\nallow all subscribe #\n", NoMatch::Deny);
    check_sub(
        &acl,
        &client("c"),
        &[("#", false), ("+/x", false), ("secret", false), ("public/#", true), ("+/+/+/x/#", false), ("pub", true)],
    );
}

#[test]
fn a_deny_of_dollar_topics_leaves_leading_wildcards_alone() {
    let acl = acl("deny all subscribe $SYS/#\nallow all subscribe #\n", NoMatch::Deny);
    check_sub(&acl, &client("c"), &[("#", true), ("+/x", true), ("$SYS/x", false)]);
}

#[test]
fn eq_matches_the_literal_filter_only() {
    let acl = acl("allow all subscribe eq #\nallow all publish eq a/b\n", NoMatch::Deny);
    check_sub(&acl, &client("c"), &[("#", true), ("a/#", false), ("a", false), ("+", false)]);
    check_pub(&acl, &client("c"), &[("a/b", true), ("a/c", false)]);
    let deny =
        AclAuthorizer::from_text("deny all subscribe eq #\nallow all subscribe #\n", NoMatch::Deny).expect("rules");
    check_sub(&deny, &client("c"), &[("#", false), ("+/#", true), ("a", true)]);
}

#[test]
fn placeholders_fill_in_the_client_id_and_user_name() {
    let acl = acl("allow all all dev/${clientid}/#\nallow all all user/${username}/#\n", NoMatch::Deny);
    let alice = user("d1", "alice");
    check_pub(&acl, &alice, &[("dev/d1/x", true), ("dev/d2/x", false), ("user/alice/x", true), ("user/bob/x", false)]);
    check_sub(&acl, &alice, &[("dev/d1/#", true), ("dev/+/#", false), ("user/alice/+", true)]);
    check_pub(&acl, &client("d1"), &[("user//x", false), ("user/${username}/x", false)]);
}

#[test]
fn placeholders_inside_a_level_fill_in_too() {
    let acl = acl("allow all publish out/${clientid}-${username}\n", NoMatch::Deny);
    check_pub(&acl, &user("c", "u"), &[("out/c-u", true), ("out/c-v", false)]);
}

#[test]
fn wildcards_smuggled_in_a_client_id_do_not_widen_an_allow() {
    let acl = acl("allow all all dev/${clientid}/#\n", NoMatch::Deny);
    for id in ["#", "+", "a/b", "x/#", "+/+"] {
        let own = format!("dev/{id}/x");
        check_pub(&acl, &client(id), &[("dev/a/x", false), ("dev/a/b/x", false), (own.as_str(), false)]);
        check_sub(&acl, &client(id), &[("dev/#", false), ("dev/+/x", false), (own.as_str(), false)]);
    }
}

#[test]
fn wildcards_smuggled_in_a_user_name_do_not_widen_an_allow() {
    let acl = acl("allow all all ${username}/#\n", NoMatch::Deny);
    check_pub(&acl, &user("c", "#"), &[("x/y", false)]);
    check_pub(&acl, &user("c", "$SYS"), &[("$SYS/broker", false)]);
    check_pub(&acl, &user("c", ""), &[("/x", false)]);
    check_pub(&acl, &user("c", "ok"), &[("ok/x", true)]);
}

#[test]
fn a_smuggled_value_makes_a_deny_fail_closed() {
    let acl = acl("deny all publish dev/${clientid}/secret\nallow all publish #\n", NoMatch::Deny);
    check_pub(&acl, &client("a"), &[("dev/a/secret", false), ("dev/a/open", true)]);
    check_pub(&acl, &client("+"), &[("dev/b/secret", false), ("anything", false)]);
}

#[test]
fn a_missing_user_name_makes_a_username_rule_not_apply() {
    let acl = acl("deny all publish ${username}/#\nallow all publish #\n", NoMatch::Deny);
    check_pub(&acl, &client("anon"), &[("x/y", true)]);
    check_pub(&acl, &user("c", "u"), &[("u/y", false), ("v/y", true)]);
}

#[test]
fn reload_swaps_in_a_good_file_and_keeps_the_rules_on_a_bad_one() {
    let path = std::env::temp_dir().join(format!("acl-reload-{}.conf", std::process::id()));
    std::fs::write(&path, "allow all publish a\n").expect("write");
    let acl = AclAuthorizer::load(&path, NoMatch::Deny).expect("load");
    check_pub(&acl, &client("c"), &[("a", true), ("b", false)]);
    std::fs::write(&path, "allow all publish b\n").expect("write");
    acl.reload().expect("reload");
    check_pub(&acl, &client("c"), &[("a", false), ("b", true)]);
    std::fs::write(&path, "allow all publish a\nallow all publsh c\n").expect("write");
    let error = acl.reload().expect_err("a bad file is refused");
    assert!(error.contains(&format!("ACL file {} line 2: ", path.display())), "{error}");
    check_pub(&acl, &client("c"), &[("a", false), ("b", true)]);
    std::fs::remove_file(&path).expect("remove");
    assert!(acl.reload().is_err(), "a vanished file is refused");
    check_pub(&acl, &client("c"), &[("b", true)]);
    std::fs::write(&path, "").expect("write");
    acl.reload().expect("an empty file is valid");
    check_pub(&acl, &client("c"), &[("b", false)]);
    let _ = std::fs::remove_file(&path);
}
