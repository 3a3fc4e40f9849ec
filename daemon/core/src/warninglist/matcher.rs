//! The compiled form of every loaded list: one index per list type, shared by all lists of that
//! type, so screening a value costs a handful of hash lookups whatever the number of lists.
//!
//! Owns: string lists (one hash map), hostname lists (exact map + suffix map walked at each
//! dot), CIDR lists (one hash map per prefix length in use, longest first, plus the exact-text
//! fallback for values that are not addresses), substring lists (one Aho-Corasick automaton),
//! regex lists (one `RegexSet`, applied only to the kinds its lists' `matching_attributes` name).
//! Must never: allocate per list when screening, or decide what a match means (that is
//! `python`, which mirrors the reference implementation).

use std::collections::HashMap;

use aho_corasick::AhoCorasick;
use regex::RegexSet;

use super::python::{self, PyNet};
use crate::model::IndicatorKind;

/// Index of a list in `WarningLists::lists` (sorted by slug).
pub(crate) type ListId = u16;

/// Largest compiled regex set (bytes of automaton); MISP's regex lists are a few dozen entries.
const REGEX_SIZE_LIMIT: usize = 64 * 1024 * 1024;

/// Map from a key to the lists holding it.
type Owners<K> = HashMap<K, Vec<ListId>>;

fn add<K: std::hash::Hash + Eq>(map: &mut Owners<K>, key: K, list: ListId) {
    let v = map.entry(key).or_default();
    if v.last() != Some(&list) {
        v.push(list);
    }
}

/// One prefix length in use and the networks of that length.
#[derive(Debug, Default)]
struct NetTable<T> {
    /// (prefix length, network bits -> lists), longest prefix first.
    by_len: Vec<(u8, Owners<T>)>,
}

impl<T: std::hash::Hash + Eq + Copy> NetTable<T> {
    fn insert(&mut self, bits: T, len: u8, list: ListId) {
        let pos = match self.by_len.binary_search_by(|(l, _)| len.cmp(l)) {
            Ok(p) => p,
            Err(p) => {
                self.by_len.insert(p, (len, HashMap::new()));
                p
            }
        };
        add(&mut self.by_len[pos].1, bits, list);
    }

    fn lookup(&self, mask: impl Fn(u8) -> T, out: &mut Vec<ListId>) {
        for (len, map) in &self.by_len {
            if let Some(ids) = map.get(&mask(*len)) {
                out.extend_from_slice(ids);
            }
        }
    }
}

/// Builds the matcher list by list; `finish` compiles the automata.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    strings: Owners<Box<str>>,
    host_exact: Owners<Box<str>>,
    host_suffix: Owners<Box<str>>,
    cidr_text: Owners<Box<str>>,
    v4: NetTable<u32>,
    v6: NetTable<u128>,
    substrings: Owners<Box<str>>,
    substring_everything: Vec<ListId>,
    regexes: Vec<(String, ListId)>,
    regex_kinds: HashMap<ListId, u16>,
}

/// A bit per indicator kind (its position in `IndicatorKind::ALL`).
pub(crate) fn kind_bit(kind: IndicatorKind) -> u16 {
    let pos = IndicatorKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(0);
    1 << pos
}

impl Builder {
    pub(crate) fn string(&mut self, list: ListId, entry: &str) {
        add(&mut self.strings, entry.into(), list);
    }

    pub(crate) fn hostname(&mut self, list: ListId, entry: &str) {
        add(&mut self.host_exact, entry.into(), list);
        add(
            &mut self.host_suffix,
            entry.trim_start_matches('.').into(),
            list,
        );
    }

    /// A CIDR-list entry: its text always counts for exact matches of non-address values; it
    /// joins the network filter only when it parses as a strict network.
    pub(crate) fn cidr(&mut self, list: ListId, entry: &str) -> bool {
        add(&mut self.cidr_text, entry.into(), list);
        match python::ip_network(entry) {
            Some(PyNet::V4(bits, len)) => {
                self.v4.insert(bits, len, list);
                true
            }
            Some(PyNet::V6(bits, len)) => {
                self.v6.insert(bits, len, list);
                true
            }
            None => false,
        }
    }

    pub(crate) fn substring(&mut self, list: ListId, entry: &str) {
        if entry.is_empty() {
            // `"" in value` is always true.
            if self.substring_everything.last() != Some(&list) {
                self.substring_everything.push(list);
            }
        } else {
            add(&mut self.substrings, entry.into(), list);
        }
    }

    /// A regex-list entry (already checked to compile) applied to the kinds in `kinds`.
    pub(crate) fn regex(&mut self, list: ListId, pattern: String, kinds: u16) {
        self.regexes.push((pattern, list));
        self.regex_kinds.insert(list, kinds);
    }

