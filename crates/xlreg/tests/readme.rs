//! README.md's library example is `examples/library.rs`, which the build
//! compiles: the README quotes it verbatim (everything after the file's
//! `//!` header), so the README cannot show code that does not compile.

#[test]
fn readme_library_example_is_the_compiled_example_file() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("../../README.md")).expect("README.md");
    let example =
        std::fs::read_to_string(root.join("examples/library.rs")).expect("examples/library.rs");
    let code: String = example
        .lines()
        .skip_while(|l| l.starts_with("//!"))
        .skip_while(|l| l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    let block = format!("```rust,no_run\n{code}```");
    assert!(
        readme.contains(&block),
        "README.md must contain examples/library.rs verbatim as:\n{block}"
    );
}

#[test]
fn readme_peer_example_is_run_of_the_compiled_peer_ring_example() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("../../README.md")).expect("README.md");
    let example =
        std::fs::read_to_string(root.join("examples/peer_ring.rs")).expect("examples/peer_ring.rs");
    let start = example
        .find("async fn run()")
        .expect("peer_ring.rs has async fn run()");
    let block = format!("```rust,no_run\n{}```", &example[start..]);
    assert!(
        readme.contains(&block),
        "README.md must contain run() of examples/peer_ring.rs verbatim as:\n{block}"
    );
}
