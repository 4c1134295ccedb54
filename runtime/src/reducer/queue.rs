//! [`Queue`]: a first-in, first-out queue in a shared state, whose updates push at the back and
//! take from the front.

use std::collections::VecDeque;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use super::Append;

/// A first-in, first-out queue held in a [`SharedState`](crate::SharedState), for a field with
/// `#[reducer(queue)]`: nodes pass work or messages through it, one pushing at the back, another
/// taking from the front, and taking is an update like any other.
///
/// The update type gets three setters for such a field: `push_<field>(item)`,
/// `extend_<field>(items)`, and `take_<field>(count)`, which takes `count` items from the front
/// (all of them if it holds fewer). A node reads what it takes from the state it is given
/// ([`front`](Self::front), [`iter`](Self::iter)), and returns the take in its update. In
/// the state, the items are taken when the update is applied; a durable run saves the take with
/// the step, and a resume never takes twice. Pushes and takes apply in the order they were
/// called, and an update composed of several steps' updates applies them in order too.
///
/// In a fork, branches may push to one queue (their items are appended in the branches' written
/// order, as with `#[reducer(append)]`), and one branch may take from it; two branches that both
/// take would each have handled the same front items, so the fork fails with
/// [`Error::ParallelConflict`](crate::Error::ParallelConflict) naming the field.
///
/// In the state's JSON a queue is a list of its items, front first; in an update's, a list of the
/// items pushed, or `{"ops": [{"take": 1}, {"push": [...]}]}` when it takes.
///
/// A queue in the state is saved with it, and replayed exactly: it suits work handed between
/// the steps of a run. Nodes that run at the same time and talk while they run (a fork's
/// branches streaming to each other) need a live channel instead, such as
/// `tokio::sync::mpsc`: put it in a `#[serde(skip)]` field (it is not saved, and a resumed state
/// holds its `Default`), and give it back to every resumed run with
/// [`Durable::restore`](crate::durable::Durable::restore).
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use slateflow::reducer::Queue;
/// use slateflow::{Command, Context, SharedState, StateUpdate, flow, node};
///
/// #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// struct Mail {
///     #[reducer(queue)]
///     inbox: Queue<String>,
///     #[reducer(append)]
///     handled: Vec<String>,
/// }
///
/// /// Sends two messages.
/// #[node]
/// fn send(_: &Mail) -> Command<Mail> {
///     Command::new(Mail::update().push_inbox("hello".into()).push_inbox("bye".into()))
/// }
///
/// /// Takes one message at a time, and comes back while there are more.
/// #[node(actions = ["more", "done"])]
/// fn receive(mail: &Mail) -> Command<Mail> {
///     let message = mail.inbox.front().cloned().unwrap_or_default();
///     let update = Mail::update().take_inbox(1).push_handled(message);
///     Command::new(update).with_action(if mail.inbox.len() > 1 { "more" } else { "done" })
/// }
///
/// let flow = flow! {
///     send >> receive;
///     receive - "more" >> receive;
/// };
/// let mut mail = Mail::default();
/// flow.run_blocking(&mut mail)?;
/// assert_eq!(mail.handled, ["hello", "bye"]);
/// assert!(mail.inbox.is_empty());
/// # Ok::<(), slateflow::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Queue<T> {
    /// In the state: the queue, front first. In an update: the items pushed after `ops`.
    items: VecDeque<T>,
    /// In an update: what it does before pushing `items`, in order. Empty in the state.
    ops: Vec<Op<T>>,
}

/// One thing an update does to a queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Op<T> {
    /// Takes this many items from the front (fewer if the queue holds fewer).
    Take(usize),
    /// Pushes these items at the back.
    Push(Vec<T>),
}

impl<T> Queue<T> {
    /// An empty queue.
    pub const fn new() -> Self {
        Self {
            items: VecDeque::new(),
            ops: Vec::new(),
        }
    }

    /// How many items it holds.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The item at the front: the next one taken.
    pub fn front(&self) -> Option<&T> {
        self.items.front()
    }

    /// The item at the back: the last one pushed.
    pub fn back(&self) -> Option<&T> {
        self.items.back()
    }

    /// The item `index` places from the front.
    pub fn get(&self, index: usize) -> Option<&T> {
        self.items.get(index)
    }

