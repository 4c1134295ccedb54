use slateflow::SharedState;

#[derive(SharedState)]
enum Verdict {
    Intrusion,
    Phishing,
}

fn main() {}
