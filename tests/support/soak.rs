//! How many trials the crash and kill tests make: a quick count by default, so that `cargo test`
//! stays fast, and the full soak with `SLATEFLOW_SOAK=1`, which CI (`.ci/run`) sets.

/// `soak` trials when `SLATEFLOW_SOAK` is set (and not `0`), else `quick`.
pub(crate) fn trials(soak: u32, quick: u32) -> u32 {
    let soaking = std::env::var_os("SLATEFLOW_SOAK").is_some_and(|value| value != "0");
    if soaking { soak } else { quick }
}
