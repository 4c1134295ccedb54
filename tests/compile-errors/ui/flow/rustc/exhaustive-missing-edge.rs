#[path = "../support/common.rs"]
mod common;
use common::*;
use slateflow::flow;

fn main() {
    let _flow = flow! {
        #![exhaustive]
        classify >> route;
        route - "intrusion" >> investigate;
    };
}
