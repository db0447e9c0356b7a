use super::*;

fn limits(configure: impl FnOnce(&mut LimitsConfig)) -> Limits {
    let mut config = LimitsConfig::default();
    configure(&mut config);
    Limits::new(&config).expect("no bans file")
}

fn peer(text: &str) -> SocketAddr {
    SocketAddr::new(text.parse().expect("an address"), 40000)
}

#[test]
fn by_default_nothing_is_rate_limited() {
    let l = limits(|_| {});
    assert!((0..10_000).all(|_| l.admit("tcp:default", peer("127.0.0.1"), true, 0)));
    assert_eq!(l.stats(0).tracked_ips, 0, "no table is kept for a limit that is off");
    assert!(l.client_rate(0).is_none(), "no client buckets are kept for rates that are off");
}

#[test]
fn the_listener_rate_covers_every_address_and_each_listener_apart() {
    let l = limits(|c| {
        c.max_conn_rate = 2;
        c.max_conn_burst = 2;
    });
    assert!(l.admit("tcp:default", peer("127.0.0.1"), true, 0));
    assert!(l.admit("tcp:default", peer("127.0.0.2"), true, 0));
    assert!(!l.admit("tcp:default", peer("127.0.0.3"), true, 0));
    assert!(l.admit("ws:default", peer("127.0.0.3"), true, 0), "another listener has its own bucket");
    assert!(l.admit("tcp:default", peer("127.0.0.3"), true, 500), "half a second refills one at 2/s");
    assert_eq!(l.stats(0).refused_listener_rate, 1);
}

#[test]
fn the_per_address_rate_refuses_one_source_and_not_another() {
    let l = limits(|c| {
        c.max_conn_rate_per_ip = 1;
        c.max_conn_burst_per_ip = 3;
    });
    let flood = (0..10).filter(|_| l.admit("tcp:default", peer("192.0.2.1"), true, 0)).count();
    assert_eq!(flood, 3, "the burst, then nothing");
    assert!(l.admit("tcp:default", peer("192.0.2.2"), true, 0));
    assert!(l.admit("tcp:default", peer("192.0.2.1"), true, 1000), "one second refills one");
    assert_eq!(l.stats(0).refused_ip_rate, 7);
}

#[test]
fn an_ipv6_source_is_limited_by_its_64() {
    let l = limits(|c| c.max_conn_rate_per_ip = 1);
    assert!(l.admit("tcp:default", peer("2001:db8:0:1::1"), true, 0));
    assert!(!l.admit("tcp:default", peer("2001:db8:0:1::2"), true, 0), "same /64");
    assert!(l.admit("tcp:default", peer("2001:db8:0:2::1"), true, 0), "another /64");
}

#[test]
fn the_address_table_is_bounded_and_forgets_idle_addresses() {
    let l = limits(|c| {
        c.max_conn_rate_per_ip = 10;
        c.max_tracked_ips = 4.try_into().expect("not zero");
    });
    for i in 0..4 {
        assert!(l.admit("tcp:default", peer(&format!("10.0.0.{i}")), true, 0));
    }
    // All four are busy: a fifth address is admitted, not tracked.
    assert!(l.admit("tcp:default", peer("10.0.0.9"), true, 0));
    assert_eq!(l.stats(0).tracked_ips, 4);
    assert_eq!(l.stats(0).ip_table_full, 1);
    // A second later the four buckets are full again: they are forgotten.
    assert!(l.admit("tcp:default", peer("10.0.0.9"), true, 1000));
    assert_eq!(l.stats(0).tracked_ips, 1);
}

#[test]
fn a_full_listener_logs_once_per_run_of_refusals_whatever_other_listeners_admit() {
    let log = RunLog::default();
    assert!(log.refused("tcp:a"));
    assert!(!log.refused("tcp:a"));
    log.admitted("tcp:b");
    assert!(!log.refused("tcp:a"), "another listener's admission is no news about this one");
    assert!(log.refused("tcp:b"), "each listener has its own run");
    log.admitted("tcp:a");
    assert!(log.refused("tcp:a"), "after an admission a refusal starts a new run");
}

#[test]
fn lapsed_bans_are_not_counted_as_in_force() {
    let l = limits(|_| {});
    let ban = Ban { kind: BanKind::ClientId, value: "c".into(), until_ms: Some(1000), reason: String::new() };
    l.bans.lock().insert(ban).expect("a valid ban");
    assert_eq!(l.stats(999).bans, 1);
    assert_eq!(l.stats(1000).bans, 0);
}

#[test]
fn closures_are_counted_by_reason() {
    let l = limits(|_| {});
    l.closed(ReasonCode::RECEIVE_MAXIMUM_EXCEEDED);
    l.closed(ReasonCode::RECEIVE_MAXIMUM_EXCEEDED);
    l.closed(ReasonCode::NORMAL_DISCONNECTION);
    let stats = l.stats(0);
    assert_eq!(stats.closed_by_reason.get("0x93 Receive Maximum exceeded"), Some(&2));
    assert_eq!(stats.closed_by_reason.len(), 1, "a normal disconnection is no limit hit");
}

#[test]
fn a_client_over_its_byte_rate_waits_for_the_debt() {
    let l = limits(|c| c.max_bytes_per_sec = 1000);
    let mut rate = l.client_rate(0).expect("a rate is limited");
    rate.read(500, 0);
    assert_eq!(rate.resume_at(0), None, "within the first second's worth");
    rate.read(1500, 0);
    assert_eq!(rate.resume_at(0), Some(1000));
    assert_eq!(rate.resume_at(1000), None);
}

#[test]
fn a_client_over_its_message_rate_waits_and_bytes_do_not_count_then() {
    let l = limits(|c| c.max_messages_per_sec = 10);
    let mut rate = l.client_rate(0).expect("a rate is limited");
    rate.read(1 << 20, 0);
    rate.received(10, 0);
    assert_eq!(rate.resume_at(0), None);
    rate.received(5, 0);
    assert_eq!(rate.resume_at(0), Some(500));
}
