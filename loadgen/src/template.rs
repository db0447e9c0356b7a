//! Topic templates in emqtt-bench's notation: `%i` the client's number, `%c`
//! its client id, `%u` its username, `%s` the message's sequence number and
//! `%rand_N` a random number in 1..=N.

use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Index,
    ClientId,
    Username,
    Sequence,
    Random(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// What a template refers to, for one client and one message.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a> {
    pub index: u64,
    pub client_id: &'a str,
    pub username: &'a str,
    pub sequence: u64,
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('%') {
            literal.push_str(&rest[..at]);
            rest = &rest[at + 1..];
            let (part, used) = if let Some(after) = rest.strip_prefix("rand_") {
                let digits = after.bytes().take_while(u8::is_ascii_digit).count();
                let n: u64 = after[..digits]
                    .parse()
                    .map_err(|_| format!("`%rand_N` in {text:?} needs a number N >= 1 after `%rand_`"))?;
                if n == 0 {
                    return Err(format!("`%rand_0` in {text:?}: N must be at least 1"));
                }
                (Part::Random(n), 5 + digits)
            } else {
                match rest.chars().next() {
                    Some('i') => (Part::Index, 1),
                    Some('c') => (Part::ClientId, 1),
                    Some('u') => (Part::Username, 1),
                    Some('s') => (Part::Sequence, 1),
                    Some('%') => {
                        literal.push('%');
                        rest = &rest[1..];
                        continue;
                    }
                    other => {
                        return Err(format!(
                            "unknown placeholder `%{}` in {text:?} (known: %i %c %u %s %rand_N, and %% for a percent sign)",
                            other.map(String::from).unwrap_or_default()
                        ));
                    }
                }
            };
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(part);
            rest = &rest[used..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Self { parts })
    }

    /// True when the text differs from message to message (`%s`, `%rand_N`),
    /// so that it must be rendered per publish rather than once per client.
    pub fn varies_per_message(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Sequence | Part::Random(_)))
    }

    /// Appends the rendered text to `out`; `random(n)` must return a number in 1..=n.
    pub fn render(&self, vars: &Vars<'_>, random: &mut impl FnMut(u64) -> u64, out: &mut String) {
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Index => {
                    let _ = write!(out, "{}", vars.index);
                }
                Part::ClientId => out.push_str(vars.client_id),
                Part::Username => out.push_str(vars.username),
                Part::Sequence => {
                    let _ = write!(out, "{}", vars.sequence);
                }
                Part::Random(n) => {
                    let _ = write!(out, "{}", random(*n));
                }
            }
        }
    }

    pub fn render_string(&self, vars: &Vars<'_>, random: &mut impl FnMut(u64) -> u64) -> String {
        let mut out = String::new();
        self.render(vars, random, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(template: &str, expected: &str) {
        let vars = Vars { index: 7, client_id: "c7", username: "u", sequence: 42 };
        let t = Template::parse(template).expect("valid template");
        assert_eq!(t.render_string(&vars, &mut |n| n), expected);
    }

    #[test]
    fn placeholders_are_replaced() {
        check("bench/%i", "bench/7");
        check("%c/%u/%s", "c7/u/42");
        check("t/%rand_10/x", "t/10/x");
        check("100%%", "100%");
        check("plain", "plain");
    }

    #[test]
    fn unknown_placeholders_and_bad_rand_are_errors() {
        assert!(Template::parse("t/%x").is_err());
        assert!(Template::parse("t/%rand_").is_err());
        assert!(Template::parse("t/%rand_0").is_err());
        assert!(Template::parse("t/%").is_err());
    }

    #[test]
    fn only_sequence_and_random_vary_per_message() {
        assert!(!Template::parse("a/%i/%c").expect("valid").varies_per_message());
        assert!(Template::parse("a/%s").expect("valid").varies_per_message());
        assert!(Template::parse("a/%rand_3").expect("valid").varies_per_message());
    }
}
