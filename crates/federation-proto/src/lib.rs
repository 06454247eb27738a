//! The generated gRPC types of `proto/federation/v1/federation.proto` (compiled by
//! `build.rs`), included once here.

tonic::include_proto!("federation.v1");

/// Encoded descriptors, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("federation_descriptor");
