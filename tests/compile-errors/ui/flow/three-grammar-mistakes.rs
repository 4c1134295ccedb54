#[path = "support/common.rs"]
mod common;
use common::*;
use slateflow::flow;

// Three grammar mistakes in three statements: three errors in one build.
fn main() {
    let _flow = flow! {
        classify >> >> route;
        route - intrusion >> investigate;
        route - "phishing";
        report >> classify;
    };
}
