#[path = "../support/common.rs"]
mod common;
use common::*;
use slateflow::flow;

// A flow that uses every feature the compile-fail cases break: it must compile. It also makes
// trybuild build (not just check) every case, so `const` assertions are evaluated.
fn main() {
    let inner = flow! {
        classify >> route;
        route - "intrusion" >> investigate;
    };
    let _outer = flow! {
        #![exhaustive]
        start: inner;
        inner - "phishing" >> [report, classify] >> investigate;
        inner - "default" >> [report, classify];
    };
}
