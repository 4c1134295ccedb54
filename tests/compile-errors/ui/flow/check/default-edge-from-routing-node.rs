#[path = "../support/common.rs"]
mod common;
use common::*;
use slateflow::flow;

// `route` declares no "default" action, so `route >> ...` cannot be wired.
fn main() {
    let _flow = flow! {
        classify >> route >> investigate;
    };
}
