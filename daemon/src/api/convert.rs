//! Conversions between operator-API protobuf messages and domain types, in one place.
//!
//! Owns: summaries, list filters, equivocation evidence, audit records, watch events, key
//! info, verification results, parsing of request parameters, and the drafts of `Publish` and
//! `PublishBatch` (the operator API's only edge from protobuf to the domain `Draft`: the field
//! conversion itself is `model::wire::draft_from_proto`, shared with the CLI's opposite
//! direction; this adds the request's field paths).
//! Must never: convert the signed payload (that is `model::wire`), touch the store, or read
//! clocks.

use tanoa_proto::v1 as pb;

use crate::envelope::{ItemId, PublicKeyRecord};
use crate::model::{Advisory, Draft, Indicator, wire};
use crate::publish::{
    ChangeEvent, ChangeKind, CoreError, ImportOutcome, Published, prefix_draft_error,
};
use crate::store::{AuditEntry, Equivocation, ListFilter, ListOrder, MatchKind, StoredItem};

/// Default `List` limit when the request says 0.
pub(crate) const DEFAULT_LIST_LIMIT: usize = 1000;
/// Largest `List` limit honoured.
pub(crate) const MAX_LIST_LIMIT: usize = 100_000;
/// Default `Audit` limit when the request says 0.
pub(crate) const DEFAULT_AUDIT_LIMIT: usize = 100;
/// Largest `Audit` limit honoured.
pub(crate) const MAX_AUDIT_LIMIT: usize = 10_000;

/// The draft of a `Publish` request; enum and range errors name their field (`tlp`,
/// `indicators[2].kind`, …).
pub fn draft(p: pb::AdvisoryDraft) -> Result<Draft, CoreError> {
    wire::draft_from_proto(p).map_err(CoreError::Invalid)
}

/// The drafts of a `PublishBatch` request, all or none: the first draft with errors is
/// reported, its field paths prefixed with `drafts[i].` (`drafts[3].tlp`).
pub fn drafts(ps: Vec<pb::AdvisoryDraft>) -> Result<Vec<Draft>, CoreError> {
    ps.into_iter()
        .enumerate()
        .map(|(i, p)| draft(p).map_err(|e| prefix_draft_error(e, i)))
        .collect()
}

/// Summary line of an advisory revision.
pub fn summary(item_id: &ItemId, a: &Advisory) -> pb::AdvisorySummary {
    pb::AdvisorySummary {
        item_id: item_id.to_hex(),
        advisory_id: a.id.clone(),
        origin: a.origin.clone(),
        revision: a.revision,
        tlp: wire::tlp_to_proto(a.tlp) as i32,
        title: a.title.clone(),
        severity: wire::severity_to_proto(a.severity) as i32,
        modified_ms: a.modified_ms,
        withdrawn: a.withdrawn,
        indicator_count: u32::try_from(a.indicators.len()).unwrap_or(u32::MAX),
    }
}

/// Summary line of a stored item.
pub(crate) fn summary_of(item: &StoredItem) -> pb::AdvisorySummary {
    summary(&item.item_id, &item.advisory)
}

/// An indicator as protobuf.
pub fn indicator(i: &Indicator) -> pb::Indicator {
    wire::indicator_to_proto(i)
}

/// The decoded advisory as protobuf.
pub fn advisory(a: &Advisory) -> pb::Advisory {
    wire::advisory_to_proto(a)
}

/// `ListRequest` -> store filter (TLP_UNSPECIFIED = any; limit 0 = 1000, capped at 100,000).
pub(crate) fn list_filter(r: &pb::ListRequest) -> Result<ListFilter, CoreError> {
    let tlp = match r.tlp {
        0 => None,
        v => Some(
            wire::tlp_from_proto(v).ok_or_else(|| CoreError::BadRequest {
                field: "tlp".into(),
                message: format!("unknown TLP value {v}"),
            })?,
        ),
    };
    let non_empty = |s: &str| {
        let s = s.trim();
        (!s.is_empty()).then(|| s.to_string())
    };
    let limit = match usize::try_from(r.limit).unwrap_or(MAX_LIST_LIMIT) {
        0 => DEFAULT_LIST_LIMIT,
        n => n.min(MAX_LIST_LIMIT),
    };
    let order = match pb::ListOrder::try_from(r.order) {
        Ok(pb::ListOrder::NewestFirst) => ListOrder::NewestFirst,
        Ok(pb::ListOrder::AdvisoryKey) => ListOrder::AdvisoryKey,
        Err(_) => {
            return Err(CoreError::BadRequest {
                field: "order".into(),
                message: format!("unknown list order {}", r.order),
            });
        }
    };
    let after = match r.page_token.split_first() {
        None => None,
        Some((&tag, key)) if tag == page_tag(order) && r.page_token.len() <= MAX_PAGE_TOKEN => {
            Some(key.to_vec())
        }
        Some(_) => {
            return Err(CoreError::BadRequest {
                field: "page_token".into(),
                message: "not a page token of this list order (send the next_page_token of \
                          the previous response, with the same order)"
                    .into(),
            });
        }
    };
    Ok(ListFilter {
        origin: non_empty(&r.origin),
        tlp,
        since_ms: (r.since_ms != 0).then_some(r.since_ms),
        text: non_empty(&r.text),
        include_withdrawn: r.include_withdrawn,
        limit,
        order,
        after,
    })
}

