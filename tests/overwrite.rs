//! Overwrites: an update may replace a reducer field (`add`, `append`, `with`) instead of reducing
//! it. Sequential composition, the JSON form, parallel merges (an overwrite is the base the other
//! branches' writes land on; two overwrites are a conflict naming both), concurrent batch flows
//! and durable replay.

use serde::{Deserialize, Serialize};
use slateflow::agent::message::{Message, Messages};
use slateflow::batch::Batch;
use slateflow::checkpoint::MemoryStore;
use slateflow::durable::Outcome;
use slateflow::{Command, Context, Error, Params, SharedState, StateUpdate, flow, node};

fn keep_max(current: &mut u32, value: u32) {
    *current = (*current).max(value);
}

#[derive(SharedState, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Chat {
    topic: String,
    #[reducer(add)]
    turns: u32,
    #[reducer(append)]
    log: Vec<String>,
    #[reducer(with = keep_max)]
    peak: u32,
    #[reducer(append)]
    messages: Messages,
}

fn filled() -> Chat {
    let mut chat = Chat::default();
    chat.apply(
        Chat::update()
            .set_topic("billing".into())
            .add_turns(5)
            .extend_log(["a".to_string(), "b".to_string(), "c".to_string()])
            .reduce_peak(9)
            .extend_messages([
                Message::human("hi").with_id("m1"),
                Message::ai("hello").with_id("m2"),
            ]),
    );
    chat
}

fn applied(mut state: Chat, update: ChatUpdate) -> Chat {
    state.apply(update);
    state
}

#[test]
fn an_overwrite_replaces_each_kind_of_reducer_field() {
    let state = applied(
        filled(),
        Chat::update()
            .overwrite_turns(0)
            .overwrite_log(vec!["kept".into()])
            .overwrite_peak(2)
            .overwrite_messages(Messages::from(vec![Message::ai("summary").with_id("s")])),
    );
    assert_eq!(state.turns, 0, "an `add` field is reset, not added to");
    assert_eq!(state.log, ["kept"]);
    assert_eq!(
        state.peak, 2,
        "a `with` field skips its function (max would keep 9)"
    );
    let ids: Vec<_> = state.messages.iter().map(|m| m.id().unwrap()).collect();
    assert_eq!(ids, ["s"]);
    assert_eq!(state.topic, "billing", "fields not written are untouched");
}

#[test]
fn writes_after_an_overwrite_in_one_update_land_on_it() {
    let state = applied(
        filled(),
        Chat::update()
            .overwrite_turns(1)
            .add_turns(2)
            .overwrite_log(vec!["x".into()])
            .push_log("y".into())
            .overwrite_peak(1)
            .reduce_peak(4),
    );
    assert_eq!((state.turns, state.peak), (3, 4));
    assert_eq!(state.log, ["x", "y"]);
    // A reduction before the overwrite is replaced by it.
    let state = applied(filled(), Chat::update().add_turns(7).overwrite_turns(1));
    assert_eq!(state.turns, 1);
}

#[test]
fn a_trimmed_history_takes_edits_by_id_as_the_state_would() {
    let trimmed = Messages::from(vec![
        Message::human("q").with_id("m1"),
        Message::ai("a").with_id("m2"),
    ]);
    let edit = Messages::from(vec![Message::ai("a, corrected").with_id("m2")]);
    let state = applied(
        filled(),
        Chat::update()
            .overwrite_messages(trimmed)
            .append_messages(edit)
            .push_messages(Message::human("next").with_id("m3")),
    );
    let texts: Vec<&str> = state.messages.iter().map(Message::content).collect();
    assert_eq!(texts, ["q", "a, corrected", "next"]);
}

