//! Extracts every rule of SPEC.md (a paragraph that starts with a bold rule id such as
//! `**FRAME-4**`) into a table, so that cases cite rules by id and reports quote their text,
//! always as the specification says it.

use std::fmt::Write as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a build script compiled for one checkout may be run for another.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR unset")?;
    let spec_path = std::path::Path::new(&manifest_dir).join("../SPEC.md");
    println!("cargo:rerun-if-changed={}", spec_path.display());
    let spec = std::fs::read_to_string(&spec_path)?;
    // A rule is the paragraph its bold id heads, and the paragraphs (tables, lists) that follow
    // it up to the next rule or heading: a rule's MUST may come after its table.
    let mut rules: Vec<(String, String)> = Vec::new();
    let mut open = false;
    for paragraph in spec.split("\n\n") {
        let text = paragraph.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.starts_with('#') {
            open = false;
            continue;
        }
        let head = text
            .strip_prefix("**")
            .and_then(|rest| rest.split_once("**"));
        let is_id = |id: &str| {
            id.split_once('-').is_some_and(|(prefix, number)| {
                !prefix.is_empty()
                    && prefix.chars().all(|c| c.is_ascii_uppercase())
                    && number.parse::<u32>().is_ok()
            })
        };
        match head {
            Some((id, body)) if is_id(id) => {
                rules.push((id.to_string(), body.trim().to_string()));
                open = true;
            }
            _ if open => {
                if let Some((_, body)) = rules.last_mut() {
                    body.push_str("\n\n");
                    body.push_str(&text);
                }
            }
            _ => {}
        }
    }
    let mut out = String::from("/// Every rule of SPEC.md: its id and its text.\n");
    out.push_str("pub static RULES: &[(&str, &str)] = &[\n");
    for (id, text) in &rules {
        writeln!(out, "    ({id:?}, {text:?}),")?;
    }
    out.push_str("];\n");
    let out_dir = std::env::var("OUT_DIR")?;
    std::fs::write(std::path::Path::new(&out_dir).join("rules.rs"), out)?;
    Ok(())
}
