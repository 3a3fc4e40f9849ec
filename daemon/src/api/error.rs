//! The one place where errors become gRPC statuses.
//!
//! Owns: `CoreError` -> `tonic::Status` (code, message, and the `tanoa-reason` metadata of
//! envelope rejections), and logging of internal failures.
//! Must never: hide the field path of a validation error or the reason code of a rejection,
//! or send internal details the operator could not act on without logging them.

use tonic::{Code, Status};

use crate::envelope::EnvelopeError;
use crate::publish::CoreError;
use crate::sync::SyncError;

/// Metadata key carrying the machine-readable reason of an envelope rejection.
pub const REASON_METADATA: &str = "tanoa-reason";

/// The gRPC status of an error:
/// validation and bad arguments → `InvalidArgument` (with field paths); unknown ids →
/// `NotFound`; envelope rejections → `InvalidArgument` (or `FailedPrecondition` when our keyring
/// lacks or no longer accepts the key) with the reason code in the message and metadata;
/// withdrawn or foreign advisories → `FailedPrecondition`; store and internal failures →
/// `Internal` (logged).
pub fn to_status(e: CoreError) -> Status {
    let msg = e.to_string();
    match &e {
        CoreError::Invalid(_) | CoreError::BadRequest { .. } => Status::invalid_argument(msg),
        CoreError::NotFound(_) => Status::not_found(msg),
        CoreError::Withdrawn { .. }
        | CoreError::AlreadyWithdrawn { .. }
        | CoreError::NotOurs { .. } => Status::failed_precondition(msg),
        CoreError::Rejected(r) => {
            let code = match r {
                EnvelopeError::UnknownKey { .. } | EnvelopeError::KeyNotValid { .. } => {
                    Code::FailedPrecondition
                }
                _ => Code::InvalidArgument,
            };
            let mut status = Status::new(code, msg);
            if let Ok(v) = r.reason().parse() {
                status.metadata_mut().insert(REASON_METADATA, v);
            }
            status
        }
        CoreError::Unavailable(_) => Status::failed_precondition(msg),
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
pub fn sync_status(e: &SyncError) -> Status {
    let msg = e.to_string();
    let mut status = match e {
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
    if let Ok(v) = e.code().parse() {
        status.metadata_mut().insert(REASON_METADATA, v);
    }
    status
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
    }
}
