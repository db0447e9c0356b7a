//! [`AclAuthorizer`]: the rules of an ACL file, reloadable in place.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use super::parse::{self, AclError};
use super::rules::{Action, RuleSet};
use super::{Authorizer, ClientInfo, NoMatch};

/// Decides by the first matching rule of an ACL file; `no_match` when none matches.
#[derive(Debug)]
pub struct AclAuthorizer {
    /// The file `reload` rereads; `None` for rules given as text.
    path: Option<PathBuf>,
    no_match: NoMatch,
    /// Swapped whole by `reload` once a new file parsed completely, so a
    /// decision never sees half of an old file and half of a new one. A read
    /// lock is uncontended except during the swap itself.
    rules: RwLock<Arc<RuleSet>>,
}

impl AclAuthorizer {
    /// Reads the file; a missing or malformed file is an error naming the file and line.
    pub fn load(path: &Path, no_match: NoMatch) -> Result<Self, AclError> {
        let rules = parse::load(path)?;
        Ok(Self { path: Some(path.to_owned()), no_match, rules: RwLock::new(Arc::new(rules)) })
    }

    /// Rules from text, not backed by a file (`reload` keeps them).
    pub fn from_text(text: &str, no_match: NoMatch) -> Result<Self, AclError> {
        let rules = parse::parse(text).map_err(|(line, message)| AclError {
            path: PathBuf::from("<text>"),
            line: Some(line),
            message,
        })?;
        Ok(Self { path: None, no_match, rules: RwLock::new(Arc::new(rules)) })
    }

    /// Number of rules in force.
    pub fn rule_count(&self) -> usize {
        self.rules.read().rules.len()
    }

    fn decide(&self, client: &ClientInfo, action: Action, what: &str) -> bool {
        let verdict = self.rules.read().decide(client, action, what);
        verdict.unwrap_or(self.no_match == NoMatch::Allow)
    }
}

impl Authorizer for AclAuthorizer {
    fn can_publish(&self, client: &ClientInfo, topic: &str) -> bool {
        self.decide(client, Action::Publish, topic)
    }

    fn can_subscribe(&self, client: &ClientInfo, filter: &str) -> bool {
        self.decide(client, Action::Subscribe, filter)
    }

    fn reload(&self) -> Result<(), String> {
        let Some(path) = &self.path else { return Ok(()) };
        let rules = parse::load(path).map_err(|e| e.to_string())?;
        let count = rules.rules.len();
        *self.rules.write() = Arc::new(rules);
        tracing::info!(file = %path.display(), rules = count, "ACL reloaded");
        Ok(())
    }
}

#[cfg(test)]
#[path = "acl_tests.rs"]
mod tests;
