//! Compile-fail and compile-pass tests of `#[worker]` and `#[task]`. Bless with `TRYBUILD=overwrite`.

#[test]
#[cfg_attr(miri, ignore)]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/fail/*.rs");
    t.pass("tests/pass/*.rs");
}
