use slateflow::SharedState;

#[derive(SharedState)]
struct Borrowed<'a> {
    text: &'a str,
}

fn main() {}
