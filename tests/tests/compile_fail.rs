//! Every misuse the macros catch, with the message and the token it points at
//! (`tests/ui/*.rs` and their `.stderr`). Regenerate with `TRYBUILD=overwrite` after a
//! deliberate change of wording, and read the diff.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/*.rs");
}
