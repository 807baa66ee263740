//! abi_stable stamps every type layout with the name of the package that
//! defines the type and refuses a library whose types come from another
//! package. Until plugin-api was split by role these types lived in the
//! package `vessel-plugin-api`, and every 1.x plugin (the golden 1.0.0 one
//! in tests/golden included) carries that name in its layouts. The ABI
//! package therefore keeps presenting itself under that name to the
//! compiler, so its layouts stay identical to the ones plugins were built
//! with. `env!("CARGO_PKG_NAME")` in this crate is used for nothing else.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rustc-env=CARGO_PKG_NAME=vessel-plugin-api");
}
