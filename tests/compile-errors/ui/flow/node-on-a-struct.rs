use slateflow::node;

#[node]
struct Classify;

fn main() {
    let _ = Classify;
}
