use slateflow::SharedState;

#[derive(SharedState)]
struct Pair(String, u64);

fn main() {}
