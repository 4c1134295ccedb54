use slateflow::SharedState;

struct Plain {
    count: u64,
}

fn run<S: SharedState>(_state: &mut S) {}

fn main() {
    run(&mut Plain { count: 0 });
}
