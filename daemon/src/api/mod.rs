//! gRPC services of the daemon: the operator API (and, with the federation, the peer API).
//!
//! Owns: the tonic service implementations (`operator`), every conversion between protobuf
//! messages and domain types of the API (`convert`), and the single mapping from errors to
//! `tonic::Status` (`error`).
//! Must never: sign, verify or store by itself (it calls `publish::NodeCore` and the store
//! through `NodeCore::blocking`), or build a `Status` from an error anywhere but `error`.

pub mod convert;
pub mod error;
pub mod operator;

pub use operator::OperatorApi;
