//! Compiles `proto/tanoa/v1/*.proto` with protox (pure Rust, no `protoc` binary needed).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/tanoa/v1/advisory.proto",
        "proto/tanoa/v1/operator.proto",
        "proto/tanoa/v1/peer.proto",
        "proto/tanoa/v1/storage.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    // Services (tonic) only with the `grpc` feature: the messages alone need only prost.
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    tonic_prost_build::configure()
        .build_client(grpc)
        .build_server(grpc)
        .compile_fds(fds)?;
    Ok(())
}
