//! The vessel plugin SDK.
//!
//! A vessel plugin is a `cdylib` crate that depends on this crate only. It
//! builds a [`Plugin`] from plain Rust closures and exports it with
//! [`export_plugin!`]. The runtime loads the library, checks that it was built
//! against a compatible version of this crate (same major version, minor not
//! newer than the runtime's) and lets abi_stable check every type layout
//! before calling anything.
//!
//! # Callback kinds
//!
//! Each builder method of [`Plugin`] registers one callback kind (see the
//! table on [`Plugin`]).
//!
//! Every callback runs behind a panic guard: a panic becomes an error naming
//! the plugin and the panic message, and the runtime keeps running. Log with
//! the functions in [`log`]; the lines land in the runtime's log tagged with
//! the plugin name. [`host::config_dir`] holds the admin's settings (the
//! Install callback puts defaults there with
//! [`host::install_default_config`]; upgrades never touch it) and
//! [`host::state_dir`] is where a plugin writes at run time, per user. Unit-test callbacks in-process with the
//! `vessel-plugin-test` crate (a dev-dependency): it runs them through the
//! same panic guard against fakes of the runtime.
//!
//! Everything here is plain Rust: the stable-ABI types the runtime sees live
//! in `vessel-plugin-abi`, and the SDK converts at the boundary.
//!
//! # Versions
//!
//! The ABI only grows: new entry points, host services and trait methods
//! are appended after the `last_prefix_field` markers, and each addition
//! bumps the minor version. A plugin built against 1.x loads in every
//! runtime with API 1.y, y >= x, without being rebuilt (the tests load a
//! golden 1.0.0 plugin binary into the current runtime).
//!
//! - 1.0.0: the root module, every callback kind, logging.
//! - 1.1.0: [`host::install_dir`] (the `install_dir` host service).
//! - 1.2.0: EngineConfig callbacks see the invocation
//!   ([`ConfigMut::invocation`], [`ConfigMut::flag`]) and add device nodes
//!   and capabilities; [`host::config_dir`] (the admin's settings, kept
//!   across upgrades) and [`host::state_dir`] (writable, per user).
//!
//! # Example
//!
//! `Cargo.toml`: `crate-type = ["cdylib"]` and a dependency on
//! `vessel-plugin-api`. `src/lib.rs`:
//!
//! ```
//! use std::io::Write;
//! use vessel_plugin_api::{log, Arg, Command, Flag, Plugin};
//!
//! fn build() -> Plugin {
//!     Plugin::new("example.com/hello")
//!         .author("Jane Doe")
//!         .version("0.1.0")
//!         .description("says hello")
//!         // `vessel hello NAME...`
//!         .command(
//!             Command::new("hello")
//!                 .about("greet people")
//!                 .arg(Arg::new("names").multiple()),
//!             |inv| {
//!                 writeln!(inv.stdout(), "hello {}", inv.args().join(" "))?;
//!                 Ok(0)
//!             },
//!         )
//!         // `vessel version --shout`
//!         .flag("version", Flag::switch("shout").help("shout"), |inv| {
//!             writeln!(inv.stdout(), "HELLO")?;
//!             Ok(())
//!         })
//!         // Every container gets HELLO=1 in its environment.
//!         .engine_config(|config| {
//!             log::info("setting HELLO");
//!             config.set_env("HELLO", "1");
//!             Ok(())
//!         })
//! }
//!
//! vessel_plugin_api::export_plugin!(build);
//! # fn main() {}
//! ```

use vessel_plugin_abi as abi;

mod callbacks;
mod container;
#[doc(hidden)]
pub mod export;
pub mod host;
mod invocation;
pub mod log;
mod process;
mod sdk;
mod spec;

#[doc(hidden)]
pub use export as __export;

pub use container::{Bind, ConfigMut, ConfigView, Driver, Mount, Registrar, Signals};
pub use invocation::{ContainerCommand, ContainerInvocation, Device, ImageKind};
pub use process::{Pid, Signal, WaitStatus};
pub use sdk::{BoxError, CallError, Invocation, OutputWriter, Plugin, PreRun, Result};
pub use spec::{Arg, Command, Flag};
pub use vessel_plugin_abi::Namespaces;

/// The plugin-api version a plugin built with this SDK records in its
/// manifest: the version of the stable ABI (`vessel-plugin-abi`) it links.
pub const API_VERSION: &str = vessel_plugin_abi::API_VERSION;
