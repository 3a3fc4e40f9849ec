//! The one place where errors become gRPC statuses.
//!
//! Owns: every `tonic::Status` either service sends: `ApiError` (the errors of the API layer:
//! the core's, the sync core's, the driver's, refusals of a peer's message, shutdown, a watcher
//! left behind, a caller without identity) -> code, message and the `tanoa-reason` metadata;
//! and logging of internal failures. No other module builds a `Status` (checked by the test
//! `statuses_are_built_only_here`).
//! Must never: hide the field path of a validation error or the reason code of a rejection,
//! or send internal details the operator could not act on without logging them.

use tonic::{Code, Status};

use crate::envelope::EnvelopeError;
use crate::publish::CoreError;
use crate::sync::SyncError;
use crate::sync_handle::DriverError;

/// An error of the API layer, whatever its source; [`status`] is its one mapping to gRPC.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// The node refused or failed (see [`to_status`]).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The sync core refused (see [`sync_status`]).
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The sync driver refused, failed or is not running.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// A peer's message was refused: `code` is the reason (counted against the peer), `oversized`
    /// selects `ResourceExhausted` over `InvalidArgument`.
    #[error("{detail}")]
    PeerRefused {
        /// Reason code (`malformed`, `too_many_items`, `truncated_message`, …).
        code: &'static str,
        /// What was wrong.
        detail: String,
        /// The message was larger than the limit.
        oversized: bool,
    },
    /// The daemon is shutting down; `what` says what to do again once it is back.
    #[error("tanoad is shutting down{what}")]
    ShuttingDown {
        /// E.g. "; watch again once it is back".
        what: &'static str,
    },
    /// A watcher fell behind the event channel.
    #[error(
        "watch fell behind: {0} events were dropped for this watcher (nothing was lost on the \
         node); list changes since your last event with List.since_ms and watch again"
    )]
    WatchLagged(u64),
    /// No verified member certificate on the connection.
    #[error("no verified member certificate on this connection")]
    NoIdentity,
}

/// The gRPC status of any API error (the one mapping used by both services).
pub(crate) fn status(e: ApiError) -> Status {
    match e {
        ApiError::Core(c) => to_status(c),
        ApiError::Sync(s) => sync_status(&s),
        ApiError::Driver(DriverError::Sync(s)) => sync_status(&s),
        ApiError::Driver(d) => to_status(CoreError::from(d)),
        ApiError::PeerRefused {
            code,
            detail,
            oversized,
        } => {
            let grpc = if oversized {
                Code::ResourceExhausted
            } else {
                Code::InvalidArgument
            };
            with_reason(Status::new(grpc, detail), code)
        }
        e @ ApiError::ShuttingDown { .. } => Status::unavailable(e.to_string()),
        e @ ApiError::WatchLagged(_) => Status::resource_exhausted(e.to_string()),
        e @ ApiError::NoIdentity => Status::unauthenticated(e.to_string()),
    }
}

/// `status` with the reason code in the `tanoa-reason` metadata.
fn with_reason(mut status: Status, code: &str) -> Status {
    if let Ok(v) = code.parse() {
        status.metadata_mut().insert(REASON_METADATA, v);
    }
    status
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        status(e)
    }
}

/// Metadata key carrying the machine-readable reason of an envelope rejection.
pub const REASON_METADATA: &str = "tanoa-reason";

/// The gRPC status of an error:
/// validation and bad arguments → `InvalidArgument` (with field paths); unknown ids →
/// `NotFound`; envelope rejections → `InvalidArgument` (or `FailedPrecondition` when our keyring
/// lacks or no longer accepts the key) with the reason code in the message and metadata;
/// withdrawn or foreign advisories, and a signing key the roster in force does not let sign
/// now → `FailedPrecondition`; a member still restoring its own
/// history → `Unavailable` (retry later); store and internal failures →
/// `Internal` (logged).
pub(crate) fn to_status(e: CoreError) -> Status {
    let msg = e.to_string();
    match &e {
        CoreError::Invalid(_) | CoreError::BadRequest { .. } => Status::invalid_argument(msg),
        CoreError::NotFound(_) => Status::not_found(msg),
        CoreError::Withdrawn { .. }
        | CoreError::AlreadyWithdrawn { .. }
        | CoreError::NotOurs { .. }
        | CoreError::SigningKeyNotValid { .. } => Status::failed_precondition(msg),
        CoreError::Rejected(r) => {
            let code = match r {
                EnvelopeError::UnknownKey { .. } | EnvelopeError::KeyNotValid { .. } => {
                    Code::FailedPrecondition
                }
                _ => Code::InvalidArgument,
            };
            with_reason(Status::new(code, msg), r.reason())
        }
        CoreError::Unavailable(_) => Status::failed_precondition(msg),
        CoreError::Restoring { .. } => Status::unavailable(msg),
        CoreError::Sync(s) => sync_status(s),
        CoreError::Store(_) | CoreError::Internal(_) => {
            tracing::error!(error = %e, "operator request failed");
            Status::internal(format!("{msg} (see the tanoad log)"))
        }
    }
}