/// Updates over every kind of write to `turns` and `log`: none, reduce, overwrite, overwrite then
/// reduce, reduce then overwrite.
fn alphabet() -> Vec<ChatUpdate> {
    let turns = [
        Chat::update(),
        Chat::update().add_turns(2),
        Chat::update().overwrite_turns(10),
        Chat::update().overwrite_turns(20).add_turns(3),
        Chat::update().add_turns(4).overwrite_turns(30),
    ];
    let logs = [
        Chat::update(),
        Chat::update().push_log("r".into()),
        Chat::update().overwrite_log(vec!["o".into()]),
        Chat::update()
            .overwrite_log(vec!["p".into()])
            .push_log("q".into()),
    ];
    let mut all = Vec::new();
    for turn in &turns {
        for log in &logs {
            all.push(turn.clone().then(log.clone()).reduce_peak(1));
        }
    }
    all
}

#[test]
fn the_fields_an_update_claims_alone_meet_exactly_when_two_updates_conflict() {
    // What a fork checks in one pass must agree with the pairwise check that names the field.
    let mut updates = alphabet();
    updates.push(Chat::update().set_topic("refunds".into()));
    updates.push(
        Chat::update()
            .set_topic("refunds".into())
            .push_log("x".into()),
    );
    let mut conflicts = 0;
    for first in &updates {
        for second in &updates {
            let (Some(left), Some(right)) = (first.__contested(), second.__contested()) else {
                panic!("a derived update of a small state says which fields it claims");
            };
            let conflict = first.conflict(second);
            assert_eq!(
                left & right != 0,
                conflict.is_some(),
                "{first:?} against {second:?}"
            );
            conflicts += usize::from(conflict.is_some());
        }
    }
    assert!(conflicts > 0 && conflicts < updates.len() * updates.len());
}

#[test]
fn composing_then_applying_equals_applying_one_after_another() {
    let updates = alphabet();
    let mut checked = 0;
    for first in &updates {
        for second in &updates {
            for third in &updates {
                let stepwise = applied(
                    applied(applied(filled(), first.clone()), second.clone()),
                    third.clone(),
                );
                let left = first.clone().then(second.clone()).then(third.clone());
                let right = first.clone().then(second.clone().then(third.clone()));
                assert_eq!(
                    applied(filled(), left),
                    stepwise,
                    "{first:?} {second:?} {third:?}"
                );
                assert_eq!(applied(filled(), right), stepwise, "associativity");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 20 * 20 * 20);
}

#[test]
fn an_overwrite_survives_json_and_is_listed_beside_its_value() {
    let update = Chat::update().overwrite_turns(0).push_log("x".into());
    let json = serde_json::to_value(&update).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"turns": 0, "log": ["x"], "$overwrite": ["turns"]})
    );
    let back: ChatUpdate = serde_json::from_value(json).unwrap();
    assert_eq!(applied(filled(), back), applied(filled(), update));
    // Without overwrites, the key is left out.
    let plain = serde_json::to_value(Chat::update().add_turns(1)).unwrap();
    assert_eq!(plain, serde_json::json!({"turns": 1}));
    for update in alphabet() {
        let back: ChatUpdate =
            serde_json::from_str(&serde_json::to_string(&update).unwrap()).unwrap();
        assert_eq!(applied(filled(), back), applied(filled(), update));
    }
}

#[test]
fn an_overwrite_of_a_field_without_a_reducer_is_an_error_naming_it() {
    let error = serde_json::from_str::<ChatUpdate>(r#"{"topic": "x", "$overwrite": ["topic"]}"#)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(
            "`$overwrite` names `topic`, which is not a reducer field of `Chat` (only `add`, \
             `append` and `with` fields can be overwritten; Chat's are: turns, log, peak, \
             messages)"
        ),
        "{error}"
    );
    let error = serde_json::from_str::<ChatUpdate>(r#"{"$overwrite": ["nope"]}"#)
        .unwrap_err()
        .to_string();
    assert!(error.contains("`nope`"), "{error}");
}

