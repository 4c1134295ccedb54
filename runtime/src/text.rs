//! Text helpers that `const fn` needs (it cannot call `==` on strings yet). Used by the state's
//! field lookup and by the compile-time checks `flow!` generates. Knows nothing else.

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
