//! Interrupts: the nodes a durable run pauses before or after, named by their paths, checked
//! against the flow's graph before a run starts (a name the flow does not have, or a nested flow
//! rather than a node, is an error, never a skipped approval).

use crate::error::Error;
use crate::graph::Graph;

/// The nodes, by path (`review`, `inner/check`), a durable run pauses before and after.
#[derive(Debug, Clone, Default)]
pub(super) struct Interrupts {
    pub(super) before: Vec<String>,
    pub(super) after: Vec<String>,
}

impl Interrupts {
    /// Whether the run pauses before the node `name` nested in `flows`.
    pub(super) fn before(&self, flows: &[&str], name: &str) -> bool {
        self.before.iter().any(|node| path_is(node, flows, name))
    }

    /// Whether the run pauses after the node `name` nested in `flows`.
    pub(super) fn after(&self, flows: &[&str], name: &str) -> bool {
        self.after.iter().any(|node| path_is(node, flows, name))
    }

    /// Checks every interrupt against the nodes of `graph`.
    ///
    /// # Errors
    /// [`Error::Interrupt`] for the first name the flow does not have, or that names a nested
    /// flow.
    pub(super) fn check(&self, graph: &Graph) -> Result<(), Error> {
        if self.before.is_empty() && self.after.is_empty() {
            return Ok(());
        }
        let mut places = Vec::new();
        pausable(graph, "", Place::Node, &mut places);
        for (when, names) in [("before", &self.before), ("after", &self.after)] {
            for name in names {
                check_interrupt(when, name, &places)?;
            }
        }
        Ok(())
    }
}

/// Where a node sits, for the interrupts that name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// A node the run steps through (at any depth of nested flows, or a branch of a fork).
    Node,
    /// A node inside a part of a step, at any depth: in a flow nested in a fork branch, or in a
    /// batch flow's sub-flow, or in a fork or batch flow nested in those. The part pauses there,
    /// and the step once all parts are done.
    Part,
    /// A nested flow (pause at one of its nodes instead).
    Flow,
}

/// Every node path of `graph` under `prefix`, and where it sits.
fn pausable(graph: &Graph, prefix: &str, place: Place, out: &mut Vec<(String, Place)>) {
    for node in &graph.nodes {
        let path = if prefix.is_empty() {
            node.name.to_string()
        } else {
            format!("{prefix}/{}", node.name)
        };
        let in_branch = graph
            .forks
            .iter()
            .any(|fork| fork.branches.contains(&node.name));
        match &node.flow {
            None => out.push((path, place)),
            Some(inner) => {
                out.push((path.clone(), Place::Flow));
                let inner_place = if inner.batch || in_branch {
                    Place::Part
                } else {
                    place
                };
                pausable(inner, &path, inner_place, out);
            }
        }
    }
}

fn check_interrupt(
    when: &'static str,
    name: &str,
    places: &[(String, Place)],
) -> Result<(), Error> {
    let problem = |reason: String| Error::Interrupt {
        when,
        name: name.to_string(),
        reason,
    };
    match places.iter().find(|(path, _)| path == name) {
        Some((_, Place::Node | Place::Part)) => Ok(()),
        Some((_, Place::Flow)) => Err(problem(format!(
            "it is a nested flow; name one of its nodes (`{name}/...`)"
        ))),
        None => {
            let nodes: Vec<&str> = places
                .iter()
                .filter(|(_, place)| matches!(place, Place::Node | Place::Part))
                .map(|(path, _)| path.as_str())
                .collect();
            let closest = nodes
                .iter()
                .min_by_key(|node| crate::text::edit_distance(node, name))
                .filter(|node| crate::text::is_near(name, node));
            Err(problem(format!(
                "the flow has no node of that name{}; nodes nested in flows are named by their \
                 path; the nodes are: {}",
                closest.map_or(String::new(), |node| format!(" (did you mean `{node}`?)")),
                nodes.join(", ")
            )))
        }
    }
}

/// Whether `path` (`a/b/c`) names the node `name` nested in `flows`.
pub(super) fn path_is(path: &str, flows: &[&str], name: &str) -> bool {
    let mut segments = path.split('/');
    flows
        .iter()
        .chain(std::iter::once(&name))
        .all(|level| segments.next() == Some(level))
        && segments.next().is_none()
}

/// Whether a resumed run goes past the pause before the node `name` (nested in `flows`) after
/// `step` steps, as one of `passing` (paths and steps) says; each is passed once.
pub(super) fn pass(
    passing: &mut Vec<(String, u64)>,
    flows: &[&str],
    name: &str,
    step: u64,
) -> bool {
    let found = passing
        .iter()
        .position(|(node, at)| *at == step && path_is(node, flows, name));
    if let Some(index) = found {
        passing.swap_remove(index);
    }
    found.is_some()
}

/// `flows/name`.
pub(super) fn join_path(flows: &[&str], name: &str) -> String {
    let mut path = flows.join("/");
    if !path.is_empty() {
        path.push('/');
    }
    path.push_str(name);
    path
}