/// Longest page token accepted (a store key is an origin and an id, each a short string).
const MAX_PAGE_TOKEN: usize = 4096;

/// First byte of a page token: the order it belongs to.
fn page_tag(order: ListOrder) -> u8 {
    match order {
        ListOrder::NewestFirst => 1,
        ListOrder::AdvisoryKey => 2,
    }
}

/// The `next_page_token` after `last` (the last item of a truncated page).
pub fn next_page_token(order: ListOrder, last: &StoredItem) -> Vec<u8> {
    let key = crate::store::list_cursor(order, last);
    let mut t = Vec::with_capacity(1 + key.len());
    t.push(page_tag(order));
    t.extend_from_slice(&key);
    t
}

/// `AuditRequest.limit` -> entries to return (0 = 100, capped at 10,000).
pub(crate) fn audit_limit(limit: u32) -> usize {
    match usize::try_from(limit).unwrap_or(MAX_AUDIT_LIMIT) {
        0 => DEFAULT_AUDIT_LIMIT,
        n => n.min(MAX_AUDIT_LIMIT),
    }
}

/// Equivocation evidence as protobuf.
pub fn equivocation(e: &Equivocation) -> pb::EquivocationEvidence {
    pb::EquivocationEvidence {
        revision: e.revision,
        item_ids: e.item_ids.iter().map(ItemId::to_hex).collect(),
        chosen: e.chosen.to_hex(),
        detected_ms: e.detected_ms,
    }
}

/// An audit entry as protobuf.
pub(crate) fn audit_record(e: &AuditEntry) -> pb::AuditRecord {
    pb::AuditRecord {
        at_ms: e.at_ms,
        action: e.action.clone(),
        item_id: e.item_id.map(|i| i.to_hex()).unwrap_or_default(),
        subject: e.subject.clone(),
        actor: e.actor.clone(),
        detail: e.detail.clone(),
    }
}

/// A change event as a watch event.
pub(crate) fn watch_event(e: &ChangeEvent) -> pb::WatchEvent {
    let kind = match e.kind {
        ChangeKind::New => pb::WatchEventKind::New,
        ChangeKind::Updated => pb::WatchEventKind::Updated,
        ChangeKind::Withdrawn => pb::WatchEventKind::Withdrawn,
        ChangeKind::Equivocation => pb::WatchEventKind::Equivocation,
    };
    let a = &e.advisory;
    pb::WatchEvent {
        kind: kind as i32,
        advisory: Some(pb::AdvisorySummary {
            item_id: e.item_id.to_hex(),
            advisory_id: a.id.clone(),
            origin: a.origin.clone(),
            revision: a.revision,
            tlp: wire::tlp_to_proto(a.tlp) as i32,
            title: a.title.clone(),
            severity: wire::severity_to_proto(a.severity) as i32,
            modified_ms: a.modified_ms,
            withdrawn: a.withdrawn,
            indicator_count: u32::try_from(a.indicator_count).unwrap_or(u32::MAX),
        }),
        source: e.source.clone(),
    }
}

/// How a search hit matched: "exact" or "cidr".
pub(crate) fn match_kind(m: MatchKind) -> &'static str {
    match m {
        MatchKind::Exact => "exact",
        MatchKind::Cidr => "cidr",
        MatchKind::CveList => "cve_list",
        MatchKind::ActorList => "actor_list",
    }
}

/// A signing key as protobuf.
pub(crate) fn key_info(k: &PublicKeyRecord, active: bool) -> pb::KeyInfo {
    pb::KeyInfo {
        key_id: k.key_id.clone(),
        public_key: crate::keys::public_hex(&k.key),
        valid_from_ms: k.valid_from_ms.unwrap_or(0),
        valid_until_ms: k.valid_until_ms.unwrap_or(0),
        active,
    }
}

/// A publish result as protobuf, with the warning-list hits of its indicators.
pub(crate) fn publish_response(p: &Published) -> pb::PublishResponse {
    pb::PublishResponse {
        item_id: p.item_id.to_hex(),
        advisory_id: p.advisory_id.clone(),
        revision: p.revision,
        origin: p.origin.clone(),
        warnings: warning_hits(p.warnings.clone()),
    }
}

