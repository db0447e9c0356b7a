//! The parsed ACL and how one decision is made (README, "Authorization").

use std::borrow::Cow;

use super::ClientInfo;
use super::cidr::Cidr;
use super::filter::{covers, overlaps};

/// What a client asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Publish,
    Subscribe,
}

/// The actions a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actions {
    Publish,
    Subscribe,
    All,
}

impl Actions {
    fn include(self, action: Action) -> bool {
        matches!(
            (self, action),
            (Actions::All, _) | (Actions::Publish, Action::Publish) | (Actions::Subscribe, Action::Subscribe)
        )
    }
}

/// Whom a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    All,
    User(Box<str>),
    Client(Box<str>),
    Ip(Cidr),
}

impl Who {
    fn matches(&self, client: &ClientInfo) -> bool {
        match self {
            Who::All => true,
            Who::User(name) => client.username.as_deref() == Some(&**name),
            Who::Client(id) => *client.client_id == **id,
            Who::Ip(block) => client.peer.is_some_and(|ip| block.contains(ip)),
        }
    }
}

/// A piece of a level that holds a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(Box<str>),
    Username,
    ClientId,
}

/// One level of a rule filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Level {
    /// A literal level, `+` or `#`.
    Exact(Box<str>),
    /// A level with `${username}` / `${clientid}`, filled in per client.
    Template(Vec<Part>),
}

/// One filter of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleTopic {
    /// `eq FILTER`: the filter as a string, wildcards not interpreted.
    Eq(Box<str>),
    /// A filter without placeholders, split into levels once.
    Filter(Vec<Box<str>>),
    /// A filter with placeholders, filled in at each check.
    Template(Vec<Level>),
}

/// A rule filter filled in for one client.
enum Expansion<'a> {
    Levels(Vec<Cow<'a, str>>),
    /// A placeholder has no value (no username): the rule is not about this client.
    Missing,
    /// A value would change the filter's shape (a wildcard, a `/`, an empty
    /// level, a leading `$`): the rule fails closed.
    Unsafe,
}

impl RuleTopic {
    fn expand<'a>(levels: &'a [Level], client: &'a ClientInfo) -> Expansion<'a> {
        let mut out = Vec::with_capacity(levels.len());
        for (index, level) in levels.iter().enumerate() {
            match level {
                Level::Exact(text) => out.push(Cow::Borrowed(&**text)),
                Level::Template(parts) => {
                    let mut text = String::new();
                    for part in parts {
                        let value = match part {
                            Part::Text(t) => {
                                text.push_str(t);
                                continue;
                            }
                            Part::Username => match client.username.as_deref() {
                                Some(name) => name,
                                None => return Expansion::Missing,
                            },
                            Part::ClientId => &*client.client_id,
                        };
                        let leading_dollar = index == 0 && text.is_empty() && value.starts_with('$');
                        if value.is_empty() || value.contains(['+', '#', '/']) || leading_dollar {
                            return Expansion::Unsafe;
                        }
                        text.push_str(value);
                    }
                    out.push(Cow::Owned(text));
                }
            }
        }
        Expansion::Levels(out)
    }

    /// Whether this filter decides `action` on `requested` (split into
    /// levels; `raw` is the same unsplit) for a rule that allows (`permit`) or denies.
    fn applies(&self, permit: bool, action: Action, raw: &str, requested: &[&str], client: &ClientInfo) -> bool {
        match self {
            RuleTopic::Eq(filter) => **filter == *raw,
            RuleTopic::Filter(levels) => Self::decides(levels, permit, action, requested),
            RuleTopic::Template(levels) => match Self::expand(levels, client) {
                Expansion::Missing => false,
                Expansion::Unsafe => !permit,
                Expansion::Levels(rule) => Self::decides(&rule, permit, action, requested),
            },
        }
    }

    /// An allow must grant everything the request reaches; a deny refuses a
    /// subscription that could reach anything it denies.
    fn decides<L: AsRef<str>>(rule: &[L], permit: bool, action: Action, requested: &[&str]) -> bool {
        match (action, permit) {
            (Action::Publish, _) | (Action::Subscribe, true) => covers(rule, requested),
            (Action::Subscribe, false) => overlaps(rule, requested),
        }
    }
}

/// One line of the ACL file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub permit: bool,
    pub who: Who,
    pub actions: Actions,
    pub topics: Vec<RuleTopic>,
    /// Where it came from, for logs.
    pub line: usize,
}

/// The rules of one ACL file, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

impl RuleSet {
    /// The first matching rule's verdict, or `None` when no rule matches.
    /// `what` is a topic name (publish) or a filter without `$share/{group}/` (subscribe).
    pub fn decide(&self, client: &ClientInfo, action: Action, what: &str) -> Option<bool> {
        let levels: Vec<&str> = what.split('/').collect();
        self.rules
            .iter()
            .find(|rule| {
                rule.actions.include(action)
                    && rule.who.matches(client)
                    && rule.topics.iter().any(|t| t.applies(rule.permit, action, what, &levels, client))
            })
            .map(|rule| rule.permit)
    }
}
