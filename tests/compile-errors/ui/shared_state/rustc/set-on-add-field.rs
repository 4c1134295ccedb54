use serde::{Deserialize, Serialize};
use slateflow::SharedState;

#[derive(SharedState, Debug, Default, Serialize, Deserialize)]
struct Draft {
    #[reducer(add)]
    revisions: u32,
}

fn main() {
    let draft = Draft { revisions: 2 };
    let _update = Draft::update().set_revisions(draft.revisions + 1);
}
