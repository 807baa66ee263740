//! The stable ABI between vessel and its plugins, and the plugin SDK.
