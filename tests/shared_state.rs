//! Behaviour of `#[derive(SharedState)]`: apply, composition, merge, metadata, serde, templates.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::AddAssign;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use slateflow::reducer::Reducer;
use slateflow::state::{Field, has_field};
use slateflow::{MergeConflict, SharedState, StateUpdate, UpdateOf};

/// A chat message, as an item of an append field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Message {
    role: String,
    text: String,
}

fn message(role: &str, text: &str) -> Message {
    Message {
        role: role.into(),
        text: text.into(),
    }
}

/// Not serializable: lives in a `#[serde(skip)]` field.
#[derive(Clone, Debug, Default, PartialEq)]
struct Handle(u32);

fn keep_max(current: &mut f64, new: f64) {
    if new > *current {
        *current = new;
    }
}

#[derive(SharedState, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Triage {
    /// The alert as received.
    alert_text: String,
    classification: Option<String>,
    #[reducer(add)]
    count: u64,
    #[reducer(append)]
    messages: Vec<Message>,
    #[reducer(with = keep_max)]
    score: f64,
    #[serde(skip)]
    handle: Handle,
}

fn triage() -> Triage {
    Triage {
        alert_text: "login from a new country".into(),
        classification: None,
        count: 10,
        messages: vec![message("human", "alert")],
        score: 0.5,
        handle: Handle(7),
    }
}

fn applied(mut state: Triage, updates: impl IntoIterator<Item = TriageUpdate>) -> Triage {
    for update in updates {
        state.apply(update);
    }
    state
}

/// A few updates that together write every field, used to check the composition laws.
fn sample_updates() -> Vec<TriageUpdate> {
    vec![
        TriageUpdate::new(),
        Triage::update().set_alert_text("first".into()).add_count(1),
        Triage::update()
            .set_classification(Some("intrusion".into()))
            .push_messages(message("ai", "looks bad"))
            .reduce_score(0.9),
        Triage::update()
            .set_classification(None)
            .add_count(5)
            .reduce_score(0.2)
            .set_handle(Handle(1)),
        Triage::update()
            .set_alert_text("second".into())
            .extend_messages([message("tool", "whois"), message("tool", "geoip")]),
    ]
}

mod apply {
    use super::*;

    #[test]
    fn last_write_replaces_and_keeps_unwritten_fields() {
        let state = applied(triage(), [Triage::update().set_alert_text("new".into())]);
        assert_eq!(state.alert_text, "new");
        assert_eq!(state.count, 10);
        assert_eq!(state.messages.len(), 1);
    }

    #[test]
    fn written_none_differs_from_not_written() {
        let mut state = triage();
        state.classification = Some("phishing".into());
        let untouched = applied(state.clone(), [Triage::update().add_count(1)]);
        assert_eq!(untouched.classification.as_deref(), Some("phishing"));
        let cleared = applied(state, [Triage::update().set_classification(None)]);
        assert_eq!(cleared.classification, None);
    }

    #[test]
    fn add_sums_increments_onto_the_current_value() {
        let state = applied(
            triage(),
            [Triage::update().add_count(1), Triage::update().add_count(1)],
        );
        assert_eq!(state.count, 12);
    }

    #[test]
    fn append_keeps_existing_items_first_and_new_ones_in_order() {
        let state = applied(
            triage(),
            [
                Triage::update().push_messages(message("ai", "one")),
                Triage::update().extend_messages([message("ai", "two"), message("ai", "three")]),
            ],
        );
        let texts: Vec<&str> = state.messages.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["alert", "one", "two", "three"]);
    }

    #[test]
    fn with_calls_the_user_function() {
        let state = applied(triage(), [Triage::update().reduce_score(0.2)]);
        assert!(
            (state.score - 0.5).abs() < f64::EPSILON,
            "0.2 < 0.5 keeps 0.5"
        );
        let state = applied(state, [Triage::update().reduce_score(0.75)]);
        assert!((state.score - 0.75).abs() < f64::EPSILON);
    }

    #[test]
    fn an_empty_update_changes_nothing() {
        let update = TriageUpdate::new();
        assert!(update.is_empty());
        assert!(StateUpdate::is_empty(&TriageUpdate::default()));
        assert_eq!(applied(triage(), [update]), triage());
    }

    #[test]
    fn any_written_field_makes_an_update_non_empty() {
        for update in sample_updates().into_iter().skip(1) {
            assert!(!update.is_empty(), "{update:?}");
        }
        assert!(!Triage::update().set_classification(None).is_empty());
        assert!(!Triage::update().extend_messages([]).is_empty());
    }

    #[test]
    fn skipped_fields_can_still_be_written() {
        let state = applied(triage(), [Triage::update().set_handle(Handle(9))]);
        assert_eq!(state.handle, Handle(9));
    }
}

