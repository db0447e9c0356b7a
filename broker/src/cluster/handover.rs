//! Sessions this node handed to another node, kept for a short while so that
//! a takeover call sent again answers the same: a call's answer travels on
//! the connection that carried the call, and is lost if that connection
//! breaks first (ALGORITHM.md, "Sessions across nodes").

use bytestring::ByteString;
use parking_lot::Mutex;

use super::routes::NodeName;
use super::wire::WireSession;
use crate::core::cluster::Stamp;
use crate::hash::AHashMap;
use crate::seam::Millis;

#[derive(Debug, Default)]
pub struct Handovers {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_client: AHashMap<ByteString, Handover>,
    /// Expired handovers are purged when the table reaches this size.
    purge_at: usize,
}

#[derive(Debug)]
struct Handover {
    to: NodeName,
    stamp: Stamp,
    session: Box<WireSession>,
    until: Millis,
}

impl Handovers {
    /// `client`'s session went to `to` for its CONNECT made at `stamp`; kept until `until`.
    pub fn record(
        &self,
        client: ByteString,
        to: NodeName,
        stamp: Stamp,
        session: Box<WireSession>,
        now: Millis,
        until: Millis,
    ) {
        let mut inner = self.inner.lock();
        if inner.by_client.len() >= inner.purge_at.max(64) {
            inner.by_client.retain(|_, h| h.until > now);
            inner.purge_at = inner.by_client.len() * 2;
        }
        inner.by_client.insert(client, Handover { to, stamp, session, until });
    }

    /// The session handed over for this very call, if it was (the call came again).
    pub fn replay(&self, client: &str, from: &NodeName, stamp: Stamp, now: Millis) -> Option<Box<WireSession>> {
        let inner = self.inner.lock();
        let handover = inner.by_client.get(client)?;
        (handover.to == *from && handover.stamp == stamp && handover.until > now).then(|| handover.session.clone())
    }
}
