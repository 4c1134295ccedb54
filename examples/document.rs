//! Recipe: a flow's document, `{"nodes", "edges", "initial_state"}`, as the seed describes it for
//! UIs: written from a flow and a state, and read back.
//!
//! Writing uses the flow's graph (`Flow::graph`, which runs nothing) and the state's JSON.
//! Reading checks that the document is this flow's (its nodes and edges match: a document
//! written for another flow, or an older version of this one, is an error that says what
//! differs) and reads `initial_state` with `state::state_from_json`, whose errors name the path
//! of a bad value and refuse keys no field reads.
//!
//! ```sh
//! cargo run -p slateflow-examples --example document
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use slateflow::flow::FlowGraph;
use slateflow::state::state_from_json;
use slateflow::{Command, Flow, Graph, SharedState, flow, node};

#[derive(SharedState, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Profile {
    name: String,
    preferences: Vec<String>,
    #[serde(default)]
    greeting: String,
}

#[node(actions = ["quick", "careful"])]
fn choose(profile: &Profile) -> Command<Profile> {
    let quick = profile
        .preferences
        .iter()
        .any(|preference| preference == "quick");
    Command::goto(if quick { "quick" } else { "careful" })
}

#[node]
fn brief(profile: &Profile) -> Command<Profile> {
    Command::new(Profile::update().set_greeting(format!("Hi {}.", profile.name)))
}

#[node]
fn thorough(profile: &Profile) -> Command<Profile> {
    Command::new(Profile::update().set_greeting(format!(
        "Good day, {}. Here is everything, step by step.",
        profile.name
    )))
}

/// The nodes and edges of `graph`, as the document lists them: names, and `from - action >> to`.
fn shape(graph: &Graph) -> (Vec<String>, Vec<String>) {
    let nodes = graph
        .nodes
        .iter()
        .map(|node| node.name.to_string())
        .collect();
    let edges = graph
        .edges
        .iter()
        .map(|edge| format!("{} - \"{}\" >> {}", edge.from, edge.action, edge.to))
        .collect();
    (nodes, edges)
}

/// The document of `flow` starting from `state`.
fn write_document<G: FlowGraph<Profile>>(
    flow: &Flow<Profile, G>,
    state: &Profile,
) -> Result<Value, serde_json::Error> {
    let (nodes, edges) = shape(&flow.graph());
    Ok(json!({
        "nodes": nodes,
        "edges": edges,
        "initial_state": serde_json::to_value(state)?,
    }))
}

/// The initial state of `document`, which must be `flow`'s.
fn read_document<G: FlowGraph<Profile>>(
    flow: &Flow<Profile, G>,
    document: &str,
) -> Result<Profile, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Document {
        nodes: Vec<String>,
        edges: Vec<String>,
        initial_state: Value,
    }
    let document: Document =
        serde_json::from_str(document).map_err(|error| format!("the document: {error}"))?;
    let (nodes, edges) = shape(&flow.graph());
    if document.nodes != nodes {
        return Err(format!(
            "the document is for another flow: its nodes are {:?}, this flow's {nodes:?}",
            document.nodes
        ));
    }
    if let Some(edge) = edges.iter().find(|edge| !document.edges.contains(edge)) {
        return Err(format!(
            "the document is for another flow: it lacks the edge {edge}"
        ));
    }
    state_from_json(&document.initial_state.to_string())
        .map_err(|error| format!("initial_state: {error}"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flow = flow! {
        choose - "quick" >> brief;
        choose - "careful" >> thorough;
    };
    let alice = Profile {
        name: "Alice".into(),
        preferences: vec!["quick".into(), "automated".into()],
        ..Profile::default()
    };
    let document = write_document(&flow, &alice)?;
    println!("{}", serde_json::to_string_pretty(&document)?);

    // Read back, and run from it.
    let mut state = read_document(&flow, &document.to_string())?;
    assert_eq!(state, alice);
    flow.run_blocking(&mut state)?;
    println!("ran: {}", state.greeting);

    // Documents a person got wrong, and what reading them says.
    let mut wrong_type = document.clone();
    wrong_type["initial_state"]["preferences"][1] = json!(7);
    let mut misspelt = document.clone();
    misspelt["initial_state"]["prefrences"] = misspelt["initial_state"]["preferences"].take();
    if let Some(object) = misspelt["initial_state"].as_object_mut() {
        object.remove("preferences");
    }
    let mut other_flow = document.clone();
    other_flow["edges"] = json!(["choose - \"quick\" >> thorough"]);
    for bad in [wrong_type, misspelt, other_flow] {
        let error = read_document(&flow, &bad.to_string()).unwrap_err();
        println!("refused: {error}");
    }
    Ok(())
}
