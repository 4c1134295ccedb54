//! Queues in the state (`#[reducer(queue)]`): nodes push at the back and take from the front as
//! updates; a fork's branches may push together, and two that take are a conflict naming the
//! field; a durable run saves each take with its step, so a resume or a rebuild of the state
//! never takes twice.

use serde::{Deserialize, Serialize};
use slateflow::checkpoint::MemoryStore;
use slateflow::durable::Outcome;
use slateflow::reducer::Queue;
use slateflow::{Command, Error, SharedState, StateUpdate, flow, node};

/// Helpers shared by test files; each uses part of them.
#[allow(dead_code)]
mod support {
    pub(crate) mod runs;
}

use support::runs::block_on;

#[derive(SharedState, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Office {
    #[reducer(queue)]
    inbox: Queue<String>,
    #[reducer(append)]
    done: Vec<String>,
}

/// Posts three letters.
#[node]
fn post(_: &Office) -> Command<Office> {
    Command::new(Office::update().extend_inbox(["a", "b", "c"].map(String::from)))
}

/// Handles the letter at the front, asking a human about it; comes back while there are more.
#[node(actions = ["more", "done"])]
fn handle(office: &Office) -> Command<Office> {
    let letter = office.inbox.front().cloned().unwrap_or_default();
    let more = office.inbox.len() > 1;
    Command::new(Office::update().take_inbox(1).push_done(letter.clone()))
        .with_action(if more { "more" } else { "done" })
        .ask(serde_json::json!({ "letter": letter }))
}

/// Takes the front letter.
#[node]
fn clerk(office: &Office) -> Command<Office> {
    let letter = office.inbox.front().cloned().unwrap_or_default();
    Command::new(Office::update().take_inbox(1).push_done(letter))
}

/// Takes the front letter too.
#[node]
fn intern(office: &Office) -> Command<Office> {
    let letter = office.inbox.front().cloned().unwrap_or_default();
    Command::new(Office::update().take_inbox(1).push_done(letter))
}

/// Posts one more letter.
#[node]
fn courier(_: &Office) -> Command<Office> {
    Command::new(Office::update().push_inbox("d".into()))
}

#[test]
fn a_durable_run_takes_each_letter_once_across_pauses_and_rebuilds() {
    let flow = flow! {
        post >> handle;
        handle - "more" >> handle;
    };
    let durable = flow.durable(MemoryStore::new());
    let mut office = Office::default();
    let mut outcome = block_on(durable.start("letters", &mut office)).unwrap();
    let mut asked = Vec::new();
    while let Outcome::Paused(pauses) = outcome {
        asked.push(pauses[0].asked.clone().unwrap()["letter"].clone());
        // The take was saved with the step: the state the thread holds no longer has the letter.
        let saved = block_on(durable.state("letters")).unwrap();
        assert_eq!(saved.inbox.len(), 3 - asked.len());
        outcome = block_on(durable.resume("letters")).unwrap().1;
    }
    assert_eq!(asked, ["a", "b", "c"]);
    let office = block_on(durable.state("letters")).unwrap();
    assert_eq!(office.done, ["a", "b", "c"]);
    assert!(office.inbox.is_empty());
    // The state at each step, rebuilt from the saved updates, takes the same letters.
    let second = block_on(durable.state_at("letters", 2)).unwrap();
    assert_eq!(second.inbox.iter().collect::<Vec<_>>(), ["b", "c"]);
    assert_eq!(second.done, ["a"]);
}

#[test]
fn two_branches_that_take_from_one_queue_are_a_conflict_naming_it() {
    let flow = flow! { post >> [clerk, intern]; };
    let error = flow.run_blocking(&mut Office::default()).unwrap_err();
    assert!(
        matches!(
            error,
            Error::ParallelConflict {
                field: "inbox",
                first: "clerk",
                second: "intern",
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn a_branch_takes_while_another_pushes() {
    let flow = flow! { post >> [clerk, courier]; };
    let mut office = Office::default();
    flow.run_blocking(&mut office).unwrap();
    assert_eq!(office.done, ["a"]);
    assert_eq!(office.inbox.iter().collect::<Vec<_>>(), ["b", "c", "d"]);
}

#[test]
fn a_queue_reads_from_json_as_a_list_and_an_update_that_takes_round_trips() {
    let office: Office = serde_json::from_str(r#"{"inbox": ["x", "y"], "done": []}"#).unwrap();
    assert_eq!(office.inbox.front().map(String::as_str), Some("x"));
    let update = Office::update()
        .take_inbox(1)
        .push_inbox("z".into())
        .overwrite_done(vec![]);
    let json = serde_json::to_value(&update).unwrap();
    assert_eq!(
        json["inbox"],
        serde_json::json!({ "ops": [{ "take": 1 }, { "push": ["z"] }] })
    );
    let read: OfficeUpdate = serde_json::from_value(json).unwrap();
    let mut applied = office.clone();
    applied.apply(read);
    assert_eq!(applied.inbox.iter().collect::<Vec<_>>(), ["y", "z"]);
    // Two updates composed apply as one after the other.
    let first = Office::update().push_inbox("w".into());
    let second = Office::update().take_inbox(3);
    let mut one_by_one = office.clone();
    one_by_one.apply(first.clone());
    one_by_one.apply(second.clone());
    let mut composed = office;
    composed.apply(first.then(second));
    assert_eq!(composed, one_by_one);
    assert!(composed.inbox.is_empty());
}
