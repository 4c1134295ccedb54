use serde::{Deserialize, Serialize};
use slateflow::SharedState;
use slateflow::reducer::Queue;

#[derive(SharedState, Debug, Default, Serialize, Deserialize)]
struct Mail {
    #[reducer(queue)]
    inbox: Queue<String>,
}

fn main() {
    let mail = Mail::default();
    let _update = Mail::update().set_inbox(mail.inbox);
}
