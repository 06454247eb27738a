//! Compiles `proto/` (the one source of the gRPC contract) with a pure-Rust protobuf
//! compiler, so building needs no `protoc` on the machine.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a build-script binary reused from a cache built elsewhere must
    // not carry that checkout's path.
    let proto_root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let file = proto_root.join("federation/v1/federation.proto");
    println!("cargo:rerun-if-changed={}", proto_root.display());

    let descriptors = protox::compile([&file], [&proto_root])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("federation_descriptor.bin");
    std::fs::write(
        &descriptor_path,
        prost::Message::encode_to_vec(&descriptors),
    )?;

    tonic_prost_build::configure()
        // RPCs a server does not implement answer UNIMPLEMENTED, so adding one to the
        // proto does not break other servers of it (the benchmark's native baseline).
        .generate_default_stubs(true)
        .file_descriptor_set_path(&descriptor_path)
        .compile_fds(descriptors)?;
    Ok(())
}
