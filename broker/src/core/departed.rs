//! Shared-group messages caught by a node's departure (ALGORITHM.md,
//! "Forwarding"): forwards that waited for a node that then departed
//! (restarted, or unreachable beyond `route_grace_ms`) are lost to their
//! direct subscribers, whose sessions went with the node, but each group
//! they were to serve still has other members: another member gets them.

use super::Broker;
use super::router::SharedKey;
use crate::cluster::routes::NodeName;
use crate::cluster::wire::Forward;
use crate::seam::Millis;

impl Broker {
    /// Serves the groups of `forwards`, which waited for `departed`, with
    /// other members: here if the group has one, else on another node with
    /// members. Call after `departed`'s routes are gone, so it is not chosen again.
    pub fn reroute_groups(&mut self, departed: &NodeName, forwards: Vec<Box<Forward>>, now: Millis) {
        for forward in forwards {
            if forward.groups.is_empty() || forward.redirect.is_some() {
                continue;
            }
            let Forward { expires_in_ms, publisher, groups, publish, .. } = *forward;
            if expires_in_ms == Some(0) {
                continue; // Expired on the way.
            }
            let message = super::cluster::forwarded_message(publish, expires_in_ms, publisher, now);
            for (group, filter) in groups {
                let served = if self.router.has_group(&group, &filter) {
                    let serve = |g: &str, f: &str| group == g && filter == f;
                    self.deliver_locally(&message, false, serve, now) > 0
                } else {
                    self.forward_to_group(&SharedKey { group: group.clone(), filter: filter.clone() }, &message, now)
                };
                if let Some(cluster) = self.cluster.as_mut() {
                    if served {
                        cluster.counters.group_forwards_rerouted += 1;
                    } else {
                        tracing::info!(%departed, %group, %filter, "a departed member's group message found no other member");
                    }
                }
            }
        }
    }
}
