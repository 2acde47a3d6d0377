//! The Wireshark dissector's field table (`tools/wireshark/acm.lua`, between its SCHEMA lines)
//! is the one `acm_wire::schema::lua_table` generates from `proto/acm/v1/acm.proto`: this test
//! fails when they differ, and `ACM_WRITE_LUA=1 cargo test -p acm-wire --test wireshark_schema`
//! writes the table anew.

use acm_wire::schema::{LUA_BEGIN, LUA_END, lua_table};

#[test]
fn the_dissectors_field_table_is_generated_from_the_proto_file() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tools/wireshark/acm.lua");
    let text = std::fs::read_to_string(path).expect("tools/wireshark/acm.lua");
    let start = text
        .find(LUA_BEGIN)
        .expect("the dissector has a SCHEMA BEGIN line");
    let end = text[start..]
        .find(LUA_END)
        .map(|at| start + at + LUA_END.len() + 1)
        .expect("the dissector has a SCHEMA END line");
    let generated = lua_table();
    if text[start..end] == generated {
        return;
    }
    if std::env::var_os("ACM_WRITE_LUA").is_some() {
        let written = format!("{}{generated}{}", &text[..start], &text[end..]);
        std::fs::write(path, written).expect("writes the dissector");
        return;
    }
    panic!(
        "tools/wireshark/acm.lua's SCHEMA table is not what proto/acm/v1/acm.proto makes; \
         run ACM_WRITE_LUA=1 cargo test -p acm-wire --test wireshark_schema"
    );
}
