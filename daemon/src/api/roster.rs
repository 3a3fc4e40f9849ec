//! The operator API's roster methods: show, history, propose, approve (and the roster fields of
//! Status). Conversion of the runtime's views to protobuf, and of its errors to `CoreError`.
//!
//! Must never: judge or sign a roster item itself (`roster::RosterRuntime` builds them,
//! `publish::NodeCore::publish_roster_item` signs and stores them).

use tanoa_proto::v1 as pb;

use crate::publish::{CoreError, NodeCore};
use crate::roster::{RosterOpError, RosterRuntime};

fn op_error(e: RosterOpError) -> CoreError {
    match e {
        RosterOpError::NotSigned | RosterOpError::Frozen(_) | RosterOpError::NotMember(_) => {
            CoreError::Unavailable(e.to_string())
        }
        RosterOpError::NoSuchProposal(_) => CoreError::NotFound(e.to_string()),
        other => CoreError::BadRequest {
            field: "roster".into(),
            message: other.to_string(),
        },
    }
}

fn runtime(core: &NodeCore) -> Result<&std::sync::Arc<RosterRuntime>, CoreError> {
    core.roster()
        .ok_or_else(|| op_error(RosterOpError::NotSigned))
}

/// The roster fields of Status (version 0 and no hash for a local `[[members]]` roster).
pub(super) fn status_fields(core: &NodeCore, into: &mut pb::StatusResponse) {
    if let Some(r) = core.roster() {
        let v = r.view();
        into.roster_version = v.current.roster.version;
        into.roster_hash = v.current.hash().to_hex();
        into.roster_fork = v.fork.is_some();
        into.roster_fork_version = v.fork.map_or(0, |f| f.version);
    }
}

/// Every member id that may have published roster carriers: the members and former members
/// of the roster in force (none without a signed roster).
pub(super) fn carrier_origins(core: &NodeCore) -> Vec<String> {
    core.roster().map_or_else(Vec::new, |r| {
        let v = r.view();
        let doc = &v.current.roster;
        doc.members
            .iter()
            .map(|m| m.id.clone())
            .chain(doc.former_members.iter().map(|f| f.id.clone()))
            .collect()
    })
}

/// Roster carrier advisories held of `origins` (each carrier is one revision: its id names its
/// content), read by id range, never by a scan of the store.
pub(super) fn count_carriers(
    store: &dyn tanoa_core::store::Store,
    origins: &[String],
) -> Result<u64, tanoa_core::store::StoreError> {
    let mut n = 0u64;
    for o in origins {
        store.scan_latest_id_prefix(o, tanoa_core::roster::CARRIER_PREFIX, true, &mut |_| {
            n += 1;
            Ok(true)
        })?;
    }
    Ok(n)
}

pub(super) fn show(core: &NodeCore) -> pb::RosterShowResponse {
    let Some(r) = core.roster() else {
        return pb::RosterShowResponse::default();
    };
    let v = r.view();
    pb::RosterShowResponse {
        signed: true,
        version: v.current.roster.version,
        hash: v.current.hash().to_hex(),
        roster_json: v.current.to_json(),
        pending: v
            .pending
            .iter()
            .map(|p| pb::RosterPending {
                hash: p.hash.to_hex(),
                version: p.proposal.roster.version,
                change: p.proposal.change.describe(),
                proposer: p.proposal.proposer.member.clone(),
                signed_by: p.signed_by.clone(),
                required: u32::try_from(p.required).unwrap_or(u32::MAX),
                proposal_json: serde_json::to_string_pretty(&p.proposal).unwrap_or_default(),
            })
            .collect(),
        fork: v.fork.is_some(),
        fork_version: v.fork.as_ref().map_or(0, |f| f.version),
        fork_hashes: v
            .fork
            .iter()
            .flat_map(|f| f.hashes.iter().map(|h| h.to_hex()))
            .collect(),
        refusals: v
            .refusals
            .iter()
            .map(|(k, n)| (k.to_string(), *n))
            .collect(),
    }
}

pub(super) fn history(core: &NodeCore) -> Result<pb::RosterHistoryResponse, CoreError> {
    let r = runtime(core)?;
    Ok(pb::RosterHistoryResponse {
        versions_json: r.view().chain.iter().map(|s| s.to_json()).collect(),
    })
}

pub(super) async fn propose(
    core: &NodeCore,
    change_json: &str,
    actor: &str,
) -> Result<pb::RosterProposeResponse, CoreError> {
    let r = runtime(core)?;
    let (item, required) = r
        .propose(change_json, &core.identity(), crate::now_ms())
        .map_err(op_error)?;
    let (hash, version) = (item.roster_hash(), item.version());
    core.publish_roster_item(item, actor).await?;
    tracing::info!(version, hash = ?hash, actor, "roster change proposed");
    Ok(pb::RosterProposeResponse {
        hash: hash.map(|h| h.to_hex()).unwrap_or_default(),
        version,
        required: u32::try_from(required).unwrap_or(u32::MAX),
    })
}

pub(super) async fn approve(
    core: &NodeCore,
    proposal: &str,
    actor: &str,
) -> Result<pb::RosterApproveResponse, CoreError> {
    let r = runtime(core)?;
    let (item, version, required) = r.approve(proposal, &core.identity()).map_err(op_error)?;
    let hash = item.roster_hash();
    core.publish_roster_item(item, actor).await?;
    let view = r.view();
    let in_force = hash.is_some_and(|h| view.chain.iter().any(|s| s.hash() == h));
    let signatures = view
        .pending
        .iter()
        .find(|p| Some(p.hash) == hash)
        .map_or(required, |p| p.signed_by.len());
    tracing::info!(version, hash = ?hash, actor, in_force, "roster proposal approved");
    Ok(pb::RosterApproveResponse {
        hash: hash.map(|h| h.to_hex()).unwrap_or_default(),
        version,
        signatures: u32::try_from(signatures).unwrap_or(u32::MAX),
        required: u32::try_from(required).unwrap_or(u32::MAX),
        in_force,
    })
}
