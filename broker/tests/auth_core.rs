//! The core's side of enhanced authentication: it accepts a CONNECT with an
//! Authentication Method only for methods the shell authenticates, echoes the
//! method and the exchange's final data in the CONNACK, and answers AUTH
//! after CONNACK as the specification asks.
#![allow(clippy::unwrap_used)]

mod core_common;

use std::sync::Arc;

use broker::auth::{AuthExchange, AuthStep, ReAuthenticator};
use bytes::Bytes;
use core_common::{Harness, connect};
use mqtt_codec::{Auth, AuthProperties, Disconnect, Packet, ProtocolVersion, ReasonCode};
use parking_lot::Mutex;

fn with_method(method: &str, data: &[u8]) -> mqtt_codec::Connect {
    let mut c = connect(ProtocolVersion::V5, "c", true);
    c.properties.authentication_method = Some(method.into());
    c.properties.authentication_data = Some(Bytes::copy_from_slice(data));
    c
}

fn auth(reason: ReasonCode, method: Option<&str>) -> Packet {
    let properties = AuthProperties { authentication_method: method.map(Into::into), ..AuthProperties::default() };
    Packet::Auth(Auth { reason_code: reason, properties })
}

fn connack_of(packets: &[Packet]) -> &mqtt_codec::ConnAck {
    match packets.first() {
        Some(Packet::ConnAck(ack)) => ack,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

fn disconnect_reason(packets: &[Packet]) -> ReasonCode {
    match packets.last() {
        Some(Packet::Disconnect(Disconnect { reason_code, .. })) => *reason_code,
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
}

#[test]
fn a_method_the_shell_does_not_run_is_refused() {
    let mut h = Harness::new();
    let (_, out) = h.connect(with_method("SCRAM-SHA-256", b"x"));
    assert_eq!(connack_of(&out).reason_code, ReasonCode::BAD_AUTHENTICATION_METHOD);
    h.broker.set_authentication(&["SCRAM-SHA-256"], None);
    let (_, out) = h.connect(with_method("KERBEROS", b"x"));
    assert_eq!(connack_of(&out).reason_code, ReasonCode::BAD_AUTHENTICATION_METHOD);
}

#[test]
fn the_connack_carries_the_method_and_the_final_data() {
    let mut h = Harness::new();
    h.broker.set_authentication(&["SCRAM-SHA-256"], None);
    let (_, out) = h.connect(with_method("SCRAM-SHA-256", b"v=signature"));
    let ack = connack_of(&out);
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    assert_eq!(ack.properties.authentication_method.as_deref(), Some("SCRAM-SHA-256"));
    assert_eq!(ack.properties.authentication_data.as_deref(), Some(&b"v=signature"[..]));
    let (_, out) = h.connect(connect(ProtocolVersion::V5, "plain", true));
    assert_eq!(connack_of(&out).properties.authentication_method, None, "[MQTT-4.12.0-6]");
}

#[test]
fn auth_without_a_method_in_connect_is_a_protocol_error() {
    let mut h = Harness::new();
    let (conn, _) = h.connect(connect(ProtocolVersion::V5, "c", true));
    let out = h.send(conn, auth(ReasonCode::RE_AUTHENTICATE, Some("SCRAM-SHA-256")));
    assert_eq!(disconnect_reason(&out), ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn auth_after_connack_is_answered_per_reason_and_method() {
    for (reason, method, expected) in [
        (ReasonCode::RE_AUTHENTICATE, Some("OTHER"), ReasonCode::PROTOCOL_ERROR),
        (ReasonCode::RE_AUTHENTICATE, None, ReasonCode::PROTOCOL_ERROR),
        (ReasonCode::CONTINUE_AUTHENTICATION, Some("SCRAM-SHA-256"), ReasonCode::PROTOCOL_ERROR),
        // No re-authenticator: a failed re-authentication ([MQTT-4.12.1-2]).
        (ReasonCode::RE_AUTHENTICATE, Some("SCRAM-SHA-256"), ReasonCode::NOT_AUTHORIZED),
    ] {
        let mut h = Harness::new();
        h.broker.set_authentication(&["SCRAM-SHA-256"], None);
        let (conn, _) = h.connect(with_method("SCRAM-SHA-256", b""));
        let out = h.send(conn, auth(reason, method));
        assert_eq!(disconnect_reason(&out), expected, "{reason:?} {method:?}");
    }
}

/// Continues once, then accepts the data "right" and refuses anything else;
/// records the user each exchange was started for.
#[derive(Default)]
struct Echo {
    users: Mutex<Vec<Option<String>>>,
}

struct EchoExchange {
    rounds: usize,
}

impl AuthExchange for EchoExchange {
    fn step(&mut self, data: &[u8]) -> AuthStep {
        self.rounds += 1;
        match (self.rounds, data) {
            (1, _) => AuthStep::Continue(Bytes::from_static(b"challenge")),
            (_, b"right") => AuthStep::Success(Some(Bytes::from_static(b"welcome back"))),
            _ => AuthStep::Failure(ReasonCode::NOT_AUTHORIZED),
        }
    }
}

impl ReAuthenticator for Echo {
    fn start(&self, method: &str, user: Option<&str>) -> Option<Box<dyn AuthExchange>> {
        self.users.lock().push(user.map(str::to_owned));
        (method == "ECHO").then(|| Box::new(EchoExchange { rounds: 0 }) as Box<dyn AuthExchange>)
    }
}

fn auth_with(reason: ReasonCode, data: &'static [u8]) -> Packet {
    let properties = AuthProperties {
        authentication_method: Some("ECHO".into()),
        authentication_data: Some(Bytes::from_static(data)),
        ..AuthProperties::default()
    };
    Packet::Auth(Auth { reason_code: reason, properties })
}

fn only_auth(packets: &[Packet]) -> (ReasonCode, Option<&[u8]>, Option<&str>) {
    match packets {
        [Packet::Auth(auth)] => (
            auth.reason_code,
            auth.properties.authentication_data.as_deref(),
            auth.properties.authentication_method.as_deref(),
        ),
        other => panic!("expected one AUTH, got {other:?}"),
    }
}

#[test]
fn re_authentication_runs_the_exchange_and_answers_auth() {
    let echo = Arc::new(Echo::default());
    let mut h = Harness::new();
    h.broker.set_authentication(&["ECHO"], Some(echo.clone()));
    let mut c = with_method("ECHO", b"");
    c.username = Some("alice".into());
    let (conn, out) = h.connect(c);
    assert_eq!(connack_of(&out).reason_code, ReasonCode::SUCCESS);

    let out = h.send(conn, auth_with(ReasonCode::RE_AUTHENTICATE, b"hello"));
    assert_eq!(only_auth(&out), (ReasonCode::CONTINUE_AUTHENTICATION, Some(&b"challenge"[..]), Some("ECHO")));
    let out = h.send(conn, auth_with(ReasonCode::CONTINUE_AUTHENTICATION, b"right"));
    assert_eq!(only_auth(&out), (ReasonCode::SUCCESS, Some(&b"welcome back"[..]), Some("ECHO")));
    assert_eq!(h.send(conn, Packet::PingReq), vec![Packet::PingResp], "the connection goes on");

    // A failing exchange ends the connection.
    let out = h.send(conn, auth_with(ReasonCode::RE_AUTHENTICATE, b"hello"));
    assert_eq!(only_auth(&out).0, ReasonCode::CONTINUE_AUTHENTICATION);
    let out = h.send(conn, auth_with(ReasonCode::CONTINUE_AUTHENTICATION, b"wrong"));
    assert_eq!(disconnect_reason(&out), ReasonCode::NOT_AUTHORIZED);
    assert_eq!(*echo.users.lock(), vec![Some("alice".to_owned()), Some("alice".to_owned())]);
}

#[test]
fn a_second_re_authenticate_during_an_exchange_is_a_protocol_error() {
    let mut h = Harness::new();
    h.broker.set_authentication(&["ECHO"], Some(Arc::new(Echo::default())));
    let (conn, _) = h.connect(with_method("ECHO", b""));
    h.send(conn, auth_with(ReasonCode::RE_AUTHENTICATE, b"hello"));
    let out = h.send(conn, auth_with(ReasonCode::RE_AUTHENTICATE, b"hello"));
    assert_eq!(disconnect_reason(&out), ReasonCode::PROTOCOL_ERROR);
}
