//! The SDK's side of the callback table
//! ([`vessel_plugin_abi::callback_table!`]): one ABI-typed handler slot per
//! entry point, the guarded calls into them, and the exported `extern "C"`
//! entry points. Builder methods of [`Plugin`] fill the slots from plain
//! Rust closures; nothing here changes when a callback kind is added.

use crate::abi::{CallResult, CallbackEntries};
use crate::export::Source;
use crate::sdk::Result;
use crate::Plugin;

macro_rules! define_handlers {
    ($(
        $(#[doc = $kdoc:literal])*
        $kind:ident = $name:literal, $discloses:literal {$(
            $(#[doc = $doc:literal])*
            $(#[sabi($sabi:meta)])?
            $entry:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty = $label:literal, $layout:ident;
        )*}
    )* ; appended {$(
        $(#[doc = $adoc:literal])*
        $akind:ident: $aentry:ident($($aarg:ident: $aty:ty),* $(,)?) -> $aret:ty = $alabel:literal;
    )*}) => {
        /// The plugin's handler of each entry point, taking the ABI's
        /// arguments; an empty slot means the entry point is not exported.
        #[derive(Default)]
        pub(crate) struct Handlers {
            $($(
                $(#[doc = $doc])*
                pub(crate) $entry:
                    Option<Box<dyn Fn(&Plugin, $($ty),*) -> Result<$ret> + Send + Sync>>,
            )*)*
            $(
                $(#[doc = $adoc])*
                pub(crate) $aentry:
                    Option<Box<dyn Fn(&Plugin, $($aty),*) -> Result<$aret> + Send + Sync>>,
            )*
        }

        impl Handlers {
            /// The exported entry points of plugin `S`: one for each filled slot.
            pub(crate) fn entries<S: Source>(&self) -> CallbackEntries {
                CallbackEntries {
                    $($($entry: self.$entry.is_some().then_some(entry_points::$entry::<S> as _),)*)*
                    $($aentry: self.$aentry.is_some().then_some(entry_points::$aentry::<S> as _),)*
                }
            }
        }

        /// A plugin's entry points called in-process through the panic
        /// guard, as the exported library calls them. Not part of the API:
        /// what the entry points and `vessel-plugin-test` use.
        #[doc(hidden)]
        #[derive(Debug, Clone, Copy)]
        pub struct Calls<'p>(pub(crate) &'p Plugin);

        // The table spells "returns nothing" as `-> ()`.
        #[allow(clippy::unused_unit)]
        impl Calls<'_> {
            $($(
                $(#[doc = $doc])*
                pub fn $entry(self, $($arg: $ty),*) -> CallResult<$ret> {
                    let p = self.0;
                    p.guard(|| match &p.handlers.$entry {
                        Some(handler) => handler(p, $($arg),*),
                        None => Err(format!("no {} callback", $label).into()),
                    })
                }
            )*)*
            $(
                $(#[doc = $adoc])*
                pub fn $aentry(self, $($aarg: $aty),*) -> CallResult<$aret> {
                    let p = self.0;
                    p.guard(|| match &p.handlers.$aentry {
                        Some(handler) => handler(p, $($aarg),*),
                        None => Err(format!("no {} callback", $alabel).into()),
                    })
                }
            )*
        }

        /// The `extern "C"` entry points, instantiated once per plugin library.
        mod entry_points {
            use super::*;

            $($(
                #[allow(clippy::unused_unit)]
                pub(super) extern "C" fn $entry<S: Source>($($arg: $ty),*) -> CallResult<$ret> {
                    S::plugin().calls().$entry($($arg),*)
                }
            )*)*
            $(
                #[allow(clippy::unused_unit)]
                pub(super) extern "C" fn $aentry<S: Source>($($aarg: $aty),*) -> CallResult<$aret> {
                    S::plugin().calls().$aentry($($aarg),*)
                }
            )*
        }
    };
}

vessel_plugin_abi::callback_table!(define_handlers);
