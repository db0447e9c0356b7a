//! The catalogue: every normative statement of MQTT 3.1.1 and 5.0 that binds
//! a server, with a paraphrase in our own words and its status.
//!
//! `catalogue/ids-<version>.tsv` is the list of statement ids (facts, taken
//! from the standards); `catalogue/<version>.tsv` says for each id whether it
//! is `tested`, `untestable` (with why) or `not-yet`. Tests in this module
//! keep the two in step with each other and with the cases.

use crate::packets::Version;

/// Where a statement stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// At least one case checks it.
    Tested,
    /// A client cannot observe it; the note says why.
    Untestable,
    /// Observable, but no case yet.
    NotYet,
}

/// One catalogue row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    pub version: Version,
    pub id: &'static str,
    pub status: Status,
    pub paraphrase: &'static str,
    /// Why it is untestable, or a remark.
    pub note: &'static str,
}

const IDS_311: &str = include_str!("../catalogue/ids-3.1.1.tsv");
const IDS_5: &str = include_str!("../catalogue/ids-5.0.tsv");
const CAT_311: &str = include_str!("../catalogue/3.1.1.tsv");
const CAT_5: &str = include_str!("../catalogue/5.0.tsv");

/// The statement ids that bind a server, in the standard's order.
pub fn ids(version: Version) -> Vec<&'static str> {
    let text = match version {
        Version::V311 => IDS_311,
        Version::V5 => IDS_5,
    };
    text.lines().filter_map(|line| line.split('\t').next()).filter(|id| !id.is_empty()).collect()
}

/// The catalogue of one version. Rows that do not parse are reported by the tests.
pub fn entries(version: Version) -> Vec<Entry> {
    let text = match version {
        Version::V311 => CAT_311,
        Version::V5 => CAT_5,
    };
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let id = fields.next()?;
            let status = match fields.next()? {
                "tested" => Status::Tested,
                "untestable" => Status::Untestable,
                "not-yet" => Status::NotYet,
                _ => return None,
            };
            let paraphrase = fields.next().unwrap_or("");
            let note = fields.next().unwrap_or("");
            Some(Entry { version, id, status, paraphrase, note })
        })
        .collect()
}

/// Share of client-observable statements with a case, per version.
pub fn coverage(version: Version) -> (usize, usize) {
    let entries = entries(version);
    let tested = entries.iter().filter(|e| e.status == Status::Tested).count();
    let observable = entries.iter().filter(|e| e.status != Status::Untestable).count();
    (tested, observable)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::cases;

    const VERSIONS: [Version; 2] = [Version::V311, Version::V5];

    #[test]
    fn every_row_parses() {
        for (version, text) in [(Version::V311, CAT_311), (Version::V5, CAT_5)] {
            let rows = text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).count();
            assert_eq!(entries(version).len(), rows, "{version:?}: a row has a bad status or too few fields");
        }
    }

    #[test]
    fn catalogue_lists_exactly_the_server_statements_in_order() {
        for version in VERSIONS {
            let catalogue: Vec<&str> = entries(version).iter().map(|e| e.id).collect();
            assert_eq!(catalogue, ids(version), "{version:?}");
        }
    }

    #[test]
    fn id_lists_have_the_expected_sizes() {
        // 3.1.1: 67 server + 37 both; 5.0: 118 server + 84 both.
        assert_eq!(ids(Version::V311).len(), 104);
        assert_eq!(ids(Version::V5).len(), 202);
    }

    #[test]
    fn every_entry_has_a_paraphrase_and_untestable_ones_say_why() {
        for version in VERSIONS {
            for entry in entries(version) {
                assert!(!entry.paraphrase.trim().is_empty(), "{version:?} {} has no paraphrase", entry.id);
                if entry.status == Status::Untestable {
                    assert!(!entry.note.trim().is_empty(), "{version:?} {} is untestable without a reason", entry.id);
                }
            }
        }
    }

    #[test]
    fn tested_statements_are_exactly_those_some_case_checks() {
        let all = cases::all();
        for version in VERSIONS {
            let checked: BTreeSet<&str> =
                all.iter().filter(|c| c.version == version).flat_map(|c| c.statements.iter().copied()).collect();
            let known: BTreeSet<&str> = ids(version).into_iter().collect();
            let unknown: Vec<&&str> = checked.difference(&known).collect();
            assert!(
                unknown.is_empty(),
                "{version:?}: cases name statements that are not server statements: {unknown:?}"
            );
            let marked: BTreeSet<&str> =
                entries(version).iter().filter(|e| e.status == Status::Tested).map(|e| e.id).collect();
            let unmarked: Vec<&&str> = checked.difference(&marked).collect();
            let orphaned: Vec<&&str> = marked.difference(&checked).collect();
            assert!(unmarked.is_empty(), "{version:?}: checked by a case but not marked tested: {unmarked:?}");
            assert!(orphaned.is_empty(), "{version:?}: marked tested but no case checks them: {orphaned:?}");
        }
    }

    #[test]
    fn case_names_are_unique_per_version() {
        let mut seen = BTreeSet::new();
        for case in cases::all() {
            assert!(seen.insert((case.version, case.name)), "duplicate case {} at {:?}", case.name, case.version);
        }
    }
}
