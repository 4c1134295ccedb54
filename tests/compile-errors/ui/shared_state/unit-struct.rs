use slateflow::SharedState;

#[derive(SharedState)]
struct Nothing;

fn main() {}
