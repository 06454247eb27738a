//! The gRPC contract, `proto/federation/v1/federation.proto` (package `federation.v1`):
//! the generated messages, clients and servers of `FederationService` and
//! `AdminService`, compiled by `build.rs` without `protoc`; the encoded descriptors
//! that gRPC reflection serves; and [`json`], the conversions between JSON and
//! `google.protobuf.Struct`, the shape of `input_data` and of a task's result;
//! [`status_json`], a status's `google.rpc` details in ProtoJSON for the HTTP doors; and
//! [`doors`], how those doors authenticate a call and which agents they offer.

tonic::include_proto!("federation.v1");

pub mod doors;
pub mod json;
pub mod status_json;

/// Encoded descriptors, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("federation_descriptor");
