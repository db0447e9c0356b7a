//! Wills: the will each connection of a subscriber carries, and the watcher
//! that records the wills the broker publishes. A will's payload names its
//! client and connection, so a checker can tell which connection's end
//! published it.

use bytes::Bytes;
use bytestring::ByteString;
use mqtt_codec::{Packet, PubResponse, QoS, Subscribe, SubscribeProperties, SubscriptionOptions, Will, WillProperties};

use super::{ClientCtx, Conn, RECONNECT_MS, connect_packet, pid, recv_keeping_alive, sleep_ms};
use crate::history::{ClientIx, Event, sim_now};
use crate::scenario::WatcherSpec;

/// Every will goes to `will/c{client}`; the watchers subscribe to all of them.
const WILL_FILTER: &str = "will/#";

/// The will of `client`'s `conn`-th connection, at QoS 1.
pub(super) fn will(client: ClientIx, conn: u32, delay_secs: u32) -> Will {
    Will {
        topic: ByteString::from(format!("will/c{client}")),
        payload: Bytes::from(format!("will:{client}:{conn}")),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: WillProperties { will_delay_interval: Some(delay_secs), ..WillProperties::default() },
    }
}

/// `(client, conn)` of a will's payload.
fn parse_will(payload: &[u8]) -> Option<(ClientIx, u32)> {
    let text = std::str::from_utf8(payload).ok()?.strip_prefix("will:")?;
    let (client, conn) = text.split_once(':')?;
    Some((client.parse().ok()?, conn.parse().ok()?))
}

/// Runs a watcher until the end of the run: a persistent session on its
/// node subscribed to every will topic at QoS 1, subscribed anew whenever
/// the session is found gone.
pub async fn watcher(ctx: ClientCtx, client: ClientIx, spec: WatcherSpec) {
    let h = &ctx.history;
    let id = format!("c{client}");
    let mut subscribed = false;
    while sim_now() < ctx.end {
        let connect = connect_packet(&id, false, 3600, 32);
        let Ok((mut conn, ack)) = Conn::open(ctx.nodes[spec.node], connect).await else {
            sleep_ms(RECONNECT_MS).await;
            continue;
        };
        h.now(Event::Connected { client, node: spec.node, session_present: ack.session_present });
        if !ack.session_present || !subscribed {
            subscribed = false;
            let options = SubscriptionOptions { qos: QoS::AtLeastOnce, ..SubscriptionOptions::default() };
            let subscribe = Subscribe {
                packet_id: pid(1),
                filters: vec![(ByteString::from(WILL_FILTER), options)],
                properties: SubscribeProperties::default(),
            };
            if conn.send(&Packet::Subscribe(subscribe)).await.is_err() {
                continue;
            }
        }
        let mut last_heard = sim_now();
        let why = loop {
            let reply = match recv_keeping_alive(&mut conn, &mut last_heard).await {
                Err(why) => break why,
                Ok(Packet::SubAck(ack)) => {
                    if ack.reason_codes.iter().all(|code| code.0 < 0x80) {
                        subscribed = true;
                        h.now(Event::WillWatched { watcher: client, node: spec.node });
                    } else {
                        h.now(Event::Anomaly {
                            what: format!("c{client}: will filter refused: {:?}", ack.reason_codes),
                        });
                    }
                    None
                }
                Ok(Packet::Publish(p)) => {
                    match parse_will(&p.payload) {
                        Some((of, n)) => {
                            h.now(Event::WillDelivered { watcher: client, client: of, conn: n, dup: p.dup })
                        }
                        None => h.now(Event::Anomaly { what: format!("c{client}: not a will on {}", p.topic) }),
                    }
                    p.packet_id.map(|id| Packet::PubAck(PubResponse::new(id)))
                }
                Ok(Packet::Disconnect(d)) => break format!("DISCONNECT {:?}", d.reason_code),
                Ok(_) => None,
            };
            if let Some(reply) = reply
                && let Err(e) = conn.send(&reply).await
            {
                break e.to_string();
            }
        };
        h.now(Event::Disconnected { client, why });
        sleep_ms(RECONNECT_MS).await;
    }
}
