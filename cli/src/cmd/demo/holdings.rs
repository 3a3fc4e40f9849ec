//! Who holds what in the demo federation: the member × advisory matrix, what TLP policy says
//! each member may hold, and whether the two agree.
//!
//! Owns: the holdings matrix built from each member's List answer, the comparison with
//! `tanoa_daemon::policy::may_hold` (the one place TLP rules live), the problems that make
//! `demo --once` fail, the live event lines, and the matrix table and JSON.
//! Must never: talk to a daemon (callers feed it List answers) or restate a TLP rule itself.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};
use tanoa_daemon::model::Tlp;
use tanoa_daemon::policy::{self, ItemScope};
use tanoa_proto::v1 as pb;

use crate::output;

/// An advisory the demo published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoAdvisory {
    /// Advisory id.
    pub advisory_id: String,
    /// Origin member id.
    pub origin: String,
    /// Item id (hex) of the revision published.
    pub item_id: String,
    /// Revision.
    pub revision: u64,
    /// TLP label as stored by the origin.
    pub tlp: Tlp,
    /// Audience as stored by the origin.
    pub audience: Vec<String>,
    /// Title.
    pub title: String,
}

impl DemoAdvisory {
    /// `origin/advisory-id`.
    pub fn qualified_id(&self) -> String {
        format!("{}/{}", self.origin, self.advisory_id)
    }

    /// Whether policy lets `member` hold it.
    pub fn may_hold(&self, member: &str) -> bool {
        policy::may_hold(
            &ItemScope::new(&self.origin, self.tlp, &self.audience),
            member,
        )
        .allowed
    }

    /// `GREEN` or `AMBER → au-acsc, nz-ncsc`.
    pub fn label(&self) -> String {
        if self.audience.is_empty() {
            self.tlp.as_str().to_string()
        } else {
            format!("{} → {}", self.tlp.as_str(), self.audience.join(", "))
        }
    }
}

/// What one member holds, as far as the demo knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberHoldings {
    /// Member id.
    pub member: String,
    /// Display name.
    pub name: String,
    /// Item ids held (latest revisions, from List).
    pub items: BTreeSet<String>,
    /// Advisories held that the demo did not publish (`origin/id`).
    pub others: Vec<String>,
    /// The last List request failed with this message (`None` = answered).
    pub error: Option<String>,
}

/// The member × advisory matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matrix {
    /// Published advisories (columns).
    pub advisories: Vec<DemoAdvisory>,
    /// Members (rows).
    pub members: Vec<MemberHoldings>,
}

impl Matrix {
    /// An empty matrix for these members (`(id, name)`) and advisories.
    pub fn new(members: &[(String, String)], advisories: Vec<DemoAdvisory>) -> Matrix {
        Matrix {
            advisories,
            members: members
                .iter()
                .map(|(id, name)| MemberHoldings {
                    member: id.clone(),
                    name: name.clone(),
                    error: Some("not asked yet".into()),
                    ..MemberHoldings::default()
                })
                .collect(),
        }
    }

    /// Records member `i`'s List answer.
    pub fn record(&mut self, i: usize, list: &pb::ListResponse) {
        let known: BTreeSet<&str> = self.advisories.iter().map(|a| a.item_id.as_str()).collect();
        let Some(m) = self.members.get_mut(i) else {
            return;
        };
        m.items = list.advisories.iter().map(|s| s.item_id.clone()).collect();
        // Roster items (proposals, approvals, versions) are the membership, not advisories.
        m.others = list
            .advisories
            .iter()
            .filter(|s| {
                !known.contains(s.item_id.as_str())
                    && !tanoa_core::roster::is_carrier_id(&s.advisory_id)
            })
            .map(|s| format!("{}/{} r{}", s.origin, s.advisory_id, s.revision))
            .collect();
        m.error = None;
    }

    /// Records that member `i` did not answer List.
    pub fn record_error(&mut self, i: usize, error: String) {
        if let Some(m) = self.members.get_mut(i) {
            m.error = Some(error);
        }
    }

    /// Whether member `i` holds advisory `a`.
    pub fn held(&self, i: usize, a: usize) -> bool {
        match (self.members.get(i), self.advisories.get(a)) {
            (Some(m), Some(adv)) => m.items.contains(&adv.item_id),
            _ => false,
        }
    }