/// The gRPC status of a sync core refusal: an unknown peer → `NotFound`; a reconciliation
/// already running → `FailedPrecondition`; an oversized frame or too many ids →
/// `ResourceExhausted`; an undecodable reconciliation message → `InvalidArgument`; a bad setting
/// → `Internal`. The reason code goes in the `tanoa-reason` metadata.
pub(crate) fn sync_status(e: &SyncError) -> Status {
    let msg = e.to_string();
    let status = match e {
        SyncError::UnknownPeer { .. } => Status::not_found(msg),
        SyncError::Busy { .. } => Status::failed_precondition(msg),
        SyncError::FrameTooLarge { .. } | SyncError::TooManyIds { .. } => {
            Status::resource_exhausted(msg)
        }
        SyncError::Reconcile { .. } | SyncError::MalformedFrame { .. } => {
            Status::invalid_argument(msg)
        }
        SyncError::Config { .. } => Status::internal(msg),
    };
    with_reason(status, e.code())
}

impl From<CoreError> for Status {
    fn from(e: CoreError) -> Status {
        to_status(e)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::model::{ValidationError, ValidationErrors};

    #[test]
    fn each_error_maps_to_its_code() {
        let s = to_status(CoreError::Invalid(ValidationErrors::one(
            ValidationError::new(
                "indicators[3].value",
                "\"10.0.0.300\" is not an IPv4 address",
            ),
        )));
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(
            s.message().contains("indicators[3].value: \"10.0.0.300\""),
            "{}",
            s.message()
        );
        assert_eq!(
            to_status(CoreError::NotFound("x".into())).code(),
            Code::NotFound
        );
        assert_eq!(
            to_status(CoreError::Withdrawn { id: "a".into() }).code(),
            Code::FailedPrecondition
        );
        let s = to_status(CoreError::Restoring {
            waiting_for: vec!["to-cert".into(), "fj-cert".into()],
        });
        assert_eq!(s.code(), Code::Unavailable);
        assert!(s.message().contains("to-cert, fj-cert"), "{}", s.message());
        let s = to_status(CoreError::Rejected(EnvelopeError::BadSignature {
            key_id: "ed25519:00".into(),
        }));
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(s.message().contains("(bad_signature)"), "{}", s.message());
        assert_eq!(s.metadata().get(REASON_METADATA).unwrap(), "bad_signature");
        let s = to_status(CoreError::Rejected(EnvelopeError::UnknownKey {
            key_id: "ed25519:00".into(),
        }));
        assert_eq!(s.code(), Code::FailedPrecondition);
        let s = to_status(CoreError::Store(crate::store::StoreError::Backend(
            "disk".into(),
        )));
        assert_eq!(s.code(), Code::Internal);

        let s = status(ApiError::PeerRefused {
            code: "too_many_items",
            detail: "PushRequest.envelopes has 300 envelopes".into(),
            oversized: false,
        });
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(s.metadata().get(REASON_METADATA).unwrap(), "too_many_items");
        let s = status(ApiError::PeerRefused {
            code: "oversized_message",
            detail: "x".into(),
            oversized: true,
        });
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(
            status(ApiError::Driver(DriverError::Stopped)).code(),
            Code::FailedPrecondition
        );
        assert_eq!(
            status(ApiError::ShuttingDown { what: "" }).code(),
            Code::Unavailable
        );
        assert_eq!(
            status(ApiError::WatchLagged(3)).code(),
            Code::ResourceExhausted
        );
        assert_eq!(status(ApiError::NoIdentity).code(), Code::Unauthenticated);
    }

    /// ARCHITECTURE: `api::error` is the one place where errors become statuses. Every other
    /// file of the daemon is read, and any `Status` constructor in its non-test code fails this.
    #[test]
    fn statuses_are_built_only_here() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let ctor = regex::Regex::new(
            r"Status::(new|ok|cancelled|unknown|invalid_argument|deadline_exceeded|not_found|already_exists|permission_denied|resource_exhausted|failed_precondition|aborted|out_of_range|unimplemented|internal|unavailable|data_loss|unauthenticated)\(",
        )
        .unwrap();
        let mut found = Vec::new();
        let mut stack = vec![src.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") || path.ends_with("api/error.rs") {
                    continue;
                }
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                if name == "tests.rs" || name.ends_with("_tests.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for (n, line) in text.lines().enumerate() {
                    if line.starts_with("#[cfg(test)]") {
                        break;
                    }
                    if ctor.is_match(line.split("//").next().unwrap_or("")) {
                        found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
        assert!(
            found.is_empty(),
            "statuses built outside api::error:\n{}",
            found.join("\n")
        );
    }
}
