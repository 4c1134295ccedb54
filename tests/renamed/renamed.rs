//! The macros work when `Cargo.toml` renames slateflow (`flowlib = { package = "slateflow" }`):
//! the derive and `#[node]` given `crate = flowlib`, and `flow!` (forks included) by itself.

use flowlib::{Command, SharedState, StateUpdate, flow, node};
use serde::{Deserialize, Serialize};

#[derive(SharedState, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[slateflow(crate = flowlib)]
struct Counter {
    label: String,
    #[reducer(add)]
    count: u64,
    #[reducer(append)]
    log: Vec<String>,
}

#[test]
fn derive_apply_merge_and_serde_work_under_another_name() {
    let mut counter = Counter::default();
    let left = Counter::update().add_count(1).push_log("left".into());
    let right = Counter::update()
        .add_count(2)
        .push_log("right".into())
        .set_label("both".into());
    let merged = left.merge(right).unwrap();
    let json = serde_json::to_string(&merged).unwrap();
    counter.apply(serde_json::from_str(&json).unwrap());
    assert_eq!(counter.count, 3);
    assert_eq!(counter.log, ["left", "right"]);
    assert_eq!(counter.label, "both");
    assert!(flowlib::state::has_field::<Counter>("log"));
}

#[node(crate = flowlib, actions = ["more", "enough"])]
fn count(counter: &Counter) -> Command<Counter> {
    let action = if counter.count < 2 { "more" } else { "enough" };
    Command::new(Counter::update().add_count(1)).with_action(action)
}

#[test]
fn flow_and_node_work_under_another_name() {
    let flow = flow! { count - "more" >> count; };
    let mut counter = Counter::default();
    assert_eq!(flow.run_blocking(&mut counter).unwrap(), "enough");
    assert_eq!(counter.count, 3);
}

#[node(crate = flowlib)]
fn note(_: &Counter) -> Command<Counter> {
    Command::new(Counter::update().push_log("note".into()))
}

#[test]
fn forks_work_under_another_name() {
    let inner = flow! { count - "more" >> count; };
    let flow = flow! { note >> [inner, count]; };
    let mut counter = Counter::default();
    flow.run_blocking(&mut counter).unwrap();
    // The inner flow counted 3 on its copy, the branch `count` 1: 4 in all.
    assert_eq!(counter.count, 4);
    assert_eq!(counter.log, ["note"]);
}
