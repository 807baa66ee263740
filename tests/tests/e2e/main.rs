//! End-to-end tests: one binary, one module per area. They drive the built
//! `vessel` binary with a temp `VESSEL_ROOT` each. Tests that need root or
//! namespaces say so in their name (`root_`) and run in CI, which runs as root.

mod admin;
mod apptainer;
mod cli;
mod clobber;
mod compat;
mod engine;
mod engine_layers;
mod engine_plugins;
mod engine_security;
mod fifo;
mod home_cwd;
mod hostile_text;
mod keys;
mod loader;
mod oci;
mod package;
mod plugin;
mod plugin_faults;
mod plugin_index;
mod plugin_sdk;
mod registry;
mod registry_token;
mod reproducible;
mod sif;
mod sign;
mod site_plugins;
mod store;
mod trust_files;
mod unpriv_sif;
