//! What the crate's documentation and README promise a newcomer, checked in their text; their
//! Rust is compiled and run as doctests (`cargo test -p acm --doc`).

const CRATE_DOC: &str = include_str!("../src/lib.rs");
const README: &str = include_str!("../../README.md");
const COLLABORATE: &str = include_str!("../examples/collaborate.rs");

/// The crate doc's lines, without their `//! `.
fn crate_doc() -> impl Iterator<Item = &'static str> {
    CRATE_DOC
        .lines()
        .filter_map(|line| line.strip_prefix("//!"))
        .map(|line| line.strip_prefix(' ').unwrap_or(line))
}

/// The Rust code blocks of `lines`, each as its lines.
fn rust_blocks<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<Vec<&'a str>> {
    let mut blocks = Vec::new();
    // In a block: `Some(true)` in a Rust one, `Some(false)` in another.
    let mut in_block: Option<bool> = None;
    for line in lines {
        let fence = line.trim_start().strip_prefix("```");
        match (in_block, fence) {
            (None, Some(lang)) => {
                let rust = lang.is_empty() || lang.starts_with("rust");
                if rust {
                    blocks.push(Vec::new());
                }
                in_block = Some(rust);
            }
            (Some(_), Some(_)) => in_block = None,
            (Some(true), None) => blocks.last_mut().into_iter().for_each(|b| b.push(line)),
            _ => {}
        }
    }
    blocks
}

#[test]
fn the_paused_clock_is_said_to_need_tokios_test_util() {
    let doc: Vec<&str> = crate_doc().collect();
    let doc = doc.join("\n");
    assert!(doc.contains("start_paused"));
    assert!(
        doc.contains("test-util"),
        "the crate doc names start_paused without test-util"
    );
    assert!(README.contains("test-util"));
}

#[test]
fn the_examples_are_whole_programs_with_nothing_hidden() {
    let crate_blocks = rust_blocks(crate_doc());
    let readme_blocks = rust_blocks(README.lines());
    assert!(!crate_blocks.is_empty() && !readme_blocks.is_empty());
    for block in crate_blocks.iter().chain(&readme_blocks) {
        let hidden: Vec<&&str> = block
            .iter()
            .filter(|line| line.trim_start().starts_with("# ") || line.trim() == "#")
            .collect();
        assert!(hidden.is_empty(), "hidden lines: {hidden:?}");
    }
    for blocks in [&crate_blocks, &readme_blocks] {
        let main = blocks.iter().flatten().any(|l| l.contains("async fn main"));
        assert!(main, "no program with its main");
    }
}

#[test]
fn the_readme_rust_is_not_ignored_and_defines_what_it_uses() {
    let fences: Vec<&str> = README
        .lines()
        .filter(|line| line.starts_with("```rust"))
        .collect();
    assert!(!fences.is_empty());
    for fence in fences {
        assert!(!fence.contains("ignore"), "{fence}");
    }
    let program = rust_blocks(README.lines()).concat().join("\n");
    assert!(
        program.contains("let context = "),
        "the program uses a context it defines"
    );
}

#[test]
fn closing_the_device_before_exit_is_said_and_done() {
    let doc: Vec<&str> = crate_doc().collect();
    let doc = doc.join("\n");
    for text in [&doc, README] {
        assert!(text.contains("Device::close"));
        assert!(text.contains(".close().await"));
    }
    assert!(COLLABORATE.contains(".close().await"));
    assert!(
        !COLLABORATE.contains("sleep"),
        "collaborate waits by sleeping"
    );
}

#[test]
fn the_crate_doc_links_only_to_what_renders() {
    // With `cargo doc -p acm --no-deps`, a link into a re-exported crate has nowhere to go and
    // shows as its brackets.
    for krate in ["transport", "wire", "secure", "engine", "bytes"] {
        for link in [format!("[`{krate}::"), format!("[`{krate}`]")] {
            assert!(!CRATE_DOC.contains(&link), "{link}");
        }
    }
}
