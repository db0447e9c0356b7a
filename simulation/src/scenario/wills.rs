//! Wills for the scenarios that judge them (single, crash, takeover): every
//! subscriber's connections carry a will, some churns become drops without
//! DISCONNECT, and a watcher on every node records the wills published.
//!
//! Nothing here draws from the scenario's RNG: the seeds named in tests keep
//! their topology, workload and faults, and only gain the wills.

use super::{ClientSpec, Kind, Scenario, WatcherSpec};
use crate::history::Millis;

/// The Will Delay Interval of every will: more than the 300 ms a client
/// waits before it reconnects, so that a quick reconnect (or a move)
/// cancels the will ([MQTT-3.1.3-9]) and a long absence publishes it.
pub const WILL_DELAY_SECS: u32 = 1;
/// How long a client stays away after it dropped its connection: longer
/// than the will's delay plus the time a live node takes to publish it.
const DROP_AWAY_MS: Millis = 3_000;
/// How long some clients of the crash scenario stay away after their node
/// died under them: longer than the node's death takes to be detected plus
/// the route grace, so that its guardian must have published the will.
const DEAD_NODE_AWAY_MS: Millis = 15_000;

pub(super) fn add(scenario: &mut Scenario) {
    for (ix, spec) in scenario.clients.iter_mut().enumerate() {
        let ClientSpec::Subscriber(s) = spec else { continue };
        s.will_delay = Some(WILL_DELAY_SECS);
        // Every other churn of a client drops the connection instead of disconnecting.
        let times = std::mem::take(&mut s.churn);
        for (i, t) in times.into_iter().enumerate() {
            if (i + ix) % 2 == 0 { s.drops.push(t) } else { s.churn.push(t) }
        }
        s.away = match scenario.kind {
            Kind::Crash if ix % 2 == 1 => Some(DEAD_NODE_AWAY_MS),
            Kind::Takeover => None,
            _ => Some(DROP_AWAY_MS),
        };
    }
    for node in 0..scenario.nodes {
        scenario.clients.push(ClientSpec::Watcher(WatcherSpec { node }));
    }
}
