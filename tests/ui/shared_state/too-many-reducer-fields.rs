use serde::{Deserialize, Serialize};
use slateflow::SharedState;

/// One bit per reducer field marks an overwrite: 64 fit, the 65th does not.
#[derive(SharedState, Default, Serialize, Deserialize)]
struct Wide {
    plain: String,
    #[reducer(add)]
    f0: u32,
    #[reducer(add)]
    f1: u32,
    #[reducer(add)]
    f2: u32,
    #[reducer(add)]
    f3: u32,
    #[reducer(add)]
    f4: u32,
    #[reducer(add)]
    f5: u32,
    #[reducer(add)]
    f6: u32,
    #[reducer(add)]
    f7: u32,
    #[reducer(add)]
    f8: u32,
    #[reducer(add)]
    f9: u32,
    #[reducer(add)]
    f10: u32,
    #[reducer(add)]
    f11: u32,
    #[reducer(add)]
    f12: u32,
    #[reducer(add)]
    f13: u32,
    #[reducer(add)]
    f14: u32,
    #[reducer(add)]
    f15: u32,
    #[reducer(add)]
    f16: u32,
    #[reducer(add)]
    f17: u32,
    #[reducer(add)]
    f18: u32,
    #[reducer(add)]
    f19: u32,
    #[reducer(add)]
    f20: u32,
    #[reducer(add)]
    f21: u32,
    #[reducer(add)]
    f22: u32,
    #[reducer(add)]
    f23: u32,
    #[reducer(add)]
    f24: u32,
    #[reducer(add)]
    f25: u32,
    #[reducer(add)]
    f26: u32,
    #[reducer(add)]
    f27: u32,
    #[reducer(add)]
    f28: u32,
    #[reducer(add)]
    f29: u32,
    #[reducer(add)]
    f30: u32,
    #[reducer(add)]
    f31: u32,
    #[reducer(add)]
    f32: u32,
    #[reducer(add)]
    f33: u32,
    #[reducer(add)]
    f34: u32,
    #[reducer(add)]
    f35: u32,
    #[reducer(add)]
    f36: u32,
    #[reducer(add)]
    f37: u32,
    #[reducer(add)]
    f38: u32,
    #[reducer(add)]
    f39: u32,
    #[reducer(add)]
    f40: u32,
    #[reducer(add)]
    f41: u32,
    #[reducer(add)]
    f42: u32,
    #[reducer(add)]
    f43: u32,
    #[reducer(add)]
    f44: u32,
    #[reducer(add)]
    f45: u32,
    #[reducer(add)]
    f46: u32,
    #[reducer(add)]
    f47: u32,
    #[reducer(add)]
    f48: u32,
    #[reducer(add)]
    f49: u32,
    #[reducer(add)]
    f50: u32,
    #[reducer(add)]
    f51: u32,
    #[reducer(add)]
    f52: u32,
    #[reducer(add)]
    f53: u32,
    #[reducer(add)]
    f54: u32,
    #[reducer(add)]
    f55: u32,
    #[reducer(add)]
    f56: u32,
    #[reducer(add)]
    f57: u32,
    #[reducer(add)]
    f58: u32,
    #[reducer(add)]
    f59: u32,
    #[reducer(add)]
    f60: u32,
    #[reducer(add)]
    f61: u32,
    #[reducer(add)]
    f62: u32,
    #[reducer(add)]
    f63: u32,
    #[reducer(add)]
    f64: u32,
}

fn main() {}
