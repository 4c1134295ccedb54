use slateflow::node;

struct Classify;

#[node]
impl Default for Classify {
    fn default() -> Self {
        Classify
    }
}

fn main() {
    let _ = Classify::default();
}