#[test]
fn in_a_merge_the_overwrite_is_the_base_whichever_side_it_is_on() {
    let trimmed = Chat::update().overwrite_log(vec!["trimmed".into()]);
    let add = Chat::update().push_log("new".into()).add_turns(1);
    for (left, right) in [
        (trimmed.clone(), add.clone()),
        (add.clone(), trimmed.clone()),
    ] {
        assert_eq!(left.conflict(&right), None);
        let state = applied(filled(), left.merge(right).unwrap());
        assert_eq!(
            state.log,
            ["trimmed", "new"],
            "nothing of the sibling is lost"
        );
        assert_eq!(state.turns, 6);
    }
    let other_trim = Chat::update().overwrite_log(vec![]);
    let conflict = trimmed.conflict(&other_trim).unwrap();
    assert!(conflict.is_overwrite());
    assert_eq!(conflict.field(), "log");
    assert_eq!(trimmed.merge(other_trim).unwrap_err(), conflict);
    assert!(
        conflict
            .to_string()
            .contains("overwrites of the field `log`")
    );
}

// ---- forks ---------------------------------------------------------------------------------------

#[node]
fn speak(_: &Chat) -> Command<Chat> {
    Command::new(Chat::update().push_log("spoken".into()).add_turns(1))
}

#[node]
fn listen(_: &Chat) -> Command<Chat> {
    Command::new(Chat::update().push_log("heard".into()).add_turns(1))
}

/// Keeps the last entry of the log as it was when the fork started.
#[node]
fn trim(chat: &Chat) -> Command<Chat> {
    let last = chat.log.last().cloned().into_iter().collect();
    Command::new(Chat::update().overwrite_log(last).overwrite_turns(0))
}

#[node]
fn clear(_: &Chat) -> Command<Chat> {
    Command::new(Chat::update().overwrite_log(Vec::new()))
}

#[node]
fn begin(_: &Chat) -> Command<Chat> {
    Command::new(Chat::update())
}

