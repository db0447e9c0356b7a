//! Tries over topic levels: one for wildcard filters (which filters match a
//! topic) and one for retained topics (which topics match a filter).

use crate::hash::AHashMap;
use bytestring::ByteString;

/// Wildcard topic filters, matched against topic names.
#[derive(Debug, Default)]
pub struct FilterTrie {
    root: FilterNode,
}

#[derive(Debug, Default)]
struct FilterNode {
    children: AHashMap<Box<str>, FilterNode>,
    plus: Option<Box<FilterNode>>,
    /// The filter that ends at this node (`a/b`).
    exact: Option<ByteString>,
    /// The filter that ends with `#` below this node (`a/b/#`).
    hash: Option<ByteString>,
}

impl FilterNode {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.plus.is_none() && self.exact.is_none() && self.hash.is_none()
    }
}

impl FilterTrie {
    pub fn insert(&mut self, filter: &ByteString) {
        let mut node = &mut self.root;
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            if level == "#" {
                node.hash = Some(filter.clone());
                return;
            }
            node = if level == "+" {
                node.plus.get_or_insert_with(Default::default)
            } else {
                node.children.entry(level.into()).or_default()
            };
            if levels.peek().is_none() {
                node.exact = Some(filter.clone());
            }
        }
    }

    pub fn remove(&mut self, filter: &str) {
        let levels: Vec<&str> = filter.split('/').collect();
        remove_filter(&mut self.root, &levels);
    }

    /// Calls `found` with every filter that matches `topic`.
    pub fn matches<'a>(&'a self, topic: &str, found: &mut impl FnMut(&'a ByteString)) {
        let levels: Vec<&str> = topic.split('/').collect();
        let dollar = topic.starts_with('$');
        walk(&self.root, &levels, 0, dollar, found);
    }
}

fn remove_filter(node: &mut FilterNode, levels: &[&str]) -> bool {
    match levels.split_first() {
        None => {}
        Some((&"#", _)) => node.hash = None,
        Some((&level, rest)) => {
            let child = if level == "+" { node.plus.as_deref_mut() } else { node.children.get_mut(level) };
            if let Some(child) = child {
                if rest.is_empty() {
                    child.exact = None;
                } else {
                    remove_filter(child, rest);
                }
                if child.is_empty() {
                    if level == "+" {
                        node.plus = None;
                    } else {
                        node.children.remove(level);
                    }
                }
            }
        }
    }
    node.is_empty()
}

fn walk<'a>(node: &'a FilterNode, levels: &[&str], depth: usize, dollar: bool, found: &mut impl FnMut(&'a ByteString)) {
    // [MQTT-4.7.2-1]: a wildcard in the first level does not match a `$` topic.
    let wildcard_allowed = !(depth == 0 && dollar);
    if wildcard_allowed && let Some(filter) = &node.hash {
        found(filter);
    }
    let Some((level, rest)) = levels.split_first() else {
        if let Some(filter) = &node.exact {
            found(filter);
        }
        return;
    };
    if let Some(child) = node.children.get(*level) {
        walk(child, rest, depth + 1, dollar, found);
    }
    if wildcard_allowed && let Some(child) = &node.plus {
        walk(child, rest, depth + 1, dollar, found);
    }
}

/// Retained topics, matched against a filter.
#[derive(Debug)]
pub struct TopicTrie<V> {
    root: TopicNode<V>,
    len: usize,
}

#[derive(Debug)]
struct TopicNode<V> {
    children: AHashMap<Box<str>, TopicNode<V>>,
    value: Option<V>,
}

impl<V> Default for TopicNode<V> {
    fn default() -> Self {
        Self { children: AHashMap::new(), value: None }
    }
}

impl<V> Default for TopicTrie<V> {
    fn default() -> Self {
        Self { root: TopicNode::default(), len: 0 }
    }
}

impl<V> TopicTrie<V> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, topic: &str) -> Option<&V> {
        let mut node = &self.root;
        for level in topic.split('/') {
            node = node.children.get(level)?;
        }
        node.value.as_ref()
    }

    /// Sets the value of `topic`, returning the previous one.
    pub fn insert(&mut self, topic: &str, value: V) -> Option<V> {
        let mut node = &mut self.root;
        for level in topic.split('/') {
            node = node.children.entry(level.into()).or_default();
        }
        let previous = node.value.replace(value);
        if previous.is_none() {
            self.len += 1;
        }
        previous
    }

    pub fn remove(&mut self, topic: &str) -> Option<V> {
        let levels: Vec<&str> = topic.split('/').collect();
        let removed = remove_topic(&mut self.root, &levels);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// Calls `found` with every value whose topic matches `filter`.
    pub fn matches<'a>(&'a self, filter: &str, found: &mut impl FnMut(&'a V)) {
        let levels: Vec<&str> = filter.split('/').collect();
        match_filter(&self.root, &levels, true, found);
    }
}

