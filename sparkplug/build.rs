//! Compiles `protobuf/sparkplug_b.proto` with prost-build. protoc comes from the
//! protoc-bin-vendored build-dependency so a fresh machine needs no system protoc; a
//! developer may still point `PROTOC` at their own.

fn main() -> std::io::Result<()> {
    let proto_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../protobuf");
    let proto = format!("{proto_dir}/sparkplug_b.proto");
    println!("cargo:rerun-if-changed={proto}");
    println!("cargo:rerun-if-env-changed=PROTOC");
    let mut config = prost_build::Config::new();
    if std::env::var_os("PROTOC").is_none() {
        let protoc = protoc_bin_vendored::protoc_bin_path().map_err(std::io::Error::other)?;
        config.protoc_executable(protoc);
    }
    config.compile_protos(&[proto.as_str()], &[proto_dir])
}
