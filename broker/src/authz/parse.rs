//! The ACL file format (README, "Authorization"): one rule per line,
//! `allow|deny WHO ACTION TOPIC...`; blank lines and lines whose first
//! non-blank character is `#` are ignored. Tokens are separated by blanks; a
//! token in double quotes may hold blanks (`\"` and `\\` escape) and is never
//! a keyword.

use std::fmt;
use std::path::{Path, PathBuf};

use mqtt_codec::topic::validate_topic_filter;

use super::cidr::Cidr;
use super::rules::{Actions, Level, Part, Rule, RuleSet, RuleTopic, Who};

/// Longest ACL file read, in bytes: rules are checked under the broker's
/// lock, so a runaway file should fail loudly rather than slow every publish.
const ACL_FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// A file that cannot be used, with where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclError {
    pub path: PathBuf,
    /// 1-based; `None` when the whole file is at fault (cannot be read).
    pub line: Option<usize>,
    pub message: String,
}

/// `ACL file PATH line N: MESSAGE`, or without the line when the whole file is at fault.
impl fmt::Display for AclError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "ACL file {} line {line}: {}", self.path.display(), self.message),
            None => write!(f, "ACL file {}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for AclError {}

/// Reads and parses an ACL file.
pub fn load(path: &Path) -> Result<RuleSet, AclError> {
    let whole = |message: String| AclError { path: path.to_owned(), line: None, message };
    let size = std::fs::metadata(path).map_err(|e| whole(format!("cannot read: {e}")))?.len();
    if size > ACL_FILE_BYTES_MAX {
        return Err(whole(format!("{size} bytes is more than the {ACL_FILE_BYTES_MAX} an ACL file may have")));
    }
    let text = std::fs::read_to_string(path).map_err(|e| whole(format!("cannot read: {e}")))?;
    parse(&text).map_err(|(line, message)| AclError { path: path.to_owned(), line: Some(line), message })
}

/// Parses ACL text; an error is (1-based line, message). Empty text is no rules.
pub fn parse(text: &str) -> Result<RuleSet, (usize, String)> {
    let mut rules = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let tokens = tokenize(trimmed).map_err(|e| (number, e))?;
        rules.push(parse_rule(&tokens, number).map_err(|e| (number, e))?);
    }
    Ok(RuleSet { rules })
}

#[derive(Debug, PartialEq, Eq)]
struct Token {
    text: String,
    quoted: bool,
}

impl Token {
    fn keyword(&self) -> Option<&str> {
        (!self.quoted).then_some(self.text.as_str())
    }
}

fn tokenize(line: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '"' {
            chars.next();
            let mut text = String::new();
            loop {
                match chars.next() {
                    None => return Err("unterminated quoted token".into()),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(e @ ('"' | '\\')) => text.push(e),
                        _ => return Err("in a quoted token only \\\" and \\\\ are escapes".into()),
                    },
                    Some(c) => text.push(c),
                }
            }
            if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                return Err(format!("a blank must follow the quoted token \"{text}\""));
            }
            tokens.push(Token { text, quoted: true });
            continue;
        }
        let mut text = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            if c == '"' {
                return Err(format!("a quote inside {text}\"...: quote the whole token"));
            }
            text.push(c);
            chars.next();
        }
        tokens.push(Token { text, quoted: false });
    }
    Ok(tokens)
}

