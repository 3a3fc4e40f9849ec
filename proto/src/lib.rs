//! Generated protobuf and gRPC code for the `tanoa.v1` package.
//!
//! This crate only includes generated code; conversions to domain types live in
//! `tanoa-daemon` (`model::wire` for the signed payload, `api::convert` for the API).
#![allow(
    missing_docs,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic
)]

/// `tanoa.v1`: the advisory model, the operator service and the peer messages.
pub mod v1 {
    tonic::include_proto!("tanoa.v1");
}