    /// Whether policy lets member `i` hold advisory `a`.
    pub fn expected(&self, i: usize, a: usize) -> bool {
        match (self.members.get(i), self.advisories.get(a)) {
            (Some(m), Some(adv)) => adv.may_hold(&m.member),
            _ => false,
        }
    }

    /// Every member answered and holds exactly what policy allows, and nothing else.
    pub fn converged(&self) -> bool {
        self.problems().is_empty()
    }

    /// Held cells and allowed cells: (held and allowed, allowed).
    pub fn progress(&self) -> (usize, usize) {
        let mut done = 0;
        let mut want = 0;
        for i in 0..self.members.len() {
            for a in 0..self.advisories.len() {
                if self.expected(i, a) {
                    want += 1;
                    if self.held(i, a) {
                        done += 1;
                    }
                }
            }
        }
        (done, want)
    }

    /// What differs from policy, one sentence each (empty = converged).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, m) in self.members.iter().enumerate() {
            if let Some(e) = &m.error {
                out.push(format!("{}: its holdings are unknown ({e})", m.member));
                continue;
            }
            for (a, adv) in self.advisories.iter().enumerate() {
                match (self.expected(i, a), self.held(i, a)) {
                    (true, false) => out.push(format!(
                        "{} does not hold {} ({}), which TLP allows it to hold",
                        m.member,
                        adv.qualified_id(),
                        adv.label()
                    )),
                    (false, true) => out.push(format!(
                        "{} HOLDS {} ({}), which TLP forbids",
                        m.member,
                        adv.qualified_id(),
                        adv.label()
                    )),
                    _ => {}
                }
            }
            for o in &m.others {
                out.push(format!(
                    "{} holds {o}, which the demo did not publish",
                    m.member
                ));
            }
        }
        out
    }

    /// What changed from `before` to `self`, one line each (`to-cert now holds …`).
    pub fn changes_since(&self, before: &Matrix) -> Vec<String> {
        let mut out = Vec::new();
        for (i, m) in self.members.iter().enumerate() {
            for (a, adv) in self.advisories.iter().enumerate() {
                let (was, is) = (before.held(i, a), self.held(i, a));
                if was == is {
                    continue;
                }
                let verb = match (is, self.expected(i, a)) {
                    (true, true) => "now holds",
                    (true, false) => "HOLDS (TLP forbids it!)",
                    (false, _) => "no longer holds",
                };
                out.push(format!(
                    "{:<8} {verb} {} ({})",
                    m.member,
                    adv.advisory_id,
                    adv.label()
                ));
            }
        }
        out
    }

    /// One check line per advisory: `(text, ok)`, e.g. `apt40 (GREEN): allowed on all 5
    /// members, held by all 5`.
    pub fn check_lines(&self) -> Vec<(String, bool)> {
        let all = self.members.len();
        let answered = self.members.iter().all(|m| m.error.is_none());
        let names = |f: &dyn Fn(usize) -> bool| -> Vec<String> {
            (0..all)
                .filter(|i| f(*i))
                .filter_map(|i| self.members.get(i).map(|m| m.member.clone()))
                .collect()
        };
        let describe = |v: &[String]| -> String {
            if v.len() == all {
                format!("all {all} members")
            } else if v.is_empty() {
                "nobody".into()
            } else {
                format!("{} only", v.join(", "))
            }
        };
        self.advisories
            .iter()
            .enumerate()
            .map(|(a, adv)| {
                let allowed = names(&|i| self.expected(i, a));
                let held = names(&|i| self.held(i, a));
                (
                    format!(
                        "{} ({}): TLP allows {}; held by {}",
                        adv.advisory_id,
                        adv.label(),
                        describe(&allowed),
                        describe(&held)
                    ),
                    answered && allowed == held,
                )
            })
            .collect()
    }

    fn cell(&self, i: usize, a: usize) -> String {
        let unknown = self.members.get(i).is_some_and(|m| m.error.is_some());
        match (self.expected(i, a), self.held(i, a)) {
            _ if unknown => "? no answer".into(),
            (true, true) => "✔ holds".into(),
            (true, false) => "… on its way".into(),
            (false, true) => "✘ HOLDS (forbidden)".into(),
            (false, false) => "· never sent (TLP)".into(),
        }
    }

    /// The matrix as a table: one row per member, one column per advisory.
    pub fn table(&self) -> String {
        let mut header = vec!["MEMBER".to_string()];
        for adv in &self.advisories {
            header.push(format!("{}\n{}", adv.advisory_id, adv.label()));
        }
        let rows = self
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let mut row = vec![format!("{} ({})", m.member, m.name)];
                row.extend((0..self.advisories.len()).map(|a| self.cell(i, a)));
                row
            })
            .collect();
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        output::table(&header, rows)
    }

    /// JSON: `{"advisories": [...], "holdings": [...]}` (see cli/README.md).
    pub fn to_json(&self) -> Value {
        let advisories: Vec<Value> = self
            .advisories
            .iter()
            .enumerate()
            .map(|(a, adv)| {
                let pick = |f: &dyn Fn(usize) -> bool| -> Vec<&str> {
                    self.members
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| f(*i))
                        .map(|(_, m)| m.member.as_str())
                        .collect()
                };
                let allowed = pick(&|i| self.expected(i, a));
                let holders = pick(&|i| self.held(i, a));
                let answered = self.members.iter().all(|m| m.error.is_none());
                json!({
                    "ok": answered && allowed == holders,
                    "advisory_id": adv.advisory_id,
                    "origin": adv.origin,
                    "item_id": adv.item_id,
                    "revision": adv.revision,
                    "tlp": adv.tlp.as_str(),
                    "audience": adv.audience,
                    "title": adv.title,
                    "allowed_holders": allowed,
                    "holders": holders,
                })
            })
            .collect();
        let holdings: Vec<Value> = self
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let mut holds = Map::new();
                let mut allowed = Map::new();
                for (a, adv) in self.advisories.iter().enumerate() {
                    holds.insert(adv.advisory_id.clone(), Value::Bool(self.held(i, a)));
                    allowed.insert(adv.advisory_id.clone(), Value::Bool(self.expected(i, a)));
                }
                json!({
                    "member": m.member,
                    "name": m.name,
                    "holds": holds,
                    "allowed": allowed,
                    "others": m.others,
                    "error": m.error,
                })
            })
            .collect();
        json!({"advisories": advisories, "holdings": holdings})
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::cmd::demo::federation::MEMBERS;

    fn adv(id: &str, tlp: Tlp, audience: &[&str], item: &str) -> DemoAdvisory {
        DemoAdvisory {
            advisory_id: id.into(),
            origin: "ws-cert".into(),
            item_id: item.repeat(32),
            revision: 1,
            tlp,
            audience: audience.iter().map(|s| (*s).to_string()).collect(),
            title: format!("{id} title"),
        }
    }

    fn matrix() -> Matrix {
        let members: Vec<(String, String)> = MEMBERS
            .iter()
            .map(|(id, name)| ((*id).to_string(), (*name).to_string()))
            .collect();
        Matrix::new(
            &members,
            vec![
                adv("apt40-blue-pacific", Tlp::Green, &[], "aa"),
                adv("apt40-amber", Tlp::Amber, &["au-acsc", "nz-ncsc"], "bb"),
            ],
        )
    }

    fn list(items: &[&str]) -> pb::ListResponse {
        pb::ListResponse {
            advisories: items
                .iter()
                .map(|i| pb::AdvisorySummary {
                    item_id: i.repeat(32),
                    advisory_id: format!("adv-{i}"),
                    origin: "ws-cert".into(),
                    revision: 1,
                    ..Default::default()
                })
                .collect(),
            truncated: false,
            ..Default::default()
        }
    }

    #[test]
    fn policy_decides_the_expected_holders() {
        let m = matrix();
        let green: Vec<bool> = (0..5).map(|i| m.expected(i, 0)).collect();
        assert_eq!(green, [true; 5], "GREEN: every member");
        let amber: Vec<bool> = (0..5).map(|i| m.expected(i, 1)).collect();
        // ws-cert (origin), to-cert, fj-cert, au-acsc, nz-ncsc
        assert_eq!(amber, [true, false, false, true, true]);
    }

    #[test]
    fn converges_only_when_holdings_match_policy_exactly() {
        let mut m = matrix();
        assert!(!m.converged(), "nobody answered yet");
        assert_eq!(m.problems().len(), 5);
        let before = m.clone();
        for (i, items) in [
            vec!["aa", "bb"],
            vec!["aa"],
            vec![],
            vec!["aa", "bb"],
            vec!["bb"],
        ]
        .iter()
        .enumerate()
        {
            m.record(i, &list(items));
        }
        assert_eq!(m.progress(), (6, 8));
        let problems = m.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("fj-cert does not hold ws-cert/apt40-blue-pacific"));
        assert!(problems[1].starts_with("nz-ncsc does not hold ws-cert/apt40-blue-pacific"));
        let changes = m.changes_since(&before);
        assert!(changes.contains(&"to-cert  now holds apt40-blue-pacific (GREEN)".to_string()));
        assert!(
            changes
                .contains(&"au-acsc  now holds apt40-amber (AMBER → au-acsc, nz-ncsc)".to_string())
        );

        m.record(2, &list(&["aa"]));
        m.record(4, &list(&["aa", "bb"]));
        assert!(m.converged(), "{:?}", m.problems());
        assert_eq!(
            m.check_lines(),
            [
                (
                    "apt40-blue-pacific (GREEN): TLP allows all 5 members; held by all 5 members"
                        .to_string(),
                    true
                ),
                (
                    "apt40-amber (AMBER → au-acsc, nz-ncsc): TLP allows ws-cert, au-acsc, \
                     nz-ncsc only; held by ws-cert, au-acsc, nz-ncsc only"
                        .to_string(),
                    true
                ),
            ]
        );
        let table = m.table();
        assert!(table.contains("ws-cert (Samoa CERT)"), "{table}");
        assert!(table.contains("AMBER → au-acsc, nz-ncsc"));
        assert!(table.contains("✔ holds"));
        assert!(table.contains("· never sent (TLP)"));
        assert!(!table.contains("forbidden"));

        // A leak: to-cert gets the AMBER item.
        m.record(1, &list(&["aa", "bb"]));
        assert!(!m.converged());
        assert_eq!(
            m.problems(),
            ["to-cert HOLDS ws-cert/apt40-amber (AMBER → au-acsc, nz-ncsc), which TLP forbids"]
        );
        assert!(m.table().contains("✘ HOLDS (forbidden)"));
        assert!(!m.check_lines()[1].1);
        assert!(
            m.check_lines()[1]
                .0
                .ends_with("held by ws-cert, to-cert, au-acsc, nz-ncsc only")
        );
        // Something the demo did not publish, and a member that does not answer.
        m.record(1, &list(&["aa", "cc"]));
        assert_eq!(
            m.problems(),
            ["to-cert holds ws-cert/adv-cc r1, which the demo did not publish"]
        );
        m.record_error(3, "deadline exceeded".into());
        assert!(m.problems()[1].starts_with("au-acsc: its holdings are unknown"));
        assert!(m.table().contains("? no answer"));
    }

    #[test]
    fn json_has_holders_allowed_holders_and_each_members_row() {
        let mut m = matrix();
        for (i, items) in [
            vec!["aa", "bb"],
            vec!["aa"],
            vec!["aa"],
            vec!["aa", "bb"],
            vec!["aa", "bb"],
        ]
        .iter()
        .enumerate()
        {
            m.record(i, &list(items));
        }
        let v = m.to_json();
        assert_eq!(v["advisories"][1]["tlp"], "AMBER");
        assert_eq!(
            v["advisories"][1]["allowed_holders"],
            json!(["ws-cert", "au-acsc", "nz-ncsc"])
        );
        assert_eq!(
            v["advisories"][1]["holders"],
            json!(["ws-cert", "au-acsc", "nz-ncsc"])
        );
        assert_eq!(v["advisories"][0]["holders"].as_array().unwrap().len(), 5);
        assert_eq!(v["advisories"][0]["ok"], true);
        assert_eq!(v["advisories"][1]["ok"], true);
        assert_eq!(v["holdings"][1]["member"], "to-cert");
        assert_eq!(v["holdings"][1]["holds"]["apt40-amber"], false);
        assert_eq!(v["holdings"][1]["allowed"]["apt40-amber"], false);
        assert_eq!(v["holdings"][3]["holds"]["apt40-amber"], true);
        assert_eq!(v["holdings"][3]["error"], Value::Null);
    }
}