/// Warning-list hits as protobuf.
pub(crate) fn warning_hits(hits: Vec<crate::warninglist::Hit>) -> Vec<pb::WarningHit> {
    hits.into_iter()
        .map(|h| pb::WarningHit {
            indicator_index: u32::try_from(h.index).unwrap_or(u32::MAX),
            value: h.value,
            lists: h.lists,
        })
        .collect()
}

/// A withdraw result as protobuf.
pub(crate) fn withdraw_response(p: &Published) -> pb::WithdrawResponse {
    pb::WithdrawResponse {
        item_id: p.item_id.to_hex(),
        revision: p.revision,
    }
}

/// An import result as protobuf.
pub(crate) fn import_response(id: &ItemId, outcome: ImportOutcome) -> pb::ImportEnvelopeResponse {
    pb::ImportEnvelopeResponse {
        item_id: id.to_hex(),
        outcome: outcome.as_str().to_string(),
    }
}

/// One peer's state as protobuf; `entry` is its roster entry (name, endpoints).
pub(crate) fn peer_info(
    v: &crate::sync_handle::PeerView,
    entry: Option<&crate::membership::Member>,
) -> pb::PeerInfo {
    let s = &v.status;
    let ms = |t: Option<u64>| t.and_then(|t| i64::try_from(t).ok()).unwrap_or(0);
    let counts = |m: &std::collections::BTreeMap<String, u64>| {
        m.iter()
            .map(|(reason, count)| pb::ReasonCount {
                reason: reason.clone(),
                count: *count,
            })
            .collect()
    };
    pb::PeerInfo {
        member_id: s.peer.clone(),
        name: entry.map_or_else(|| s.peer.clone(), |e| e.name.clone()),
        endpoints: entry.map(|e| e.endpoints.clone()).unwrap_or_default(),
        link: s.link.as_str().to_string(),
        retry_at_ms: match s.link {
            crate::sync::LinkState::Down { retry_at_ms } => ms(Some(retry_at_ms)),
            _ => 0,
        },
        consecutive_failures: s.consecutive_failures,
        last_attempt_ms: ms(s.last_attempt_ms),
        last_success_ms: ms(s.last_success_ms),
        lag_ms: s.lag_ms.unwrap_or(0),
        syncing: s.syncing,
        queued_push: s.queued_push as u64,
        queued_fetch: s.queued_fetch as u64,
        in_flight: s.in_flight as u64,
        items_sent: s.stats.items_sent,
        items_received: s.stats.items_received,
        bytes_sent: s.stats.bytes_sent,
        bytes_received: s.stats.bytes_received,
        duplicates_received: s.stats.duplicates_received,
        pushes_sent: s.stats.pushes_sent,
        fetches_sent: s.stats.fetches_sent,
        sessions_ok: s.stats.sessions_ok,
        sessions_failed: s.stats.sessions_failed,
        sessions_answered: s.stats.sessions_answered,
        timeouts: s.stats.timeouts,
        rejections: counts(&s.stats.rejections),
        refused_by_peer: counts(&s.stats.refused_by_peer),
        rejections_total: s.stats.rejections.values().sum(),
        reconcile_set_size: v.reconcile_set as u64,
        flow_rtt_ms: s.flow.rtt_ms,
        flow_rate_out: s.flow.rate_out,
        flow_rate_in: s.flow.rate_in,
        flow_window_out: s.flow.window_out,
        flow_window_in: s.flow.window_in,
        flow_bytes_in_flight_out: s.flow.bytes_in_flight_out,
        flow_bytes_in_flight_in: s.flow.bytes_in_flight_in,
        equivocating: false,
        tls_pins: entry
            .map(|e| e.tls_pins.iter().map(ToString::to_string).collect())
            .unwrap_or_default(),
        ..Default::default()
    }
}

/// The roster fields of a peer: the version it last reported (for display only) and whether
/// that is older than `ours`.
pub(crate) fn peer_roster_fields(
    info: &mut pb::PeerInfo,
    reported: &crate::peer_roster::PeerRoster,
    ours: u64,
) {
    info.roster_header_malformed = reported.malformed;
    if let Some(st) = &reported.stamp {
        info.roster_reported = true;
        info.roster_version = st.version;
        info.roster_hash_prefix = st.hash_prefix.clone().unwrap_or_default();
        info.roster_reported_ms = reported.seen_ms;
        info.roster_behind = st.version < ours;
    }
}

/// What a `Get` id names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GetTarget {
    /// An item id (64 hex digits); may also be an advisory id of ours that looks like one.
    Item(ItemId),
    /// `origin/advisory-id`.
    Advisory {
        /// Origin member id.
        origin: String,
        /// Advisory id.
        id: String,
    },
}

