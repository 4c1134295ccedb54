//! The README's quick start is `quickstart.rs`, verbatim. (`.ci/run` runs it and checks that it
//! prints what the README says.)

const README: &str = include_str!("../README.md");
const QUICKSTART: &str = include_str!("quickstart.rs");

#[test]
fn the_readme_shows_the_quickstart_verbatim() {
    let start = README
        .find("## Quick start")
        .expect("the README has a quick start");
    let section = &README[start..];
    let code = section
        .split_once("```rust\n")
        .and_then(|(_, rest)| rest.split_once("```\n"))
        .map(|(code, _)| code)
        .expect("the quick start shows a rust block");
    assert_eq!(
        code, QUICKSTART,
        "README.md's quick start and examples/quickstart.rs differ: copy the file into the README"
    );
}
