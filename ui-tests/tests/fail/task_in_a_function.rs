// `#[task]` inside a function body: its module cannot see the function. The message says
// the rule and the fix; in a `mod` inside the body it works.

fn main() {
    #[concurry::task]
    fn inner(x: u64) -> u64 {
        x
    }

    mod nested {
        #[concurry::task]
        pub fn in_a_module(x: u64) -> u64 {
            x
        }
    }

    let _ = inner::submit(1);
    let _ = nested::in_a_module::submit(1);
}
