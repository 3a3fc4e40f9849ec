//! Generated protobuf and gRPC code for the `tanoa.v1` package (the gRPC services only with the
//! `grpc` feature, so the sans-IO core can use the messages without tonic).
//!
//! This crate only includes generated code; conversions to domain types live in
//! `tanoa-core` (`model::wire` for the signed payload) and `tanoa-daemon` (`api::convert` for
//! the API).
#![allow(
    missing_docs,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic
)]

/// `tanoa.v1`: the advisory model, the operator service and the peer messages.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/tanoa.v1.rs"));
}
