//! Compile-error tests: one mistake per file, each `.stderr` recorded with `TRYBUILD=overwrite`.
//!
//! `ui/*/` holds our own messages and always runs. `ui/*/rustc/` holds errors whose text rustc
//! renders (trait-bound and type-mismatch errors with our `on_unimplemented` messages); that text
//! changes between releases, so those run only on the release they were recorded on.

/// The `rustc` release the `ui/*/rustc/` snapshots were recorded with.
const RECORDED_ON: &str = "1.95.";

#[test]
fn flow_errors() {
    let cases = trybuild::TestCases::new();
    // A `pass` case makes trybuild build, not only check, every case: the exhaustiveness check and
    // the check of a hand-written node's actions are `const` assertions, which only a build
    // evaluates.
    cases.pass("ui/flow/pass/*.rs");
    cases.compile_fail("ui/flow/*.rs");
    if rustc_is_recorded_release() {
        cases.compile_fail("ui/flow/rustc/*.rs");
    }
}

/// The errors that `cargo check`, and so an editor, reports: this set has no `pass` case, so
/// trybuild only checks it, as `cargo check` does.
#[test]
fn flow_errors_seen_by_cargo_check() {
    if rustc_is_recorded_release() {
        trybuild::TestCases::new().compile_fail("ui/flow/check/*.rs");
    }
}

#[test]
fn shared_state_errors() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/shared_state/*.rs");
    if rustc_is_recorded_release() {
        cases.compile_fail("ui/shared_state/rustc/*.rs");
    }
}

#[test]
fn prompt_errors() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/prompt/*.rs");
    if rustc_is_recorded_release() {
        // A placeholder that names no field fails a `const` check, whose text rustc renders.
        cases.compile_fail("ui/prompt/rustc/*.rs");
    }
}

/// Whether the compiler is the release the rustc-text snapshots were recorded on; says so loudly
/// when not, so that skipped snapshots are never silent.
fn rustc_is_recorded_release() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .unwrap_or_default();
    let recorded = version.starts_with(&format!("rustc {RECORDED_ON}"));
    if !recorded {
        eprintln!(
            "warning: NOT CHECKED: ui/*/rustc/ snapshots were recorded on rustc {RECORDED_ON}x, \
             this is `{}`; re-record them with TRYBUILD=overwrite on this release and review the diff",
            version.trim()
        );
    }
    recorded
}