    pub(crate) fn finish(self) -> Result<Matcher, String> {
        let (patterns, owners): (Vec<Box<str>>, Vec<Vec<ListId>>) =
            self.substrings.into_iter().unzip();
        let substrings = if patterns.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::new(patterns.iter().map(|p| p.as_bytes()))
                    .map_err(|e| format!("substring automaton: {e}"))?,
            )
        };
        let (regex_set, regex_owner, regex_kind_of) = if self.regexes.is_empty() {
            (None, Vec::new(), Vec::new())
        } else {
            let set = regex::RegexSetBuilder::new(self.regexes.iter().map(|(p, _)| p.as_str()))
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| format!("regex set: {e}"))?;
            let owner: Vec<ListId> = self.regexes.iter().map(|(_, l)| *l).collect();
            let kinds = owner
                .iter()
                .map(|l| self.regex_kinds.get(l).copied().unwrap_or(u16::MAX))
                .collect();
            (Some(set), owner, kinds)
        };
        let regex_kinds_any = regex_kind_of.iter().fold(0u16, |a, k| a | k);
        Ok(Matcher {
            strings: self.strings,
            host_exact: self.host_exact,
            host_suffix: self.host_suffix,
            cidr_text: self.cidr_text,
            v4: self.v4,
            v6: self.v6,
            substrings,
            substring_owners: owners,
            substring_everything: self.substring_everything,
            regex_set,
            regex_owner,
            regex_kind_of,
            regex_kinds_any,
        })
    }
}

/// Every list compiled for matching.
#[derive(Debug, Default)]
pub(crate) struct Matcher {
    strings: Owners<Box<str>>,
    host_exact: Owners<Box<str>>,
    host_suffix: Owners<Box<str>>,
    cidr_text: Owners<Box<str>>,
    v4: NetTable<u32>,
    v6: NetTable<u128>,
    substrings: Option<AhoCorasick>,
    substring_owners: Vec<Vec<ListId>>,
    substring_everything: Vec<ListId>,
    regex_set: Option<RegexSet>,
    regex_owner: Vec<ListId>,
    regex_kind_of: Vec<u16>,
    regex_kinds_any: u16,
}

impl Matcher {
    /// Appends to `out` the ids of every list `value` (an indicator of `kind`) is on; `out` may
    /// hold duplicates and is not sorted.
    pub(crate) fn collect(&self, kind: IndicatorKind, value: &str, out: &mut Vec<ListId>) {
        // string: exact match.
        if let Some(ids) = self.strings.get(value) {
            out.extend_from_slice(ids);
        }
        // hostname: the URL's host if the value is a URL, then equality or a dot-suffix.
        let host = python::url_hostname(value);
        let h = host.as_deref().unwrap_or(value);
        if let Some(ids) = self.host_exact.get(h) {
            out.extend_from_slice(ids);
        }
        for (i, b) in h.bytes().enumerate() {
            if b == b'.'
                && let Some(ids) = self.host_suffix.get(&h[i + 1..])
            {
                out.extend_from_slice(ids);
            }
        }
        // cidr: an address is looked up in the networks; anything else by its exact text.
        match python::ip_address(value) {
            Some(std::net::IpAddr::V4(a)) => {
                let bits = u32::from(a);
                self.v4.lookup(
                    |len| {
                        if len == 0 {
                            0
                        } else {
                            bits & (u32::MAX << (32 - len))
                        }
                    },
                    out,
                );
            }
            Some(std::net::IpAddr::V6(a)) => {
                let bits = u128::from(a);
                self.v6.lookup(
                    |len| {
                        if len == 0 {
                            0
                        } else {
                            bits & (u128::MAX << (128 - len))
                        }
                    },
                    out,
                );
            }
            None => {
                if let Some(ids) = self.cidr_text.get(value) {
                    out.extend_from_slice(ids);
                }
            }
        }
        // substring: any entry inside the value.
        out.extend_from_slice(&self.substring_everything);
        if let Some(ac) = &self.substrings {
            for m in ac.find_overlapping_iter(value) {
                if let Some(ids) = self.substring_owners.get(m.pattern().as_usize()) {
                    out.extend_from_slice(ids);
                }
            }
        }
        // regex: only for the kinds the list is meant for.
        let bit = kind_bit(kind);
        if self.regex_kinds_any & bit != 0
            && let Some(set) = &self.regex_set
        {
            for i in set.matches(value).iter() {
                if self.regex_kind_of.get(i).is_some_and(|k| k & bit != 0)
                    && let Some(l) = self.regex_owner.get(i)
                {
                    out.push(*l);
                }
            }
        }
    }
}