fn parse_rule(tokens: &[Token], line: usize) -> Result<Rule, String> {
    let [permit, who, action, topics @ ..] = tokens else {
        return Err("expected `allow|deny WHO ACTION TOPIC...`".into());
    };
    let permit = match permit.keyword() {
        Some("allow") => true,
        Some("deny") => false,
        _ => return Err(format!("rule starts with {:?}: expected allow or deny", permit.text)),
    };
    let who = parse_who(who)?;
    let actions = match action.keyword() {
        Some("publish") => Actions::Publish,
        Some("subscribe") => Actions::Subscribe,
        Some("all") => Actions::All,
        _ => return Err(format!("unknown action {:?}: expected publish, subscribe or all", action.text)),
    };
    if topics.is_empty() {
        return Err("no topic filter after the action".into());
    }
    let mut parsed = Vec::new();
    let mut rest = topics.iter();
    while let Some(token) = rest.next() {
        if token.keyword() == Some("eq") {
            let Some(filter) = rest.next() else { return Err("`eq` needs a filter after it".into()) };
            parsed.push(parse_eq(&filter.text)?);
        } else {
            parsed.push(parse_filter(&token.text)?);
        }
    }
    Ok(Rule { permit, who, actions, topics: parsed, line })
}

fn parse_who(token: &Token) -> Result<Who, String> {
    if token.keyword() == Some("all") {
        return Ok(Who::All);
    }
    let nonempty = |value: &str, what: &str| {
        if value.is_empty() { Err(format!("{what}: needs a value")) } else { Ok(value.into()) }
    };
    if let Some(name) = token.text.strip_prefix("user:") {
        Ok(Who::User(nonempty(name, "user")?))
    } else if let Some(id) = token.text.strip_prefix("client:") {
        Ok(Who::Client(nonempty(id, "client")?))
    } else if let Some(block) = token.text.strip_prefix("ip:") {
        Cidr::parse(block).map(Who::Ip).map_err(|e| format!("ip: {e}"))
    } else {
        Err(format!("unknown subject {:?}: expected user:NAME, client:ID, ip:CIDR or all", token.text))
    }
}

fn check_not_shared(filter: &str) -> Result<(), String> {
    if filter.starts_with("$share/") {
        return Err(format!(
            "{filter:?}: rules name the topic filter; a $share/GROUP/FILTER subscription is checked on FILTER"
        ));
    }
    Ok(())
}

fn parse_eq(filter: &str) -> Result<RuleTopic, String> {
    check_not_shared(filter)?;
    if filter.contains("${") {
        return Err(format!("eq {filter:?}: eq filters are literal, placeholders are not filled in"));
    }
    validate_topic_filter(filter).map_err(|v| format!("eq {filter:?} is not a topic filter: {}", v.message))?;
    Ok(RuleTopic::Eq(filter.into()))
}

fn parse_filter(filter: &str) -> Result<RuleTopic, String> {
    check_not_shared(filter)?;
    let levels = filter.split('/').map(parse_level).collect::<Result<Vec<Level>, String>>()?;
    // Checked with every placeholder standing for one plain level piece.
    let shape: Vec<String> = levels
        .iter()
        .map(|level| match level {
            Level::Exact(text) => text.to_string(),
            Level::Template(parts) => parts
                .iter()
                .map(|p| match p {
                    Part::Text(t) => &**t,
                    Part::Username | Part::ClientId => "x",
                })
                .collect(),
        })
        .collect();
    let shape = shape.join("/");
    validate_topic_filter(&shape).map_err(|v| format!("{filter:?} is not a topic filter: {}", v.message))?;
    if levels.iter().any(|l| matches!(l, Level::Template(_))) {
        return Ok(RuleTopic::Template(levels));
    }
    Ok(RuleTopic::Filter(filter.split('/').map(Box::from).collect()))
}

fn parse_level(level: &str) -> Result<Level, String> {
    if !level.contains("${") {
        return Ok(Level::Exact(level.into()));
    }
    let mut parts = Vec::new();
    let mut rest = level;
    while let Some(start) = rest.find("${") {
        if start > 0 {
            parts.push(Part::Text(rest[..start].into()));
        }
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("unclosed placeholder in {level:?}"));
        };
        parts.push(match &after[..end] {
            "username" => Part::Username,
            "clientid" => Part::ClientId,
            other => return Err(format!("unknown placeholder ${{{other}}}: expected ${{username}} or ${{clientid}}")),
        });
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.into()));
    }
    Ok(Level::Template(parts))
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
