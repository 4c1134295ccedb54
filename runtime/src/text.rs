//! Text helpers that `const fn` needs (it cannot call `==` on strings yet). Used by the state's
//! field lookup, by the compile-time checks `flow!` and `prompt!` generate, and by the runtime's
//! "did you mean" suggestions. Knows nothing else.

/// The key of `action` in `DeclaresAction<S, KEY>`: its 64-bit FNV-1a hash, as the macros
/// compute it (`macros/src/actions.rs`), for impls written by `routes!` and by hand.
pub const fn action_key(action: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let bytes = action.as_bytes();
    let mut hash = OFFSET;
    let mut index = 0;
    while index < bytes.len() {
        hash = (hash ^ bytes[index] as u64).wrapping_mul(PRIME);
        index += 1;
    }
    hash
}

/// `==` on strings, which `const fn` cannot call yet.
pub const fn str_eq(left: &str, right: &str) -> bool {
    let (left, right) = (left.as_bytes(), right.as_bytes());
    if left.len() != right.len() {
        return false;
    }
    let mut index = 0;
    while index < left.len() {
        if left[index] != right[index] {
            return false;
        }
        index += 1;
    }
    true
}

/// Whether `actions` holds `action`.
pub const fn declares(actions: &[&str], action: &str) -> bool {
    let mut index = 0;
    while index < actions.len() {
        if str_eq(actions[index], action) {
            return true;
        }
        index += 1;
    }
    false
}

/// The most actions a flow can end with (its `ACTIONS`).
pub const MAX_FLOW_ACTIONS: usize = 64;

/// A flow's ending actions, built at compile time.
pub struct ActionSet {
    /// The actions, in the first `len` slots.
    pub list: [&'static str; MAX_FLOW_ACTIONS],
    /// How many there are.
    pub len: usize,
}

/// The actions that end a flow: for each node, `(declared, wired)`, the declared actions without an
/// edge, each once, in node order.
///
/// # Panics
/// At compile time, when a flow can end with more than [`MAX_FLOW_ACTIONS`] actions.
pub const fn terminal_actions(nodes: &[(&'static [&'static str], &[&str])]) -> ActionSet {
    terminal_actions_in(&[nodes])
}

/// [`terminal_actions`] over the nodes of several chunks, in order.
///
/// # Panics
/// At compile time, when a flow can end with more than [`MAX_FLOW_ACTIONS`] actions.
pub const fn terminal_actions_in(chunks: &[&[(&'static [&'static str], &[&str])]]) -> ActionSet {
    let mut set = ActionSet {
        list: [""; MAX_FLOW_ACTIONS],
        len: 0,
    };
    let mut chunk = 0;
    while chunk < chunks.len() {
        let nodes = chunks[chunk];
        let mut node = 0;
        while node < nodes.len() {
            let (declared, wired) = nodes[node];
            let mut index = 0;
            while index < declared.len() {
                let action = declared[index];
                if !declares(wired, action) && !declares(set.list.split_at(set.len).0, action) {
                    assert!(
                        set.len < MAX_FLOW_ACTIONS,
                        "a flow can end with at most 64 distinct actions"
                    );
                    set.list[set.len] = action;
                    set.len += 1;
                }
                index += 1;
            }
            node += 1;
        }
        chunk += 1;
    }
    set
}

/// The first of `declared` that `wired` lacks.
pub const fn first_unwired(
    declared: &'static [&'static str],
    wired: &[&str],
) -> Option<&'static str> {
    let mut index = 0;
    while index < declared.len() {
        if !declares(wired, declared[index]) {
            return Some(declared[index]);
        }
        index += 1;
    }
    None
}

/// The longest name [`edit_distance`] compares letter by letter.
const MAX_EDIT_LEN: usize = 128;

/// Levenshtein distance over bytes, for suggesting the nearest name; usable in `const` context.
/// Names longer than 128 bytes are only compared by length (and count as far apart).
pub(crate) const fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() > MAX_EDIT_LEN || b.len() > MAX_EDIT_LEN {
        return a.len().abs_diff(b.len()) + MAX_EDIT_LEN;
    }
    let mut row = [0usize; MAX_EDIT_LEN + 1];
    let mut j = 0;
    while j <= b.len() {
        row[j] = j;
        j += 1;
    }
    let mut i = 0;
    while i < a.len() {
        let mut previous = row[0];
        row[0] = i + 1;
        let mut j = 0;
        while j < b.len() {
            let substitution = previous + if a[i] == b[j] { 0 } else { 1 };
            previous = row[j + 1];
            let mut best = substitution;
            if previous + 1 < best {
                best = previous + 1;
            }
            if row[j] + 1 < best {
                best = row[j] + 1;
            }
            row[j + 1] = best;
            j += 1;
        }
        i += 1;
    }
    row[b.len()]
}

/// Whether `candidate` is near enough to `name` to be suggested for it.
pub(crate) const fn is_near(name: &str, candidate: &str) -> bool {
    let limit = if name.len() > 2 { name.len() / 2 } else { 1 };
    edit_distance(name, candidate) <= limit
}

/// A message built in `const` context (which cannot allocate), for compile-time errors.
pub(crate) struct ConstText {
    bytes: [u8; 512],
    len: usize,
}

impl ConstText {
    /// An empty message.
    pub(crate) const fn new() -> Self {
        Self {
            bytes: [0; 512],
            len: 0,
        }
    }

    /// Appends `text`; what does not fit is cut at a character boundary.
    #[must_use]
    pub(crate) const fn push(mut self, text: &str) -> Self {
        let text = text.as_bytes();
        let mut index = 0;
        while index < text.len() && self.len < self.bytes.len() {
            self.bytes[self.len] = text[index];
            self.len += 1;
            index += 1;
        }
        // Never end inside a character: drop a cut sequence's leading bytes.
        if index < text.len() {
            while self.len > 0 && (self.bytes[self.len - 1] & 0b1100_0000) == 0b1000_0000 {
                self.len -= 1;
            }
            if self.len > 0 && self.bytes[self.len - 1] >= 0b1100_0000 {
                self.len -= 1;
            }
        }
        self
    }

    /// The message.
    pub(crate) const fn as_str(&self) -> &str {
        match std::str::from_utf8(self.bytes.split_at(self.len).0) {
            Ok(text) => text,
            Err(_) => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::action_key;

    #[test]
    fn action_keys_are_the_published_fnv_1a_values() {
        // Usable in a const generic argument, as `routes!` uses it.
        const DEFAULT: u64 = action_key("default");
        // As the macros compute them: the offset basis for "", and FNV-1a 64 of "a".
        assert_eq!(action_key(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(action_key("a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(DEFAULT, action_key("defaulT"));
    }
}