mod setters {
    use super::*;

    #[test]
    fn repeated_setters_follow_their_reducer() {
        let update = Triage::update()
            .set_alert_text("a".into())
            .set_alert_text("b".into())
            .add_count(2)
            .add_count(3)
            .push_messages(message("ai", "x"))
            .extend_messages([message("ai", "y")])
            .reduce_score(0.9)
            .reduce_score(0.1);
        assert_eq!(update.alert_text.as_deref(), Some("b"));
        assert_eq!(update.count, Some(5));
        assert_eq!(
            update.messages,
            Some(vec![message("ai", "x"), message("ai", "y")])
        );
        assert_eq!(update.score, Some(0.9));
        assert_eq!(update.classification, None);
    }
}

mod composition {
    use super::*;

    #[test]
    fn then_applies_like_the_two_updates_in_sequence() {
        let updates = sample_updates();
        for first in &updates {
            for second in &updates {
                let sequential = applied(triage(), [first.clone(), second.clone()]);
                let composed = applied(triage(), [first.clone().then(second.clone())]);
                assert_eq!(composed, sequential, "{first:?} then {second:?}");
            }
        }
    }

    #[test]
    fn then_by_reducer() {
        let first = Triage::update()
            .set_alert_text("old".into())
            .add_count(2)
            .push_messages(message("ai", "1"))
            .reduce_score(0.3);
        let second = Triage::update()
            .set_alert_text("new".into())
            .add_count(3)
            .push_messages(message("ai", "2"))
            .reduce_score(0.1);
        let both = first.then(second);
        assert_eq!(both.alert_text.as_deref(), Some("new"));
        assert_eq!(both.count, Some(5));
        assert_eq!(
            both.messages,
            Some(vec![message("ai", "1"), message("ai", "2")])
        );
        assert_eq!(both.score, Some(0.3));
    }

    #[test]
    fn a_later_write_of_none_wins() {
        let both = Triage::update()
            .set_classification(Some("x".into()))
            .then(Triage::update().set_classification(None));
        assert_eq!(both.classification, Some(None));
    }

    #[test]
    fn empty_updates_are_identities() {
        for update in sample_updates() {
            let left = TriageUpdate::new().then(update.clone());
            let right = update.clone().then(TriageUpdate::new());
            assert_eq!(format!("{left:?}"), format!("{update:?}"));
            assert_eq!(format!("{right:?}"), format!("{update:?}"));
        }
    }
}

mod merge {
    use super::*;

