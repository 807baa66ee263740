//! `vessel plugin create|compile|inspect|install`: the handlers that need the
//! SIF library and the loader.

use std::path::Path;

use super::Context;
use crate::plugin::store::Store;
use crate::Error;

/// `plugin create DIR NAME`.
pub fn create(_dir: &Path, _name: &str) -> Result<i32, Error> {
    Err(Error::Usage("plugin create is not built yet".into()))
}

/// `plugin compile`.
pub fn compile(_dir: &Path, _out: Option<&Path>, _key: Option<&Path>) -> Result<i32, Error> {
    Err(Error::Usage("plugin compile is not built yet".into()))
}

/// `plugin inspect`.
pub fn inspect(_ctx: &Context, _store: &Store, _target: &str, _json: bool) -> Result<i32, Error> {
    Err(Error::Usage("plugin inspect is not built yet".into()))
}

/// `plugin install`.
pub fn install(
    _ctx: &Context,
    _store: &Store,
    _file: &Path,
    _allow_unsigned: bool,
    _upgrade: bool,
) -> Result<i32, Error> {
    Err(Error::Usage("plugin install is not built yet".into()))
}