#[node]
fn end(_: &Chat) -> Command<Chat> {
    Command::new(Chat::update())
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn a_branch_that_trims_does_not_lose_its_siblings_writes_wherever_it_is_written() {
    let expected_log = ["c", "spoken", "heard"];
    let mut first = filled();
    block_on(flow! { begin >> [trim, speak, listen] >> end; }.run(&mut first)).unwrap();
    let mut middle = filled();
    block_on(flow! { begin >> [speak, trim, listen] >> end; }.run(&mut middle)).unwrap();
    let mut last = filled();
    block_on(flow! { begin >> [speak, listen, trim] >> end; }.run(&mut last)).unwrap();
    for state in [&first, &middle, &last] {
        assert_eq!(state.log, expected_log);
        assert_eq!(state.turns, 2, "reset to 0, then both siblings' increments");
    }
}

#[test]
fn two_branches_overwriting_one_field_fail_the_fork_naming_both() {
    let mut state = filled();
    let error =
        block_on(flow! { begin >> [trim, speak, clear] >> end; }.run(&mut state)).unwrap_err();
    assert!(
        matches!(
            error,
            Error::ParallelOverwrite {
                field: "log",
                first: "trim",
                second: "clear",
                step: 2,
            }
        ),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("both overwrote the field `log`"),
        "{error}"
    );
    assert_eq!(state, filled(), "nothing of the fork was applied");
}

// ---- batch flows ---------------------------------------------------------------------------------

#[node]
fn restart(_: &Chat, context: &Context<'_>) -> Command<Chat> {
    let item = context
        .params()
        .get("item")
        .and_then(serde_json::Value::as_u64)
        .unwrap();
    let item = u32::try_from(item).unwrap();
    Command::new(
        Chat::update()
            .push_log(format!("item {item}"))
            .overwrite_turns(item * 10)
            .add_turns(1),
    )
}

#[test]
fn concurrent_batch_runs_compose_as_if_they_ran_one_after_another() {
    let items = slateflow::batch::from_fn(|_: &Chat| {
        (1..=3)
            .map(|item| Params::new().with("item", item))
            .collect()
    });
    let batch = Batch::flow(flow! { restart; }, items);
    let mut sequential = filled();
    flow! { batch; }.run_blocking(&mut sequential).unwrap();
    let items = slateflow::batch::from_fn(|_: &Chat| {
        (1..=3)
            .map(|item| Params::new().with("item", item))
            .collect()
    });
    let batch = Batch::flow(flow! { restart; }, items).concurrent(3);
    let mut concurrent = filled();
    flow! { batch; }.run_blocking(&mut concurrent).unwrap();
    assert_eq!(concurrent, sequential);
    assert_eq!(
        concurrent.turns, 31,
        "the last item's overwrite, then its increment"
    );
    assert_eq!(
        concurrent.log,
        ["a", "b", "c", "item 1", "item 2", "item 3"]
    );
}

// ---- durable runs --------------------------------------------------------------------------------

#[node]
fn ask_to_trim(_: &Chat) -> Command<Chat> {
    Command::new(Chat::update().push_log("trim?".into())).ask(serde_json::json!("how many?"))
}

#[test]
fn an_overwrite_is_saved_and_replayed_on_resume() {
    let flow = flow! { trim >> ask_to_trim >> speak; };
    let durable = flow.durable(MemoryStore::new());
    let mut state = filled();
    let outcome = block_on(durable.start("t", &mut state)).unwrap();
    let Outcome::Paused(pauses) = outcome else {
        panic!("expected a pause, got {outcome:?}");
    };
    let history = block_on(durable.history("t")).unwrap();
    let trim_step = history.iter().find(|record| record.node == "trim").unwrap();
    let saved: serde_json::Value = serde_json::to_value(&trim_step.update).unwrap();
    assert_eq!(saved["$overwrite"], serde_json::json!(["turns", "log"]));
    // The thread is rebuilt from its log: the overwrite must replay as an overwrite.
    block_on(durable.answer("t", &pauses[0].key, Chat::update().overwrite_log(vec![]))).unwrap();
    let (resumed, outcome) = block_on(durable.resume("t")).unwrap();
    assert_eq!(outcome, Outcome::Finished("default".into()));
    assert_eq!(
        resumed.log,
        ["spoken"],
        "the answer's overwrite replaced the log"
    );
    assert_eq!(resumed.turns, 1);
    assert_eq!(block_on(durable.state("t")).unwrap(), resumed);
}

/// A state of 300 fields, 200 of them `add` reducers: more than one word of overwrite bits, and
/// more fields than a fork's one-pass conflict check has bits for (it compares pairs instead).
// Most of the 300 fields' setters are never called, and with the derive inside `macro_rules!`,
// rustc lints them as it does not for a state written out.
#[allow(dead_code)]
mod wide {
    use super::*;

    macro_rules! wide_state {
        ($($add:ident)*; $($last:ident)*) => {
            #[derive(SharedState, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
            pub(super) struct Wide {
                $(#[reducer(add)] pub(super) $add: u64,)*
                $(pub(super) $last: Option<u64>,)*
            }
        };
    }

    wide_state! {
        a0 a1 a2 a3 a4 a5 a6 a7 a8 a9 a10 a11 a12 a13 a14 a15 a16 a17 a18 a19 a20 a21 a22
        a23 a24 a25 a26 a27 a28 a29 a30 a31 a32 a33 a34 a35 a36 a37 a38 a39 a40 a41 a42 a43
        a44 a45 a46 a47 a48 a49 a50 a51 a52 a53 a54 a55 a56 a57 a58 a59 a60 a61 a62 a63 a64
        a65 a66 a67 a68 a69 a70 a71 a72 a73 a74 a75 a76 a77 a78 a79 a80 a81 a82 a83 a84 a85
        a86 a87 a88 a89 a90 a91 a92 a93 a94 a95 a96 a97 a98 a99 a100 a101 a102 a103 a104
        a105 a106 a107 a108 a109 a110 a111 a112 a113 a114 a115 a116 a117 a118 a119 a120 a121
        a122 a123 a124 a125 a126 a127 a128 a129 a130 a131 a132 a133 a134 a135 a136 a137 a138
        a139 a140 a141 a142 a143 a144 a145 a146 a147 a148 a149 a150 a151 a152 a153 a154 a155
        a156 a157 a158 a159 a160 a161 a162 a163 a164 a165 a166 a167 a168 a169 a170 a171 a172
        a173 a174 a175 a176 a177 a178 a179 a180 a181 a182 a183 a184 a185 a186 a187 a188 a189
        a190 a191 a192 a193 a194 a195 a196 a197 a198 a199;
        w0 w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16 w17 w18 w19 w20 w21 w22
        w23 w24 w25 w26 w27 w28 w29 w30 w31 w32 w33 w34 w35 w36 w37 w38 w39 w40 w41 w42 w43
        w44 w45 w46 w47 w48 w49 w50 w51 w52 w53 w54 w55 w56 w57 w58 w59 w60 w61 w62 w63 w64
        w65 w66 w67 w68 w69 w70 w71 w72 w73 w74 w75 w76 w77 w78 w79 w80 w81 w82 w83 w84 w85
        w86 w87 w88 w89 w90 w91 w92 w93 w94 w95 w96 w97 w98 w99
    }

    #[test]
    fn a_state_with_200_reducer_fields_reduces_overwrites_and_reads_back() {
        let mut state = Wide::default();
        state.apply(Wide::update().add_a0(1).add_a63(2).add_a64(3).add_a199(4));
        state.apply(Wide::update().add_a199(5).set_w99(Some(7)));
        assert_eq!((state.a0, state.a63, state.a64, state.a199), (1, 2, 3, 9));
        assert_eq!(state.w99, Some(7));
        // An overwrite of a field past the first 64 bits: replaces, then later adds land on it.
        let update = Wide::update()
            .overwrite_a150(40)
            .overwrite_a64(0)
            .then(Wide::update().add_a150(2));
        let json = serde_json::to_value(&update).unwrap();
        assert_eq!(json["$overwrite"], serde_json::json!(["a64", "a150"]));
        let read: WideUpdate = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(&read).unwrap(), json);
        state.apply(read);
        assert_eq!((state.a64, state.a150, state.a199), (0, 42, 9));
        let error = serde_json::from_value::<WideUpdate>(serde_json::json!({"$overwrite": ["w1"]}))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`w1`, which is not a reducer field of `Wide`"),
            "{error}"
        );
    }

    #[test]
    fn merges_of_a_state_with_200_reducer_fields_find_their_conflicts() {
        let left = Wide::update().add_a199(1).overwrite_a100(5).set_w0(Some(1));
        let right = Wide::update().add_a199(2).add_a100(1).set_w1(Some(2));
        assert_eq!(left.conflict(&right), None);
        let merged = left.clone().merge(right.clone()).unwrap();
        let mut state = Wide::default();
        state.apply(merged);
        assert_eq!(
            (state.a100, state.a199, state.w0, state.w1),
            (6, 3, Some(1), Some(2))
        );
        let both_overwrite = Wide::update().overwrite_a100(1);
        let conflict = left.conflict(&both_overwrite).unwrap();
        assert_eq!((conflict.field(), conflict.is_overwrite()), ("a100", true));
        let both_write = Wide::update().set_w0(Some(3));
        let conflict = left.clone().merge(both_write).unwrap_err();
        assert_eq!((conflict.field(), conflict.is_overwrite()), ("w0", false));
    }

    #[node]
    fn first(_: &Wide) -> Command<Wide> {
        Command::new(Wide::update().add_a199(1).overwrite_a130(10))
    }

    #[node]
    fn second(_: &Wide) -> Command<Wide> {
        Command::new(Wide::update().add_a199(2).add_a130(1).set_w50(Some(5)))
    }

    #[node]
    fn third(_: &Wide) -> Command<Wide> {
        Command::new(Wide::update().set_w50(Some(6)))
    }

    #[test]
    fn a_fork_on_a_state_with_200_reducer_fields_merges_and_names_its_conflicts() {
        let flow = flow! { [first, second]; };
        let mut state = Wide::default();
        block_on(flow.run(&mut state)).unwrap();
        assert_eq!((state.a130, state.a199, state.w50), (11, 3, Some(5)));
        let flow = flow! { [first, second, third]; };
        let error = block_on(flow.run(&mut Wide::default())).unwrap_err();
        assert!(
            matches!(
                error,
                Error::ParallelConflict {
                    field: "w50",
                    first: "second",
                    second: "third",
                    ..
                }
            ),
            "{error:?}"
        );
    }
}