fn remove_topic<V>(node: &mut TopicNode<V>, levels: &[&str]) -> Option<V> {
    let Some((level, rest)) = levels.split_first() else {
        return node.value.take();
    };
    let child = node.children.get_mut(*level)?;
    let removed = remove_topic(child, rest);
    if child.value.is_none() && child.children.is_empty() {
        node.children.remove(*level);
    }
    removed
}

fn match_filter<'a, V>(node: &'a TopicNode<V>, levels: &[&str], root: bool, found: &mut impl FnMut(&'a V)) {
    let Some((level, rest)) = levels.split_first() else {
        if let Some(value) = &node.value {
            found(value);
        }
        return;
    };
    match *level {
        "#" => {
            // `a/#` matches `a` itself too.
            if !root && let Some(value) = &node.value {
                found(value);
            }
            for (name, child) in &node.children {
                if !(root && name.starts_with('$')) {
                    every_value(child, found);
                }
            }
        }
        "+" => {
            for (name, child) in &node.children {
                if !(root && name.starts_with('$')) {
                    match_filter(child, rest, false, found);
                }
            }
        }
        literal => {
            if let Some(child) = node.children.get(literal) {
                match_filter(child, rest, false, found);
            }
        }
    }
}

fn every_value<'a, V>(node: &'a TopicNode<V>, found: &mut impl FnMut(&'a V)) {
    if let Some(value) = &node.value {
        found(value);
    }
    for child in node.children.values() {
        every_value(child, found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters_matching(filters: &[&str], topic: &str) -> Vec<String> {
        let mut trie = FilterTrie::default();
        for f in filters {
            trie.insert(&ByteString::from(*f));
        }
        let mut out = Vec::new();
        trie.matches(topic, &mut |f| out.push(f.to_string()));
        out.sort();
        out
    }

    fn topics_matching(topics: &[&str], filter: &str) -> Vec<String> {
        let mut trie = TopicTrie::default();
        for t in topics {
            trie.insert(t, t.to_string());
        }
        let mut out = Vec::new();
        trie.matches(filter, &mut |t: &String| out.push(t.clone()));
        out.sort();
        out
    }

    #[test]
    fn hash_matches_parent_and_children() {
        assert_eq!(filters_matching(&["a/#"], "a"), ["a/#"]);
        assert_eq!(filters_matching(&["a/#"], "a/b/c"), ["a/#"]);
        assert_eq!(filters_matching(&["#"], "a/b"), ["#"]);
    }

    #[test]
    fn plus_matches_one_level_including_empty() {
        assert_eq!(filters_matching(&["a/+"], "a/b"), ["a/+"]);
        assert_eq!(filters_matching(&["a/+"], "a/"), ["a/+"]);
        assert!(filters_matching(&["a/+"], "a/b/c").is_empty());
        assert!(filters_matching(&["a/+"], "a").is_empty());
        assert_eq!(filters_matching(&["+/+"], "/x"), ["+/+"]);
    }

    #[test]
    fn dollar_topics_escape_first_level_wildcards() {
        assert!(filters_matching(&["#", "+/x"], "$SYS/x").is_empty());
        assert_eq!(filters_matching(&["$SYS/#", "$SYS/+"], "$SYS/x"), ["$SYS/#", "$SYS/+"]);
        assert_eq!(topics_matching(&["$SYS/x", "a"], "#"), ["a"]);
        assert_eq!(topics_matching(&["$SYS/x", "a/x"], "+/x"), ["a/x"]);
        assert_eq!(topics_matching(&["$SYS/x"], "$SYS/#"), ["$SYS/x"]);
    }

    #[test]
    fn removing_a_filter_leaves_the_others() {
        let mut trie = FilterTrie::default();
        for f in ["a/+", "a/#", "a/+/c"] {
            trie.insert(&ByteString::from(f));
        }
        trie.remove("a/+");
        let mut out = Vec::new();
        trie.matches("a/b", &mut |f| out.push(f.to_string()));
        assert_eq!(out, ["a/#"]);
        trie.remove("a/#");
        trie.remove("a/+/c");
        assert!(trie.root.is_empty());
    }

    #[test]
    fn retained_topics_match_filters() {
        let topics = ["a", "a/b", "a/b/c", "a/c", "b"];
        assert_eq!(topics_matching(&topics, "a/#"), ["a", "a/b", "a/b/c", "a/c"]);
        assert_eq!(topics_matching(&topics, "a/+"), ["a/b", "a/c"]);
        assert_eq!(topics_matching(&topics, "+"), ["a", "b"]);
        assert_eq!(topics_matching(&topics, "a/b"), ["a/b"]);
    }

    #[test]
    fn topic_trie_counts_and_prunes() {
        let mut trie = TopicTrie::default();
        trie.insert("a/b", 1);
        trie.insert("a/b", 2);
        trie.insert("a", 3);
        assert_eq!(trie.len(), 2);
        assert_eq!(trie.remove("a/b"), Some(2));
        assert_eq!(trie.remove("a/b"), None);
        assert_eq!(trie.get("a"), Some(&3));
        assert_eq!(trie.len(), 1);
    }
}
