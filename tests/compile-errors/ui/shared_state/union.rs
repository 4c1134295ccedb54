use slateflow::SharedState;

#[derive(SharedState)]
union Bits {
    int: u32,
    float: f32,
}

fn main() {}
