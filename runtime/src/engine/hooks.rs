//! The seams where plugins change how a container runs. The engine calls
//! each method at its hook point; [`NoHooks`] (every default) is the
//! behaviour without plugins.

use nix::unistd::Pid;

use super::config::EngineConfig;
use super::monitor::Signals;
use crate::image::driver::Registry;
use crate::Error;

/// Hook points of one container run, in the order the engine calls them.
pub trait Hooks {
    /// After the config is built from flags and vessel.toml, before it is
    /// validated and before anything is mounted; may change it.
    fn engine_config(&mut self, _cfg: &mut EngineConfig) -> Result<(), Error> {
        Ok(())
    }

    /// Before the image is mounted: register extra image drivers.
    /// `unprivileged` is true when the container runs in a user namespace.
    fn register_image_drivers(
        &mut self,
        _registry: &mut Registry,
        _unprivileged: bool,
    ) -> Result<(), Error> {
        Ok(())
    }

    /// After the container process exists (it has exec'd the command). An
    /// error kills the container and fails the command.
    fn post_start(&mut self, _cfg: &EngineConfig, _pid: Pid) -> Result<(), Error> {
        Ok(())
    }

    /// Replaces the default monitor (wait + forward signals) when it returns
    /// `Some`: the raw wait status of `pid` (as from waitpid), which the
    /// monitor must have reaped. `None` uses [`super::monitor::wait_forwarding`].
    fn monitor(
        &mut self,
        _cfg: &EngineConfig,
        _pid: Pid,
        _signals: &mut Signals,
    ) -> Option<Result<i32, Error>> {
        None
    }
}

/// No plugins: every hook does nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHooks;

impl Hooks for NoHooks {}