/// Parses a `Get` id: 64 hex digits, `origin/advisory-id`, or an advisory id of `member`.
pub(crate) fn get_target(id: &str, member: &str) -> Result<GetTarget, CoreError> {
    let id = id.trim();
    if id.is_empty() {
        return Err(CoreError::BadRequest {
            field: "id".into(),
            message: "an item id (64 hex digits), an advisory id of ours or origin/advisory-id \
                      is required"
                .into(),
        });
    }
    if id.len() == 64
        && let Some(item) = ItemId::from_hex(id)
    {
        return Ok(GetTarget::Item(item));
    }
    match id.split_once('/') {
        Some((origin, aid)) if !origin.is_empty() && !aid.is_empty() => Ok(GetTarget::Advisory {
            origin: origin.to_string(),
            id: aid.to_string(),
        }),
        Some(_) => Err(CoreError::BadRequest {
            field: "id".into(),
            message: format!("{id:?} is not origin/advisory-id"),
        }),
        None => Ok(GetTarget::Advisory {
            origin: member.to_string(),
            id: id.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn get_ids_parse() {
        let hex = "ab".repeat(32);
        assert_eq!(
            get_target(&hex, "ws-cert").unwrap(),
            GetTarget::Item(ItemId::from_hex(&hex).unwrap())
        );
        assert_eq!(
            get_target("to-cert/to-2026-1", "ws-cert").unwrap(),
            GetTarget::Advisory {
                origin: "to-cert".into(),
                id: "to-2026-1".into()
            }
        );
        assert_eq!(
            get_target(" ws-2026-0042 ", "ws-cert").unwrap(),
            GetTarget::Advisory {
                origin: "ws-cert".into(),
                id: "ws-2026-0042".into()
            }
        );
        assert!(get_target("/x", "ws-cert").is_err());
        assert!(get_target("", "ws-cert").is_err());
    }

    #[test]
    fn list_filter_defaults_and_checks_tlp() {
        let f = list_filter(&pb::ListRequest::default()).unwrap();
        assert_eq!(f.limit, DEFAULT_LIST_LIMIT);
        assert_eq!(
            (f.origin, f.tlp, f.since_ms, f.text),
            (None, None, None, None)
        );
        let f = list_filter(&pb::ListRequest {
            tlp: pb::Tlp::Amber as i32,
            text: " apt40 ".into(),
            limit: 5,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(f.tlp, Some(crate::model::Tlp::Amber));
        assert_eq!(f.text.as_deref(), Some("apt40"));
        assert_eq!(f.limit, 5);
        let err = list_filter(&pb::ListRequest {
            tlp: 99,
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().starts_with("tlp:"), "{err}");
        let f = list_filter(&pb::ListRequest {
            order: pb::ListOrder::AdvisoryKey as i32,
            page_token: vec![2, 9, 9],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            (f.order, f.after),
            (ListOrder::AdvisoryKey, Some(vec![9, 9]))
        );
        for (order, token) in [(0, vec![2, 9]), (1, vec![1, 9]), (1, vec![2; 5000])] {
            let err = list_filter(&pb::ListRequest {
                order,
                page_token: token,
                ..Default::default()
            })
            .unwrap_err();
            assert!(err.to_string().starts_with("page_token:"), "{err}");
        }
        let err = list_filter(&pb::ListRequest {
            order: 7,
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().starts_with("order:"), "{err}");
        assert_eq!(audit_limit(0), DEFAULT_AUDIT_LIMIT);
        assert_eq!(audit_limit(u32::MAX), MAX_AUDIT_LIMIT);
    }

    #[test]
    fn request_drafts_name_the_draft_and_field() {
        let good = crate::publish::tests::draft_pb("ws-2026-0001", "one", "192.0.2.1");
        let d = draft(good.clone()).unwrap();
        assert_eq!(d.id.as_deref(), Some("ws-2026-0001"));
        assert_eq!(wire::draft_to_proto(&d), good);

        let mut bad = good.clone();
        bad.tlp = pb::Tlp::Unspecified as i32;
        bad.indicators[1].kind = 99;
        let e = draft(bad.clone()).unwrap_err().to_string();
        assert!(e.contains("tlp: unknown or missing TLP label (0)"), "{e}");
        assert!(
            e.contains("indicators[1].kind: unknown or missing indicator kind (99)"),
            "{e}"
        );

        let e = drafts(vec![
            good.clone(),
            good.clone(),
            good.clone(),
            bad.clone(),
            bad,
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("drafts[3].tlp: unknown or missing TLP label"),
            "{e}"
        );
        assert!(e.contains("drafts[3].indicators[1].kind"), "{e}");
        assert!(
            !e.contains("drafts[4]"),
            "only the first bad draft is reported: {e}"
        );
        assert_eq!(drafts(vec![good.clone(), good]).unwrap().len(), 2);
    }
}
