#[path = "support/common.rs"]
mod common;
use common::*;
use slateflow::flow;

fn main() {
    let _flow = flow! {
        classify >> [investigate, report] >> route;
        [investigate, report] >> classify;
    };
}