    #[test]
    fn reducer_fields_merge_and_last_write_fields_pass_through() {
        let left = Triage::update()
            .add_count(1)
            .push_messages(message("ai", "left"))
            .reduce_score(0.4)
            .set_alert_text("from left".into());
        let right = Triage::update()
            .add_count(1)
            .push_messages(message("ai", "right"))
            .reduce_score(0.8)
            .set_classification(Some("intrusion".into()));
        let merged = left
            .merge(right)
            .expect("no last-write field is written twice");
        let state = applied(triage(), [merged]);
        assert_eq!(state.count, 12, "10 plus two branches adding 1");
        let texts: Vec<&str> = state.messages.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["alert", "left", "right"]);
        assert!((state.score - 0.8).abs() < f64::EPSILON);
        assert_eq!(state.alert_text, "from left");
        assert_eq!(state.classification.as_deref(), Some("intrusion"));
    }

    #[test]
    fn append_merges_in_argument_order() {
        let a = Triage::update().push_messages(message("ai", "a"));
        let b = Triage::update().push_messages(message("ai", "b"));
        let ab = a.clone().merge(b.clone()).unwrap();
        let ba = b.merge(a).unwrap();
        assert_eq!(
            ab.messages,
            Some(vec![message("ai", "a"), message("ai", "b")])
        );
        assert_eq!(
            ba.messages,
            Some(vec![message("ai", "b"), message("ai", "a")])
        );
    }

    #[test]
    fn a_successful_merge_applies_like_then() {
        let updates = sample_updates();
        for left in &updates {
            for right in &updates {
                if let Ok(merged) = left.clone().merge(right.clone()) {
                    let sequential = applied(triage(), [left.clone(), right.clone()]);
                    assert_eq!(applied(triage(), [merged]), sequential);
                }
            }
        }
    }

    #[test]
    fn a_last_write_field_written_by_both_is_a_conflict_even_when_equal() {
        let left = Triage::update().set_classification(Some("phishing".into()));
        let right = Triage::update().set_classification(Some("phishing".into()));
        let conflict = left.merge(right).unwrap_err();
        assert_eq!(conflict, MergeConflict::new("classification"));
        assert_eq!(conflict.field(), "classification");
    }

    #[test]
    fn written_none_on_both_sides_is_a_conflict_too() {
        let left = Triage::update().set_classification(None);
        let right = Triage::update().set_classification(None);
        assert_eq!(left.merge(right).unwrap_err().field(), "classification");
    }

    #[test]
    fn the_conflict_names_the_first_field_in_declaration_order() {
        let left = Triage::update()
            .set_alert_text("a".into())
            .set_classification(None);
        let right = Triage::update()
            .set_classification(None)
            .set_alert_text("b".into());
        assert_eq!(left.merge(right).unwrap_err().field(), "alert_text");
    }

    #[test]
    fn the_conflict_message_says_what_and_what_to_do() {
        let conflict = Triage::update()
            .set_alert_text("a".into())
            .merge(Triage::update().set_alert_text("b".into()))
            .unwrap_err();
        assert_eq!(
            conflict.to_string(),
            "conflicting parallel writes to the last-write-wins field `alert_text`: write it from \
             one branch only, or give it a reducer such as `#[reducer(append)]` or \
             `#[reducer(with = path)]`"
        );
        let boxed: Box<dyn std::error::Error> = Box::new(conflict);
        assert!(boxed.source().is_none());
    }

    #[test]
    fn merge_is_associative_for_add_and_append() {
        let a = Triage::update()
            .add_count(1)
            .push_messages(message("ai", "a"));
        let b = Triage::update()
            .add_count(20)
            .extend_messages([message("ai", "b1"), message("ai", "b2")]);
        let c = Triage::update()
            .add_count(300)
            .push_messages(message("ai", "c"));
        let left = a
            .clone()
            .merge(b.clone())
            .unwrap()
            .merge(c.clone())
            .unwrap();
        let right = a.merge(b.merge(c).unwrap()).unwrap();
        assert_eq!(left.count, Some(321));
        assert_eq!(left.count, right.count);
        assert_eq!(left.messages, right.messages);
        let texts: Vec<String> = left.messages.unwrap().into_iter().map(|m| m.text).collect();
        assert_eq!(texts, ["a", "b1", "b2", "c"]);
    }
}

mod metadata {
    use super::*;

    #[test]
    fn fields_record_name_reducer_and_type_as_written() {
        let described: Vec<(&str, Reducer, &str)> = Triage::FIELDS
            .iter()
            .map(|field| (field.name(), field.reducer(), field.type_name()))
            .collect();
        assert_eq!(
            described,
            [
                ("alert_text", Reducer::LastWrite, "String"),
                ("classification", Reducer::LastWrite, "Option<String>"),
                ("count", Reducer::Add, "u64"),
                ("messages", Reducer::Append, "Vec<Message>"),
                ("score", Reducer::With { path: "keep_max" }, "f64"),
                ("handle", Reducer::LastWrite, "Handle"),
            ]
        );
    }

    #[test]
    fn has_field_works_in_const_context() {
        const FIRST: &Field = &Triage::FIELDS[0];
        // Evaluated by the compiler: a wrong answer fails the build of this test.
        const {
            assert!(has_field::<Triage>("count"));
            assert!(has_field::<Triage>("handle"));
            assert!(!has_field::<Triage>("total"));
            assert!(!has_field::<Triage>("Count"));
        };
        assert_eq!(FIRST.name(), "alert_text");
        let names: Vec<&str> = Triage::FIELDS.iter().map(Field::name).collect();
        for name in names {
            assert!(has_field::<Triage>(name), "{name}");
        }
    }

