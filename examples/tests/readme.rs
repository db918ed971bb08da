//! The root README's front-door example is the `towermesh` crate's doctest (its README is its crate
//! documentation, compiled and run by `cargo test`). The root README shows the same code; this test
//! keeps the two copies equal, so the example a new user copies is one that compiles. It lives
//! here, not in the facade crate, because a published crate cannot read files outside itself.

use std::path::Path;

/// The first ```rust block of a Markdown file.
fn first_rust_block(path: &Path) -> String {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let start = text
        .find("```rust\n")
        .unwrap_or_else(|| panic!("{}: no ```rust block", path.display()))
        + "```rust\n".len();
    let end = text[start..]
        .find("```")
        .unwrap_or_else(|| panic!("{}: unterminated ```rust block", path.display()));
    text[start..start + end].to_string()
}

#[test]
fn the_root_readme_shows_the_facades_compiled_example() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let shown = first_rust_block(&root.join("README.md"));
    let compiled = first_rust_block(&root.join("mesh").join("README.md"));
    assert_eq!(
        shown, compiled,
        "README.md's example differs from mesh/README.md's (the compiled one): copy it over"
    );
}
