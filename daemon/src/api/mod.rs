//! gRPC services of the daemon: the operator API and the peer API of the federation.
//!
//! Owns: the tonic service implementations (`operator`, `peer`), every conversion between protobuf
//! messages and domain types of the API (`convert`), and the single mapping from errors to
//! `tonic::Status` (`error`).
//! Must never: sign, verify or store by itself (it calls `publish::NodeCore` and the store
//! through `NodeCore::blocking`), or build a `Status` from an error anywhere but `error`.

pub mod convert;
pub mod error;
pub(crate) mod operator;
pub(crate) mod peer;
mod roster;

pub(crate) use operator::OperatorApi;
pub(crate) use peer::PeerApi;
