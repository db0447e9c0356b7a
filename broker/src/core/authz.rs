//! Authorization beyond the single decision: reloading the rules, and taking
//! away the subscriptions they no longer allow.
//!
//! A granted subscription receives every topic it matches without a further
//! check per message (README, "Authorization"): the subscribe check only
//! grants a filter whose every topic the rules allow. So the rights behind a
//! subscription change only when the rules change (a reload) or when its
//! session comes back under another identity (a resume, here or moved from
//! another node); both re-check it here.

use bytestring::ByteString;
use mqtt_codec::topic::{matches, parse_shared};

use super::Broker;
use super::message::Delivery;
use super::router::ClientId;
use crate::seam::Millis;

impl Broker {
    /// Rereads the authorization rules. On success every session, connected
    /// or not, loses the subscriptions the new rules deny; on error the old
    /// rules stay in force and nothing changes.
    pub fn reload_authorizer(&mut self, _now: Millis) -> Result<(), String> {
        self.authorizer.reload()?;
        let mut clients: Vec<ClientId> = self.sessions.keys().cloned().collect();
        // Sorted: the router's changes reach the cluster in the same order on every run.
        clients.sort();
        let before = self.counters.subscriptions_revoked;
        for client in &clients {
            self.revoke_denied(client);
        }
        let revoked = self.counters.subscriptions_revoked - before;
        if revoked > 0 {
            tracing::info!(revoked, "subscriptions revoked by the reloaded rules");
        }
        Ok(())
    }

    /// Removes the subscriptions of `client` that its authorizer denies, with
    /// the queued (not yet sent) messages only they had matched. Messages
    /// already in flight stay: the client has them, and the protocol
    /// requires their flows to complete.
    pub(super) fn revoke_denied(&mut self, client: &ClientId) {
        let Some(session) = self.sessions.get_mut(client) else { return };
        let who = &session.client;
        let mut revoked: Vec<ByteString> = session
            .subscriptions
            .keys()
            .filter(|filter| {
                let real = parse_shared(filter).map_or(&***filter, |(_, real)| real);
                !self.authorizer.can_subscribe(who, real)
            })
            .cloned()
            .collect();
        if revoked.is_empty() {
            return;
        }
        revoked.sort();
        for filter in &revoked {
            session.subscriptions.remove(filter);
            self.router.unsubscribe(client, filter);
        }
        self.counters.subscriptions_revoked += revoked.len() as u64;
        tracing::info!(%client, filters = ?revoked, "subscriptions revoked: not authorized");

        let queued = session.queue.len();
        let kept: Vec<&ByteString> = session.subscriptions.keys().filter(|f| parse_shared(f).is_none()).collect();
        let revoked_direct: Vec<&ByteString> = revoked.iter().filter(|f| parse_shared(f).is_none()).collect();
        session.queue.retain(|delivery| !only_for_revoked(delivery, &revoked, &revoked_direct, &kept));
        self.counters.dropped_not_authorized += (queued - session.queue.len()) as u64;
    }
}

/// Whether a queued delivery was routed for a revoked subscription and no
/// remaining one: a shared delivery names its subscription; a direct one
/// counts if a revoked filter matches its topic and no kept filter does.
fn only_for_revoked(
    delivery: &Delivery,
    revoked: &[ByteString],
    revoked_direct: &[&ByteString],
    kept_direct: &[&ByteString],
) -> bool {
    if let Some(key) = &delivery.shared {
        let filter = format!("$share/{}/{}", key.group, key.filter);
        return revoked.iter().any(|r| **r == *filter);
    }
    let topic = &*delivery.message.topic;
    revoked_direct.iter().any(|f| matches(f, topic)) && !kept_direct.iter().any(|f| matches(f, topic))
}

#[cfg(test)]
#[path = "authz_tests.rs"]
mod tests;