    #[test]
    fn field_looks_up_by_name() {
        assert_eq!(
            Triage::field("count").map(Field::reducer),
            Some(Reducer::Add)
        );
        assert_eq!(Triage::field("nope"), None);
    }
}

mod serde_round_trip {
    use super::*;

    #[test]
    fn only_written_fields_are_serialized() {
        let update = Triage::update()
            .add_count(2)
            .set_classification(None)
            .set_handle(Handle(3));
        let json = serde_json::to_value(&update).unwrap();
        assert_eq!(
            json,
            serde_json::json!({ "count": 2, "classification": null })
        );
        assert_eq!(serde_json::to_string(&TriageUpdate::new()).unwrap(), "{}");
    }

    #[test]
    fn every_sample_update_survives_a_round_trip() {
        for update in sample_updates() {
            let json = serde_json::to_string(&update).unwrap();
            let back: TriageUpdate = serde_json::from_str(&json).unwrap();
            // The skipped field is not carried: compare what a state gets from each.
            let expected = applied(triage(), [update.clone().then(TriageUpdate::new())]);
            let mut got = applied(triage(), [back]);
            got.handle = expected.handle.clone();
            assert_eq!(got, expected, "{json}");
        }
    }

    #[test]
    fn a_written_none_stays_written() {
        let back: TriageUpdate = serde_json::from_str(r#"{"classification":null}"#).unwrap();
        assert_eq!(back.classification, Some(None));
        let absent: TriageUpdate = serde_json::from_str("{}").unwrap();
        assert_eq!(absent.classification, None);
    }

    #[test]
    fn an_unknown_field_is_an_error_that_names_it() {
        let error = serde_json::from_str::<TriageUpdate>(r#"{"cuont":1}"#).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("unknown field `cuont`"), "{message}");
        assert!(message.contains("`count`"), "{message}");
    }

    #[test]
    fn a_skipped_field_is_not_read_back() {
        let error = serde_json::from_str::<TriageUpdate>(r#"{"handle":1}"#).unwrap_err();
        assert!(
            error.to_string().contains("unknown field `handle`"),
            "{error}"
        );
    }

    #[test]
    fn a_wrong_type_is_an_error_that_names_where() {
        let error = serde_json::from_str::<TriageUpdate>(r#"{"count":"many"}"#).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("invalid type: string \"many\""),
            "{message}"
        );
        assert!(message.contains("column"), "{message}");
    }
}

mod field_text {
    use super::*;

    #[test]
    fn values_render_by_kind() {
        let mut state = triage();
        assert_eq!(
            state.field_text("alert_text").as_deref(),
            Some("login from a new country")
        );
        assert_eq!(state.field_text("classification"), None, "unset Option");
        state.classification = Some("intrusion".into());
        assert_eq!(
            state.field_text("classification").as_deref(),
            Some("intrusion")
        );
        assert_eq!(state.field_text("count").as_deref(), Some("10"));
        assert_eq!(state.field_text("score").as_deref(), Some("0.5"));
        assert_eq!(
            state.field_text("messages").as_deref(),
            Some(r#"[{"role":"human","text":"alert"}]"#)
        );
    }

    #[test]
    fn unknown_and_skipped_fields_have_no_text() {
        let state = triage();
        assert_eq!(state.field_text("nope"), None);
        assert_eq!(state.field_text("handle"), None);
    }
}

mod reducer_types {
    use super::*;

    /// A user type with `+=`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Tokens {
        prompt: u32,
        completion: u32,
    }

    impl AddAssign for Tokens {
        fn add_assign(&mut self, other: Self) {
            self.prompt += other.prompt;
            self.completion += other.completion;
        }
    }

    /// Keyed merge: counts per key add up.
    fn add_counts(current: &mut BTreeMap<String, u32>, new: BTreeMap<String, u32>) {
        for (key, count) in new {
            *current.entry(key).or_default() += count;
        }
    }

    #[derive(SharedState, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Usage {
        #[reducer(add)]
        elapsed: Duration,
        #[reducer(add)]
        tokens: Tokens,
        #[reducer(add)]
        cost: f32,
        #[reducer(append)]
        transcript: String,
        #[reducer(append)]
        seen: BTreeSet<u32>,
        #[reducer(append)]
        queue: VecDeque<u8>,
        #[reducer(append)]
        labels: HashMap<String, String>,
        #[reducer(with = add_counts)]
        per_tool: BTreeMap<String, u32>,
        r#type: String,
    }

    #[test]
    fn std_and_user_types_reduce() {
        let mut usage = Usage::default();
        let first = Usage::update()
            .add_elapsed(Duration::from_millis(300))
            .add_tokens(Tokens {
                prompt: 10,
                completion: 2,
            })
            .add_cost(0.5)
            .push_transcript("hello ".into())
            .extend_seen([3, 1])
            .push_queue(1)
            .push_labels(("kind".into(), "alert".into()))
            .reduce_per_tool(BTreeMap::from([("whois".into(), 1)]))
            .set_type("triage".into());
        let second = Usage::update()
            .add_elapsed(Duration::from_millis(200))
            .add_tokens(Tokens {
                prompt: 5,
                completion: 5,
            })
            .add_cost(0.25)
            .push_transcript("world".into())
            .extend_seen([1, 2])
            .extend_queue([2, 3])
            .push_labels(("kind".into(), "phishing".into()))
            .reduce_per_tool(BTreeMap::from([("whois".into(), 2), ("geoip".into(), 1)]));
        usage.apply(first.merge(second).unwrap());
        assert_eq!(usage.elapsed, Duration::from_millis(500));
        assert_eq!(
            usage.tokens,
            Tokens {
                prompt: 15,
                completion: 7
            }
        );
        assert!((usage.cost - 0.75).abs() < f32::EPSILON);
        assert_eq!(usage.transcript, "hello world");
        assert_eq!(usage.seen, BTreeSet::from([1, 2, 3]));
        assert_eq!(usage.queue, VecDeque::from([1, 2, 3]));
        assert_eq!(usage.labels["kind"], "phishing", "the appended key wins");
        assert_eq!(
            usage.per_tool,
            BTreeMap::from([("geoip".into(), 1), ("whois".into(), 3)])
        );
        assert_eq!(usage.r#type, "triage");
        assert_eq!(usage.field_text("type").as_deref(), Some("triage"));
        assert_eq!(Usage::FIELDS.last().map(Field::name), Some("type"));
    }
}

mod generic_state {
    use super::*;

    /// A generic state: a board of items of any serializable type.
    #[derive(SharedState, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Board<T>
    where
        T: Clone,
    {
        #[reducer(append)]
        items: Vec<T>,
        latest: Option<T>,
        #[reducer(add)]
        total: u32,
    }

    fn exercise<T>(first: T, second: T)
    where
        T: Clone
            + PartialEq
            + std::fmt::Debug
            + Send
            + Sync
            + Serialize
            + serde::de::DeserializeOwned,
    {
        let mut board = Board::<T> {
            items: Vec::new(),
            latest: None,
            total: 0,
        };
        let left = Board::<T>::update()
            .push_items(first.clone())
            .set_latest(Some(first.clone()))
            .add_total(1);
        let right = Board::<T>::update().push_items(second.clone()).add_total(1);
        let merged = left.merge(right).unwrap();
        let json = serde_json::to_string(&merged).unwrap();
        let back: UpdateOf<Board<T>> = serde_json::from_str(&json).unwrap();
        board.apply(back);
        assert_eq!(board.items, [first.clone(), second]);
        assert_eq!(board.latest, Some(first));
        assert_eq!(board.total, 2);

        let both_latest = Board::<T>::update()
            .set_latest(None)
            .merge(Board::<T>::update().set_latest(None));
        assert_eq!(both_latest.unwrap_err().field(), "latest");
    }

    #[test]
    fn works_for_several_type_arguments() {
        exercise("a".to_string(), "b".to_string());
        exercise(1_u8, 2_u8);
        exercise(vec![1.5_f64], vec![]);
    }

    #[test]
    fn metadata_writes_the_type_parameter() {
        assert_eq!(Board::<u8>::FIELDS[0].type_name(), "Vec<T>");
        assert_eq!(Board::<u8>::FIELDS[1].type_name(), "Option<T>");
    }
}

mod empty_state {
    use super::*;

    #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
    struct Nothing {}

    #[test]
    fn a_state_without_fields_has_only_empty_updates() {
        let update = Nothing::update();
        assert!(update.is_empty());
        assert!(Nothing::FIELDS.is_empty());
        assert!(update.clone().merge(update).unwrap().is_empty());
        assert_eq!(Nothing::default().field_text("x"), None);
    }
}
