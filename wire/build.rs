//! Compiles `proto/acm/v1/acm.proto` with protox (pure Rust, no `protoc` needed) and generates
//! the message types with prost: once with `PeerInfo` taken from `src/peer_info.rs` (the crate's
//! `pb`), and once entirely generated (`bare_pb`, the baseline of the `bare-prost` feature).

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a build script compiled for one checkout may be run for another.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR unset")?;
    let out_dir = std::env::var_os("OUT_DIR").ok_or("OUT_DIR unset")?;
    let proto_dir = Path::new(&manifest_dir).join("../proto");
    let file = proto_dir.join("acm/v1/acm.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let descriptors = protox::compile([&file], [&proto_dir])?;
    for (dir, own_peer_info) in [("pb", true), ("bare_pb", false)] {
        let out = Path::new(&out_dir).join(dir);
        std::fs::create_dir_all(&out)?;
        let mut config = prost_build::Config::new();
        config.out_dir(&out).bytes(["."]).btree_map(["."]);
        if own_peer_info {
            config.extern_path(".acm.v1.PeerInfo", "crate::peer_info::PeerInfo");
        }
        config.compile_fds(descriptors.clone())?;
    }
    std::fs::write(
        Path::new(&out_dir).join("schema_table.rs"),
        schema_table(&descriptors)?,
    )?;
    Ok(())
}

/// The schema's messages and enums as static Rust tables (module `schema`): what inspectors
/// and the Wireshark dissector's generated table name fields by, taken from the same file as
/// the messages themselves.
fn schema_table(
    descriptors: &prost_types::FileDescriptorSet,
) -> Result<String, Box<dyn std::error::Error>> {
    use std::fmt::Write as _;
    let mut messages = String::new();
    let mut enums = String::new();
    for file in &descriptors.file {
        let package = format!(".{}.", file.package());
        let mut stack: Vec<(String, &prost_types::DescriptorProto)> = file
            .message_type
            .iter()
            .map(|m| (m.name().to_string(), m))
            .collect();
        stack.reverse();
        while let Some((name, message)) = stack.pop() {
            writeln!(messages, "    Message {{ name: {name:?}, fields: &[")?;
            for field in &message.field {
                let type_name = field
                    .type_name()
                    .strip_prefix(package.as_str())
                    .unwrap_or("");
                // The numbers of google.protobuf.FieldDescriptorProto.Type.
                let kind = match field.r#type.unwrap_or(0) {
                    4 | 13 => "Kind::Uint".to_string(),
                    8 => "Kind::Bool".to_string(),
                    9 => "Kind::String".to_string(),
                    12 => "Kind::Bytes".to_string(),
                    11 => format!("Kind::Message({type_name:?})"),
                    14 => format!("Kind::Enum({type_name:?})"),
                    other => {
                        return Err(format!(
                            "{name}.{}: field type {other} has no place in the schema table",
                            field.name()
                        )
                        .into());
                    }
                };
                let repeated = field.label.unwrap_or(0) == 3;
                writeln!(
                    messages,
                    "        Field {{ number: {}, name: {:?}, kind: {kind}, repeated: {repeated} }},",
                    field.number(),
                    field.name()
                )?;
            }
            writeln!(messages, "    ] }},")?;
            for nested in message.nested_type.iter().rev() {
                stack.push((format!("{name}.{}", nested.name()), nested));
            }
            if !message.enum_type.is_empty() {
                return Err(
                    format!("{name}: nested enums have no place in the schema table").into(),
                );
            }
        }
        for en in &file.enum_type {
            // FRAME_TYPE_ for FrameType: the prefix every value carries, left out of the names.
            let mut prefix = String::new();
            for (i, c) in en.name().chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    prefix.push('_');
                }
                prefix.push(c.to_ascii_uppercase());
            }
            prefix.push('_');
            writeln!(enums, "    Enum {{ name: {:?}, values: &[", en.name())?;
            for value in &en.value {
                let short = value
                    .name()
                    .strip_prefix(prefix.as_str())
                    .unwrap_or(value.name());
                writeln!(enums, "        ({}, {short:?}),", value.number())?;
            }
            writeln!(enums, "    ] }},")?;
        }
    }
    Ok(format!(
        "/// Every message of the schema, nested ones named `Outer.Inner`.\npub static MESSAGES: &[Message] = &[\n{messages}];\n\n/// Every enum of the schema, values without their common prefix.\npub static ENUMS: &[Enum] = &[\n{enums}];\n"
    ))
}
