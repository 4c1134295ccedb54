#[path = "../support/common.rs"]
mod common;
use common::*;
use slateflow::flow;

fn main() {
    let not_a_node = 42_u32;
    let _flow = flow! {
        classify >> not_a_node;
    };
}
