//! SPEC Appendix B states what this implementation computes, value for value.

#[test]
fn the_appendix_states_the_vectors_the_implementation_computes() {
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../SPEC.md"))
        .expect("SPEC.md beside the crate");
    if let Err(differences) = acm_secure::vectors::check(&spec) {
        let computed = acm_secure::vectors::compute().unwrap();
        let block: Vec<String> = computed
            .iter()
            .map(|(name, value)| format!("{name} = {value}"))
            .collect();
        panic!(
            "SPEC.md Appendix B disagrees with the code: {differences}\n\nthe vectors:\n{}",
            block.join("\n")
        );
    }
}

#[test]
fn a_changed_vector_in_the_text_is_caught() {
    let computed = acm_secure::vectors::compute().unwrap();
    let mut block = String::from("\n## Appendix B. Security test vectors\n\n```text\n");
    for (name, value) in &computed {
        block.push_str(&format!("{name} = {value}\n"));
    }
    block.push_str("```\n");
    assert_eq!(acm_secure::vectors::check(&block), Ok(()));
    let changed = block.replacen(&computed[13].1, "000000", 1);
    assert!(acm_secure::vectors::check(&changed).is_err());
    let missing = block.replacen("frame_record_1", "frame_record_9", 1);
    assert!(acm_secure::vectors::check(&missing).is_err());
}