    /// The items, front first.
    pub fn iter(&self) -> std::collections::vec_deque::Iter<'_, T> {
        self.items.iter()
    }

    /// Pushes `item` at the back (in an update: after what it does already).
    pub fn push(&mut self, item: T) {
        self.items.push_back(item);
    }

    /// Takes `count` items from the front: in the state, at once; in an update, when it is
    /// applied, after what it does already.
    pub fn take(&mut self, count: usize) {
        if count == 0 {
            return;
        }
        if !self.items.is_empty() {
            let pushed = std::mem::take(&mut self.items);
            self.ops.push(Op::Push(pushed.into()));
        }
        match self.ops.last_mut() {
            Some(Op::Take(taken)) => *taken = taken.saturating_add(count),
            _ => self.ops.push(Op::Take(count)),
        }
    }

    /// Whether, as an update, it takes anything.
    pub(crate) fn takes(&self) -> bool {
        self.ops.iter().any(|op| matches!(op, Op::Take(_)))
    }

    /// Runs `ops` on a queue that holds only items (the state, or an update that replaces one).
    fn run(&mut self, ops: Vec<Op<T>>) {
        for op in ops {
            match op {
                Op::Take(count) => {
                    let count = count.min(self.items.len());
                    self.items.drain(..count);
                }
                Op::Push(items) => self.items.extend(items),
            }
        }
    }
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: fmt::Debug> fmt::Debug for Queue<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ops.is_empty() {
            formatter.debug_list().entries(&self.items).finish()
        } else {
            formatter
                .debug_struct("Queue")
                .field("ops", &self.ops)
                .field("then_push", &self.items)
                .finish()
        }
    }
}

impl<T> From<Vec<T>> for Queue<T> {
    fn from(items: Vec<T>) -> Self {
        Self {
            items: items.into(),
            ops: Vec::new(),
        }
    }
}

impl<T> FromIterator<T> for Queue<T> {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Self {
        Self {
            items: items.into_iter().collect(),
            ops: Vec::new(),
        }
    }
}

impl<'a, T> IntoIterator for &'a Queue<T> {
    type Item = &'a T;
    type IntoIter = std::collections::vec_deque::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

/// Updates compose in order: `a` then `b` does what `a` does, then what `b` does. Applied to the
/// state, the takes and pushes run in that order.
impl<T> Append for Queue<T> {
    type Item = T;

    fn append(&mut self, mut new: Self) {
        if new.ops.is_empty() {
            self.items.append(&mut new.items);
            return;
        }
        if !self.items.is_empty() {
            let pushed = std::mem::take(&mut self.items);
            self.ops.push(Op::Push(pushed.into()));
        }
        for op in new.ops {
            match (self.ops.last_mut(), op) {
                (Some(Op::Take(taken)), Op::Take(count)) => *taken = taken.saturating_add(count),
                (Some(Op::Push(pushed)), Op::Push(mut items)) => pushed.append(&mut items),
                (_, op) => self.ops.push(op),
            }
        }
        self.items = new.items;
    }

    fn push_item(&mut self, item: T) {
        self.push(item);
    }

    fn apply(&mut self, new: Self) {
        if !self.ops.is_empty() {
            // An update that replaces the queue and then takes from it: `new` goes after it.
            self.append(new);
            return;
        }
        let Self { mut items, ops } = new;
        self.run(ops);
        self.items.append(&mut items);
    }

    fn contests(&self) -> bool {
        self.takes()
    }
}

impl<T: Serialize> Serialize for Queue<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.ops.is_empty() {
            let mut list = serializer.serialize_seq(Some(self.items.len()))?;
            for item in &self.items {
                list.serialize_element(item)?;
            }
            return list.end();
        }
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("ops", &Ops(&self.ops, &self.items))?;
        map.end()
    }
}

/// The update's ops, its last pushes as one more.
struct Ops<'a, T>(&'a [Op<T>], &'a VecDeque<T>);

impl<T: Serialize> Serialize for Ops<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let pushed = !self.1.is_empty();
        let mut list = serializer.serialize_seq(Some(self.0.len() + usize::from(pushed)))?;
        for op in self.0 {
            list.serialize_element(op)?;
        }
        if pushed {
            list.serialize_element(&Pushed(self.1))?;
        }
        list.end()
    }
}

