//! foca's runtime for `Membership`: it collects the datagrams, timers and
//! notifications of one call into foca, for `Membership` to hand out.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use foca::{Notification, Timer};
use tracing::{debug, info, warn};

use super::identity::{HEADER_LEN, NodeId};
use crate::seam::Millis;

/// foca's runtime: collects what one call into foca produced.
pub(super) struct Io {
    /// The time of the input being handled: timers are due at `now + after`.
    pub now: Millis,
    pub header: [u8; HEADER_LEN],
    pub transmits: VecDeque<(SocketAddr, Bytes)>,
    /// Timers by (deadline, order of arming). foca arms a few per member and
    /// ignores stale ones when they fire, so this stays small.
    pub timers: BTreeMap<(Millis, u64), Timer<NodeId>>,
    pub timers_armed: u64,
    /// foca reported a member up, down or renamed.
    pub changed: bool,
    /// `leave` was called: foca's "defunct" is then expected.
    pub leaving: bool,
    pub datagrams_out: u64,
}

impl Io {
    pub fn new(header: [u8; HEADER_LEN]) -> Self {
        Self {
            now: 0,
            header,
            transmits: VecDeque::new(),
            timers: BTreeMap::new(),
            timers_armed: 0,
            changed: false,
            leaving: false,
            datagrams_out: 0,
        }
    }
}

impl foca::Runtime<NodeId> for Io {
    fn notify(&mut self, notification: Notification<'_, NodeId>) {
        match notification {
            Notification::MemberUp(_) | Notification::MemberDown(_) | Notification::Rename(..) => {
                self.changed = true;
            }
            Notification::Rejoin(id) => info!(rejoin = id.rejoin, "declared down by the cluster; rejoined"),
            Notification::Defunct if !self.leaving => warn!("declared down by the cluster and cannot rejoin"),
            Notification::Idle => debug!("no other member is up"),
            _ => {}
        }
    }

    fn send_to(&mut self, to: NodeId, data: &[u8]) {
        let mut datagram = BytesMut::with_capacity(HEADER_LEN + data.len());
        datagram.put_slice(&self.header);
        datagram.put_slice(data);
        self.datagrams_out += 1;
        self.transmits.push_back((to.member.addr, datagram.freeze()));
    }

    fn submit_after(&mut self, timer: Timer<NodeId>, after: Duration) {
        let after = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
        self.timers_armed += 1;
        self.timers.insert((self.now.saturating_add(after), self.timers_armed), timer);
    }
}