/// `{"push": [...]}`.
struct Pushed<'a, T>(&'a VecDeque<T>);

impl<T: Serialize> Serialize for Pushed<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("push", self.0)?;
        map.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct QueueVisitor<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for QueueVisitor<T> {
            type Value = Queue<T>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(
                    "a list of the queue's items, front first, or an update's \
                     `{\"ops\": [{\"take\": n}, {\"push\": [...]}]}`",
                )
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut list: A) -> Result<Queue<T>, A::Error> {
                let mut items = VecDeque::with_capacity(list.size_hint().unwrap_or(0).min(4096));
                while let Some(item) = list.next_element()? {
                    items.push_back(item);
                }
                Ok(Queue {
                    items,
                    ops: Vec::new(),
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Queue<T>, A::Error> {
                let mut ops: Option<Vec<Op<T>>> = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "ops" {
                        ops = Some(map.next_value()?);
                    } else {
                        return Err(de::Error::unknown_field(&key, &["ops"]));
                    }
                }
                let ops = ops.ok_or_else(|| de::Error::missing_field("ops"))?;
                let mut queue = Queue::new();
                for op in ops {
                    match op {
                        Op::Take(count) => queue.take(count),
                        Op::Push(items) => queue.items.extend(items),
                    }
                }
                Ok(queue)
            }
        }

        deserializer.deserialize_any(QueueVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(items: &[u32]) -> Queue<u32> {
        items.iter().copied().collect()
    }

    fn update(build: impl FnOnce(&mut Queue<u32>)) -> Queue<u32> {
        let mut update = Queue::new();
        build(&mut update);
        update
    }

    fn applied(mut state: Queue<u32>, new: Queue<u32>) -> Queue<u32> {
        state.apply(new);
        state
    }

    #[test]
    fn an_update_takes_from_the_front_then_pushes_at_the_back() {
        let taken = update(|update| {
            update.take(2);
            update.push(9);
        });
        assert_eq!(applied(queue(&[1, 2, 3]), taken.clone()), queue(&[3, 9]));
        // Taking more than it holds empties it.
        assert_eq!(applied(queue(&[1]), taken), queue(&[9]));
    }

    #[test]
    fn composed_updates_apply_as_one_after_the_other() {
        // The second update takes what the first pushed: only order tells.
        let first = update(|update| {
            update.take(1);
            update.push(7);
        });
        let second = update(|update| {
            update.take(2);
            update.push(8);
        });
        for state in [
            queue(&[]),
            queue(&[1]),
            queue(&[1, 2]),
            queue(&[1, 2, 3, 4]),
        ] {
            let one_by_one = applied(applied(state.clone(), first.clone()), second.clone());
            let mut composed = first.clone();
            composed.append(second.clone());
            assert_eq!(applied(state.clone(), composed), one_by_one, "{state:?}");
        }
    }

    #[test]
    fn only_an_update_that_takes_contests_the_field() {
        assert!(!queue(&[1]).contests());
        assert!(update(|update| update.take(1)).contests());
        assert!(!update(|update| update.take(0)).contests());
    }

    #[test]
    fn the_state_reads_as_a_list_and_an_update_that_takes_as_its_ops() {
        let state = queue(&[1, 2]);
        assert_eq!(serde_json::to_string(&state).unwrap(), "[1,2]");
        assert_eq!(serde_json::from_str::<Queue<u32>>("[1,2]").unwrap(), state);
        let taking = update(|update| {
            update.push(5);
            update.take(1);
            update.push(6);
        });
        let json = serde_json::to_string(&taking).unwrap();
        assert_eq!(json, r#"{"ops":[{"push":[5]},{"take":1},{"push":[6]}]}"#);
        let read: Queue<u32> = serde_json::from_str(&json).unwrap();
        assert_eq!(read, taking);
        assert_eq!(
            applied(queue(&[1]), read),
            applied(queue(&[1]), taking),
            "it applies the same once read back"
        );
        let error = serde_json::from_str::<Queue<u32>>(r#"{"take":1}"#).unwrap_err();
        assert!(
            error.to_string().contains("unknown field `take`"),
            "{error}"
        );
    }
}
