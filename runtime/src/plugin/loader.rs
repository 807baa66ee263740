//! Loading a plugin library safely.
//!
//! dlopen runs the library's initialisers, so everything is checked before
//! it: the file is opened once and checked on that descriptor (ownership
//! and permissions), its bytes are copied by the kernel into a memfd that
//! is then sealed (no write, grow or shrink, no more seals), and every
//! other check runs on that sealed memfd's bytes (sha256, the ELF header and
//! dynamic symbols). The same memfd is dlopened through `/proc/self/fd/N`,
//! so what runs is exactly what was verified, even if the file is replaced
//! meanwhile. One copy (in the kernel), one hash, and an ELF parse of only
//! the parts checked keep a load close to a bare dlopen plus a sha256. Then the plugin-api
//! version the plugin was built with is checked, abi_stable checks every type
//! layout of the root module, and the plugin gets the host services.
//!
//! An installed library whose bytes the install verified is not hashed
//! again: the meta records its [`LibraryStamp`], and when the descriptor's
//! `fstat` still equals it, before and after the copy into the sealed memfd,
//! in a store owned by root, the copied bytes are the ones verified (see
//! [`super::stamp`]). The sha256 and the ELF checks, which those bytes
//! passed at install, are then skipped; the dlopen is still of the sealed
//! memfd. Anything else (no stamp, another stamp, a store root does not
//! own) takes the full checks.
//!
//! Where the install could also make the file immutable ([`super::immutable`]:
//! root, a local file system), the kernel itself keeps those bytes: nobody
//! can write the file without first clearing the flag, which changes its
//! stamp. Such a file, unchanged since install, is not copied at all: the
//! installed file is dlopened through its own descriptor, and its stamp and
//! flag are checked again once it is mapped. The copy was most of a load's
//! cost.
//!
//! Libraries are never unloaded (unloading Rust cdylibs is unsound): a
//! [`LoadedPlugin`] lives for the rest of the process.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use abi_stable::library::{abi_header_from_raw_library, LibraryError, RawLibrary};
use abi_stable::sabi_types::VersionNumber;
use sha2::{Digest, Sha256};
use vessel_plugin_abi::{self as abi, v1_0, v1_1};

pub use super::elf::{check_elf, HOST_MACHINE};
pub use super::load_error::{LoadError, LoadErrorKind};
use super::manifest::{AddedFlagSpec, ArgSpec, CallbackKind, CommandSpec, FlagSpec, Manifest};
pub use super::stamp::LibraryStamp;
use super::LoadedPlugin;
use super::{host, registry};

/// What to load and what to check it against.
#[derive(Debug, Clone, Default)]
pub struct LoadSpec {
    /// The library file.
    pub path: PathBuf,
    /// The plugin's name when known (installed plugins): used in messages and
    /// checked against the library's manifest. Messages use the path otherwise.
    pub name: Option<String>,
    /// Lowercase hex sha256 the bytes must have (from the meta).
    pub sha256: Option<String>,
    /// When running as root, every directory from the library's up to and
    /// including this one must be root-owned and not group/world-writable
    /// (the library itself always is, when running as root).
    pub plugin_root: Option<PathBuf>,
    /// The plugin's install dir (installed plugins), handed to it through
    /// the host services; needs `name`.
    pub install_dir: Option<PathBuf>,
    /// The stamp the install recorded for this file once its bytes matched
    /// `sha256` (installed plugins). With `sha256` and `plugin_root`, lets
    /// a load of the unchanged file skip the hash and ELF checks.
    pub installed: Option<LibraryStamp>,
    /// The stamp of the vessel binary that checked this library's type
    /// layouts at install. When it is the running binary's and the file is
    /// unchanged since install (`installed`), abi_stable's layout check,
    /// whose answer cannot differ, is skipped.
    pub layouts_checked_by: Option<LibraryStamp>,
}

impl LoadSpec {
    /// Load `path`, checking nothing beyond the library itself.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            ..Self::default()
        }
    }

    /// Expect the plugin to be called `name`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Expect this sha256 (lowercase hex).
    pub fn sha256(mut self, sha256: impl Into<String>) -> Self {
        self.sha256 = Some(sha256.into());
        self
    }

    /// Check directories up to this root.
    pub fn plugin_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.plugin_root = Some(root.into());
        self
    }

    /// Tell the plugin this is its install dir.
    pub fn install_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.install_dir = Some(dir.into());
        self
    }

    /// The stamp recorded at install, if the meta has one.
    pub fn installed(mut self, stamp: Option<LibraryStamp>) -> Self {
        self.installed = stamp;
        self
    }

    /// The stamp of the runtime binary that checked the layouts at
    /// install, if the meta has one.
    pub fn layouts_checked_by(mut self, runtime: Option<LibraryStamp>) -> Self {
        self.layouts_checked_by = runtime;
        self
    }

    fn label(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.path.display().to_string())
    }
}

/// The library after every check that can run before dlopen: a sealed
/// memfd holding exactly the bytes checked, or the installed file the
/// kernel keeps as the install verified it.
#[derive(Debug)]
pub struct VerifiedLibrary {
    label: String,
    path: PathBuf,
    source: Source,
    sha256: String,
    checks: Checks,
    /// The layouts were checked at install by this very runtime binary, on
    /// these very bytes.
    layouts_known: bool,
}

/// Where [`open_verified`] dlopens the verified bytes from.
#[derive(Debug)]
enum Source {
    /// A sealed memfd holding a copy of them.
    Sealed(File),
    /// The installed file itself: immutable, with the install's stamp,
    /// which is checked again once the file is mapped.
    InPlace { file: File, stamp: LibraryStamp },
}

impl Source {
    fn file(&self) -> &File {
        match self {
            Source::Sealed(f) | Source::InPlace { file: f, .. } => f,
        }
    }
}

/// Which checks [`verify`] ran on the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checks {
    /// The sha256 and the ELF checks ran on the sealed bytes.
    Full,
    /// The file was unchanged since the install verified it (its stamp
    /// matched before and after the copy): the install's checks stand.
    VerifiedAtInstall,
}

impl VerifiedLibrary {
    /// Lowercase hex sha256 of the bytes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Which checks ran on the bytes.
    pub fn checks(&self) -> Checks {
        self.checks
    }

    /// Whether abi_stable's layout check is skipped at dlopen: the bytes
    /// are the install's and the install ran this runtime binary.
    pub fn layouts_known(&self) -> bool {
        self.layouts_known
    }

    /// Whether the installed file itself is dlopened (immutable and
    /// unchanged since install), not a sealed copy.
    pub fn in_place(&self) -> bool {
        matches!(self.source, Source::InPlace { .. })
    }
}

/// Claims the file `(dev, ino)` for one in-place load in this process:
/// false if it was claimed before. The dynamic loader hands back the
/// library already loaded from the same inode instead of a new copy, and
/// each load must get its own (its `init` runs once per copy), so a
/// second load of the same file takes a sealed copy.
fn claim_in_place(stamp: &LibraryStamp) -> bool {
    use std::sync::Mutex;
    static LOADED: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());
    let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    if loaded.contains(&(stamp.dev, stamp.ino)) {
        return false;
    }
    loaded.push((stamp.dev, stamp.ino));
    true
}

/// Runs every check that can run before dlopen: opens the file once, checks
/// it (and, as root, its directories) on that descriptor, copies it into a
/// memfd and seals it, then compares the sealed bytes' sha256 and checks
/// their ELF header and dynamic symbols — unless the file is unchanged
/// since the install verified it (see the module doc).
pub fn verify(spec: &LoadSpec) -> Result<VerifiedLibrary, LoadError> {
    verify_trusting(spec, 0)
}

/// [`verify`], taking a stamp as proof only for a file and directories owned
/// by `trusted_owner` (root; tests pass their own uid).
pub(crate) fn verify_trusting(
    spec: &LoadSpec,
    trusted_owner: u32,
) -> Result<VerifiedLibrary, LoadError> {
    let label = spec.label();
    let path = spec.path.clone();
    // O_NONBLOCK: a FIFO (or device) there must be refused below, not
    // block this open forever; it changes nothing for a regular file.
    let mut file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&path)
    }
    .map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            LoadError::new(label.clone(), path.clone(), LoadErrorKind::Missing)
        } else {
            LoadError::new(label.clone(), path.clone(), LoadErrorKind::Read { source })
        }
    })?;
    let meta = file.metadata().map_err(|source| {
        LoadError::new(label.clone(), path.clone(), LoadErrorKind::Read { source })
    })?;
    if !meta.file_type().is_file() {
        return Err(LoadError::new(label, path, LoadErrorKind::NotRegularFile));
    }
    let owned = check_ownership(spec, &label, &file, &meta, trusted_owner);
    let store_trusted = match owned {
        Ok(()) => spec.plugin_root.is_some(),
        // Only root's loads are guarded: an unprivileged user loading
        // their own build (`plugin compile`) can only hurt themselves. They
        // just get no shortcut from a stamp in a store root does not own.
        Err(e) if nix::unistd::Uid::effective().is_root() => return Err(e),
        Err(_) => false,
    };
    let stamp = LibraryStamp::of(&meta);
    let recorded = match (&spec.installed, &spec.sha256) {
        (Some(recorded), Some(_)) if store_trusted => Some(recorded),
        _ => None,
    };
    let unchanged = recorded == Some(&stamp);
    let layouts_known = || {
        spec.layouts_checked_by
            .is_some_and(|by| super::stamp::runtime() == Some(by))
    };
    if let (true, Some(sha256)) = (unchanged, &spec.sha256) {
        if super::immutable::is_immutable(&file) && claim_in_place(&stamp) {
            tracing::debug!(plugin = %label, "library immutable and unchanged since install: loading the installed file in place");
            return Ok(VerifiedLibrary {
                label,
                path,
                source: Source::InPlace { file, stamp },
                sha256: sha256.to_ascii_lowercase(),
                checks: Checks::VerifiedAtInstall,
                layouts_known: layouts_known(),
            });
        }
    }

    let (memfd, copied) = sealed_copy(&mut file, meta.len()).map_err(|e| match e {
        Staging::Read(source) => {
            LoadError::new(label.clone(), path.clone(), LoadErrorKind::Read { source })
        }
        Staging::Memfd(source) => {
            LoadError::new(label.clone(), path.clone(), LoadErrorKind::Memfd { source })
        }
    })?;
    // Again after the copy: a write that began before or during it has
    // changed the file's times by now, so equal stamps on both sides mean
    // the sealed bytes are the ones the install hashed.
    let still_unchanged = unchanged
        && copied == meta.len()
        && file.metadata().is_ok_and(|m| LibraryStamp::of(&m) == stamp);
    if let (true, Some(sha256)) = (still_unchanged, &spec.sha256) {
        tracing::debug!(plugin = %label, "library unchanged since install: its sha256 and ELF checks stand");
        return Ok(VerifiedLibrary {
            label,
            path,
            source: Source::Sealed(memfd),
            sha256: sha256.to_ascii_lowercase(),
            checks: Checks::VerifiedAtInstall,
            layouts_known: layouts_known(),
        });
    }
    if recorded.is_some() {
        tracing::debug!(plugin = %label, "library changed since install: checking its sha256");
    } else {
        tracing::debug!(plugin = %label, "no install stamp to rely on: checking the library's sha256");
    }
    let map = SealedMap::new(&memfd).map_err(|source| {
        LoadError::new(label.clone(), path.clone(), LoadErrorKind::Memfd { source })
    })?;
    let bytes = map.bytes();
    let sha256 = sha256_hex(bytes);
    if let Some(expected) = &spec.sha256 {
        if !expected.eq_ignore_ascii_case(&sha256) {
            return Err(LoadError::new(
                label,
                path,
                LoadErrorKind::DigestMismatch {
                    expected: expected.clone(),
                    actual: sha256,
                },
            ));
        }
    }
    check_elf(&label, &path, bytes)?;
    drop(map);
    Ok(VerifiedLibrary {
        label,
        path,
        source: Source::Sealed(memfd),
        sha256,
        checks: Checks::Full,
        layouts_known: false,
    })
}

/// Why the library could not be staged in a memfd.
enum Staging {
    /// Reading the library failed.
    Read(std::io::Error),
    /// Making or sealing the memfd failed.
    Memfd(std::io::Error),
}

/// Copies `len` bytes of `file` into a new memfd (in the kernel:
/// `io::copy` between files uses copy_file_range/sendfile) and seals it:
/// from then on nobody, this process included, can change its bytes.
/// Returns the memfd and how many bytes it holds (fewer than `len` when the
/// file shrank meanwhile).
fn sealed_copy(file: &mut File, len: u64) -> Result<(File, u64), Staging> {
    use std::io::Read as _;
    let name = CString::new("vessel-plugin").expect("no NUL in a literal");
    // SAFETY: plain syscall with a valid C string.
    let fd =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(Staging::Memfd(std::io::Error::last_os_error()));
    }
    // SAFETY: a fresh fd we own.
    let mut memfd = unsafe { File::from_raw_fd(fd) };
    // The file's size when it was checked; a file that changes meanwhile
    // gives other bytes, which the hash of the sealed copy then refuses.
    let copied = std::io::copy(&mut file.take(len), &mut memfd).map_err(|e| {
        if e.kind() == std::io::ErrorKind::WriteZero || e.raw_os_error() == Some(libc::ENOSPC) {
            Staging::Memfd(e)
        } else {
            Staging::Read(e)
        }
    })?;
    seal(&memfd).map_err(Staging::Memfd)?;
    Ok((memfd, copied))
}

/// Seals a memfd for good: no write (shared writable mappings included),
/// no grow, no shrink, no further seal changes.
fn seal(memfd: &File) -> std::io::Result<()> {
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on an fd we own.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A read-only mapping of a sealed memfd: its bytes, without a copy.
struct SealedMap {
    ptr: *mut libc::c_void,
    len: usize,
}

impl SealedMap {
    fn new(memfd: &File) -> std::io::Result<Self> {
        let len = usize::try_from(memfd.metadata()?.len())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::FileTooLarge))?;
        if len == 0 {
            return Ok(Self {
                ptr: std::ptr::null_mut(),
                len: 0,
            });
        }
        // SAFETY: a fresh read-only mapping of a file we own; the seals
        // guarantee its contents and size never change while it is mapped.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                memfd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Self { ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `len` mapped, readable bytes that cannot change (sealed),
        // borrowed no longer than the mapping lives.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for SealedMap {
    fn drop(&mut self) {
        if self.len != 0 {
            // SAFETY: unmapping exactly what `new` mapped.
            unsafe { libc::munmap(self.ptr, self.len) };
        }
    }
}

/// Fails unless the library (its descriptor's `meta`) and, with a plugin
/// root, every directory up to it are owned by `owner` and not group- or
/// world-writable. The caller decides what a failure means (as root: a
/// refusal).
fn check_ownership(
    spec: &LoadSpec,
    label: &str,
    opened: &File,
    meta: &std::fs::Metadata,
    owner: u32,
) -> Result<(), LoadError> {
    let path = &spec.path;
    if meta.uid() != owner {
        return Err(LoadError::new(
            label.to_string(),
            path.clone(),
            LoadErrorKind::NotRootOwned { uid: meta.uid() },
        ));
    }
    if meta.mode() & 0o020 != 0 {
        return Err(LoadError::new(
            label.to_string(),
            path.clone(),
            LoadErrorKind::GroupWritable,
        ));
    }
    if meta.mode() & 0o002 != 0 {
        return Err(LoadError::new(
            label.to_string(),
            path.clone(),
            LoadErrorKind::WorldWritable,
        ));
    }
    let Some(root) = &spec.plugin_root else {
        return Ok(());
    };
    let read_err = |p: &Path, source| {
        LoadError::new(
            label.to_string(),
            p.to_path_buf(),
            LoadErrorKind::Read { source },
        )
    };
    let root = root.canonicalize().map_err(|e| read_err(root, e))?;
    let file = opened_path(opened)
        .map_or_else(|| path.canonicalize(), Ok)
        .map_err(|e| read_err(path, e))?;
    if !file.starts_with(&root) || file == root {
        return Err(LoadError::new(
            label.to_string(),
            path.clone(),
            LoadErrorKind::OutsidePluginRoot { root },
        ));
    }
    for dir in file.ancestors().skip(1) {
        let m = std::fs::metadata(dir).map_err(|e| read_err(dir, e))?;
        if m.uid() != owner {
            return Err(LoadError::new(
                label.to_string(),
                path.clone(),
                LoadErrorKind::DirNotRootOwned {
                    dir: dir.to_path_buf(),
                    uid: m.uid(),
                },
            ));
        }
        let who = if m.mode() & 0o020 != 0 {
            Some("group")
        } else if m.mode() & 0o002 != 0 {
            Some("world")
        } else {
            None
        };
        if let Some(who) = who {
            return Err(LoadError::new(
                label.to_string(),
                path.clone(),
                LoadErrorKind::DirWritable {
                    dir: dir.to_path_buf(),
                    who,
                },
            ));
        }
        if dir == root {
            break;
        }
    }
    Ok(())
}

/// Where the kernel says the opened file is: the resolved path of the very
/// inode checked, in one readlink instead of one per path component. `None`
/// when it cannot say plainly (no /proc, a file unlinked since it was
/// opened): then the caller resolves the path itself.
fn opened_path(opened: &File) -> Option<PathBuf> {
    let p = std::fs::read_link(format!("/proc/self/fd/{}", opened.as_raw_fd())).ok()?;
    let deleted = p.as_os_str().as_encoded_bytes().ends_with(b" (deleted)");
    (p.is_absolute() && !deleted).then_some(p)
}

/// Loads a plugin: [`verify`], then dlopen exactly the verified bytes, check
/// the plugin-api version and the layouts, and hand it the host services.
pub fn load(spec: &LoadSpec) -> Result<LoadedPlugin, LoadError> {
    let verified = verify(spec)?;
    let (module, init) = open_verified(&verified)?;
    let label = verified.label.clone();
    let abi_manifest = (module.manifest)().into_result().map_err(|e| {
        LoadError::new(
            label.clone(),
            verified.path.clone(),
            LoadErrorKind::Manifest {
                reason: e.message.into_string(),
            },
        )
    })?;
    check_api_version(&label, &verified.path, abi_manifest.api_version.as_str())?;
    if let Some(name) = &spec.name {
        if abi_manifest.name.as_str() != name {
            return Err(LoadError::new(
                label,
                verified.path.clone(),
                LoadErrorKind::NameMismatch {
                    declared: abi_manifest.name.into_string(),
                },
            ));
        }
    }
    if let (Some(name), Some(dir)) = (&spec.name, &spec.install_dir) {
        registry::set_install_dir(name, dir);
    }
    init.call().into_result().map_err(|e| {
        LoadError::new(
            label.clone(),
            verified.path.clone(),
            LoadErrorKind::Init {
                reason: e.message.into_string(),
            },
        )
    })?;
    let callbacks = CallbackKind::of(&module.callbacks);
    let manifest = manifest_from_abi(&abi_manifest, callbacks, &verified.sha256);
    tracing::debug!(plugin = %manifest.name, sha256 = %manifest.sha256, "plugin loaded");
    Ok(LoadedPlugin::new(
        module.callbacks,
        manifest,
        spec.path.clone(),
    ))
}

/// A loaded root module's entry points, whatever 1.x layout it has (its
/// `init` aside: that one takes the host services of its own version).
#[derive(Clone, Copy)]
struct Module {
    manifest: extern "C" fn() -> abi::CallResult<abi::PluginManifest>,
    callbacks: abi::CallbackEntries,
}

/// A plugin's `init` entry point, typed by the host services of the
/// plugin-api version it was built with.
#[derive(Clone, Copy)]
enum Init {
    V1_0(extern "C" fn(v1_0::HostServices_Ref) -> abi::CallResult<()>),
    V1_1(extern "C" fn(v1_1::HostServices_Ref) -> abi::CallResult<()>),
    Current(extern "C" fn(abi::HostServices_Ref) -> abi::CallResult<()>),
}

impl Init {
    fn call(self) -> abi::CallResult<()> {
        match self {
            Init::V1_0(f) => f(host::services_v1_0()),
            Init::V1_1(f) => f(host::services_v1_1()),
            Init::Current(f) => f(host::services()),
        }
    }
}

/// Dlopens the verified bytes (the sealed memfd, or the immutable installed
/// file, checked again once mapped) and gets the root module through
/// abi_stable's header API (not `RootModule::load_from*`, which keeps one
/// module per type and so one plugin per process). The
/// layout checked is the one of the plugin-api minor the plugin was built
/// with: abi_stable accepts a library with more prefix fields than expected,
/// never fewer, so older plugins are checked against their frozen layout.
fn open_verified(v: &VerifiedLibrary) -> Result<(Module, Init), LoadError> {
    let plugin = v.label.clone();
    let fd = v.source.file().try_clone().map_err(|source| {
        let kind = match v.source {
            Source::Sealed(_) => LoadErrorKind::Memfd { source },
            Source::InPlace { .. } => LoadErrorKind::Read { source },
        };
        LoadError::new(plugin.clone(), v.path.clone(), kind)
    })?;
    let fd_path = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    let raw = RawLibrary::load_at(&fd_path).map_err(|e| {
        LoadError::new(
            plugin.clone(),
            v.path.clone(),
            LoadErrorKind::Dlopen {
                reason: one_line(&e.to_string()),
            },
        )
    })?;
    // The loaded library and its memfd stay for the whole process: unloading
    // a Rust cdylib is unsound, and keeping the fd open keeps its
    // `/proc/self/fd/N` name unique, so glibc never mistakes a later plugin
    // for this already-loaded one.
    let raw: &'static RawLibrary = Box::leak(Box::new(raw));
    let _ = fd.into_raw_fd();
    if let Source::InPlace { file, stamp } = &v.source {
        // Mapped now: were the flag cleared and the file written since it
        // was checked, its stamp would show it. (Its initialisers have run;
        // only root can clear the flag, and then nothing of it is used.)
        let same = file
            .metadata()
            .is_ok_and(|m| LibraryStamp::of(&m) == *stamp)
            && super::immutable::is_immutable(file);
        if !same {
            return Err(LoadError::new(
                plugin,
                v.path.clone(),
                LoadErrorKind::ChangedWhileLoading,
            ));
        }
    }

    // SAFETY: the library is leaked, so the 'static header never dangles.
    let header = unsafe { abi_header_from_raw_library(raw) }.map_err(|e| map_lib_err(v, e))?;
    let lib = header.upgrade().map_err(|e| map_lib_err(v, e))?;
    // Check the plugin-api version before the layouts, so a plugin built
    // against a newer API gets the version message, not a layout dump.
    let theirs = VersionNumber::new(lib.version_strings()).map_err(|e| {
        LoadError::new(
            plugin.clone(),
            v.path.clone(),
            LoadErrorKind::AbiStable {
                reason: e.to_string(),
            },
        )
    })?;
    check_api_version(
        &plugin,
        &v.path,
        &format!("{}.{}.{}", theirs.major, theirs.minor, theirs.patch),
    )?;
    // One arm per frozen layout: when an API minor changes a root-module
    // type, freeze the previous one in `abi::v1_N` and add its arm here.
    if theirs.minor == 0 {
        let m = root_module::<v1_0::PluginMod_Ref>(v, lib)?;
        let module = Module {
            manifest: m.manifest(),
            callbacks: m.callback_entries(),
        };
        Ok((module, Init::V1_0(m.init())))
    } else if theirs.minor == 1 {
        let m = root_module::<v1_1::PluginMod_Ref>(v, lib)?;
        let module = Module {
            manifest: m.manifest(),
            callbacks: m.callback_entries(),
        };
        Ok((module, Init::V1_1(m.init())))
    } else {
        let m = root_module::<abi::PluginMod_Ref>(v, lib)?;
        let module = Module {
            manifest: m.manifest(),
            callbacks: m.callback_entries(),
        };
        Ok((module, Init::Current(m.init())))
    }
}

/// The root module as `M`, its layout checked by abi_stable unless this
/// runtime binary already checked it on these bytes at install.
fn root_module<M: abi_stable::library::RootModule>(
    v: &VerifiedLibrary,
    lib: &abi_stable::library::LibHeader,
) -> Result<M, LoadError> {
    if v.layouts_known {
        tracing::debug!(plugin = %v.label, "layouts checked at install by this runtime binary");
        // SAFETY: the bytes are the ones whose layouts this same binary
        // (the same expected layouts, compiled in) found compatible at
        // install; the answer of a check cannot differ.
        unsafe { lib.init_root_module_with_unchecked_layout::<M>() }
    } else {
        lib.init_root_module::<M>()
    }
    .map_err(|e| map_lib_err(v, e))
}

fn map_lib_err(v: &VerifiedLibrary, e: LibraryError) -> LoadError {
    let plugin = v.label.clone();
    match e {
        LibraryError::OpenError { err, .. } => LoadError::new(
            plugin,
            v.path.clone(),
            LoadErrorKind::Dlopen {
                reason: one_line(&err.to_string()),
            },
        ),
        LibraryError::GetSymbolError { .. } => {
            LoadError::new(plugin, v.path.clone(), LoadErrorKind::NotAPlugin)
        }
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => LoadError::new(
            plugin,
            v.path.clone(),
            LoadErrorKind::ApiVersion {
                plugin_api: actual_version.to_string(),
                runtime_api: expected_version.to_string(),
            },
        ),
        LibraryError::AbiInstability(report) => {
            let report = report.to_string();
            tracing::debug!(plugin = %plugin, "layout check failed:\n{report}");
            LoadError::new(
                plugin,
                v.path.clone(),
                LoadErrorKind::Layout {
                    summary: layout_summary(&report),
                },
            )
        }
        LibraryError::RootModule { err, .. } => LoadError::new(
            plugin,
            v.path.clone(),
            LoadErrorKind::Init {
                reason: one_line(&err.to_string()),
            },
        ),
        other => LoadError::new(
            plugin,
            v.path.clone(),
            LoadErrorKind::AbiStable {
                reason: one_line(&other.to_string()),
            },
        ),
    }
}

/// abi_stable's layout report is many lines; keep what differs:
/// its `Error:` lines with the expected and found values.
fn layout_summary(report: &str) -> String {
    let lines: Vec<&str> = report.lines().map(str::trim).collect();
    let mut parts = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(what) = l.strip_prefix("Error:") else {
            continue;
        };
        let value_after = |label: &str| {
            lines[i + 1..]
                .iter()
                .position(|l| *l == label)
                .and_then(|k| lines.get(i + 1 + k + 1))
                .map(|v| one_line(v))
        };
        let mut part = one_line(what);
        if let (Some(e), Some(f)) = (value_after("Expected:"), value_after("Found:")) {
            part.push_str(&format!(" (expected {e}, found {f})"));
        }
        parts.push(part);
    }
    if parts.is_empty() {
        "type layouts differ".to_string()
    } else {
        parts.join("; ")
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Checks a plugin's plugin-api version against the runtime's: same major,
/// plugin minor not newer. Used at load and, from the manifest, at install.
pub fn check_api_version(plugin: &str, path: &Path, plugin_api: &str) -> Result<(), LoadError> {
    let runtime_api = vessel_plugin_abi::API_VERSION;
    let err = || {
        LoadError::new(
            plugin.to_string(),
            path.to_path_buf(),
            LoadErrorKind::ApiVersion {
                plugin_api: plugin_api.to_string(),
                runtime_api: runtime_api.to_string(),
            },
        )
    };
    let (pm, pn) = major_minor(plugin_api).ok_or_else(err)?;
    let (rm, rn) = major_minor(runtime_api).ok_or_else(err)?;
    if pm != rm || pn > rn {
        return Err(err());
    }
    Ok(())
}

fn major_minor(v: &str) -> Option<(u64, u64)> {
    let mut parts = v.trim().splitn(3, '.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next()?;
    // Accept pre-release/build suffixes on the patch, like cargo does.
    let digits = patch.split(['-', '+']).next()?;
    digits.parse::<u64>().ok()?;
    Some((major, minor))
}

fn flag_from_abi(f: &vessel_plugin_abi::FlagSpec) -> FlagSpec {
    FlagSpec {
        name: f.name.to_string(),
        short: f.short.into_option().and_then(char::from_u32),
        help: f.help.to_string(),
        takes_value: f.takes_value,
    }
}

/// The runtime manifest of a loaded plugin. `runtime_version`,
/// `rustc_version` and `target` describe a build, so `plugin compile` fills
/// them in; they stay empty here.
fn manifest_from_abi(
    m: &vessel_plugin_abi::PluginManifest,
    callbacks: Vec<CallbackKind>,
    sha256: &str,
) -> Manifest {
    Manifest {
        name: m.name.to_string(),
        author: m.author.to_string(),
        version: m.version.to_string(),
        description: m.description.to_string(),
        api_version: m.api_version.to_string(),
        runtime_version: String::new(),
        rustc_version: String::new(),
        target: String::new(),
        callbacks,
        commands: m
            .commands
            .iter()
            .map(|c| CommandSpec {
                name: c.name.to_string(),
                about: c.about.to_string(),
                args: c
                    .args
                    .iter()
                    .map(|a| ArgSpec {
                        name: a.name.to_string(),
                        help: a.help.to_string(),
                        required: a.required,
                        multiple: a.multiple,
                    })
                    .collect(),
                flags: c.flags.iter().map(flag_from_abi).collect(),
            })
            .collect(),
        flags: m
            .flags
            .iter()
            .map(|f| AddedFlagSpec {
                command: f.command.to_string(),
                flag: flag_from_abi(&f.flag),
            })
            .collect(),
        global_pre_run: m.global_pre_run,
        sha256: sha256.to_string(),
        provenance: None,
    }
}

/// Lowercase hex sha256 of a byte string (how manifests and metas record digests).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_lock_major_and_minor() {
        let (major, minor) = {
            let mut v = vessel_plugin_abi::API_VERSION.split('.');
            let n = |x: Option<&str>| x.unwrap().parse::<u64>().unwrap();
            (n(v.next()), n(v.next()))
        };
        assert!(
            check_api_version("p", Path::new("p.so"), "1.0.0").is_ok(),
            "1.0 plugins load in every 1.x"
        );
        assert!(check_api_version("p", Path::new("p.so"), "1.0.7").is_ok());
        assert!(check_api_version("p", Path::new("p.so"), &format!("{major}.{minor}.3")).is_ok());
        assert!(matches!(
            check_api_version("p", Path::new("p.so"), "2.0.0"),
            Err(LoadError {
                kind: LoadErrorKind::ApiVersion { .. },
                ..
            })
        ));
        assert!(matches!(
            check_api_version("p", Path::new("p.so"), &format!("{major}.{}.0", minor + 1)),
            Err(LoadError {
                kind: LoadErrorKind::ApiVersion { .. },
                ..
            })
        ));
        assert!(matches!(
            check_api_version("p", Path::new("p.so"), "0.9.0"),
            Err(LoadError {
                kind: LoadErrorKind::ApiVersion { .. },
                ..
            })
        ));
        assert!(matches!(
            check_api_version("p", Path::new("p.so"), "garbage"),
            Err(LoadError {
                kind: LoadErrorKind::ApiVersion { .. },
                ..
            })
        ));
        let msg = check_api_version("example.com/x", Path::new("x.so"), "2.0.0")
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            format!(
                "plugin \"example.com/x\": built against plugin-api 2.0.0, which this runtime (plugin-api {}) cannot load",
                vessel_plugin_abi::API_VERSION
            )
        );
    }

    #[test]
    fn staged_bytes_are_sealed_and_are_the_bytes_checked() {
        use std::io::{Read, Write};
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("lib.so");
        std::fs::write(&src, b"verified bytes, and more").unwrap();
        let mut file = File::open(&src).unwrap();
        // Only the size that was checked is copied.
        let (f, copied) = sealed_copy(&mut file, 14).ok().unwrap();
        assert_eq!(copied, 14);
        // Changing the file afterwards changes nothing staged.
        std::fs::write(&src, b"tampered").unwrap();
        let mut w = &f;
        assert!(w.write_all(b"tampered").is_err());
        assert!(f.set_len(1).is_err());
        assert!(f.set_len(100).is_err());
        // Not even a shared writable mapping can be made any more.
        // SAFETY: a mapping attempt that must fail; unmapped if it does not.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                14,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        assert_eq!(p, libc::MAP_FAILED);
        let map = SealedMap::new(&f).unwrap();
        assert_eq!(map.bytes(), b"verified bytes");
        let mut back = Vec::new();
        let mut r = File::open(format!("/proc/self/fd/{}", f.as_raw_fd())).unwrap();
        r.read_to_end(&mut back).unwrap();
        assert_eq!(back, b"verified bytes");
    }

    /// A library file in its own plugin root, owned by this test's user,
    /// whose mtime lies in the past (file times tick at the kernel's timer
    /// resolution: a later write must change them whatever the clock).
    /// Returns the dir, the spec with the file's digest, and its stamp.
    fn installed_file(bytes: &[u8]) -> (tempfile::TempDir, LoadSpec, LibraryStamp) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let lib = dir.path().join("plugin.so");
        std::fs::write(&lib, bytes).unwrap();
        let f = File::options().write(true).open(&lib).unwrap();
        f.set_permissions(std::fs::Permissions::from_mode(0o644))
            .unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1))
            .unwrap();
        let stamp = LibraryStamp::of(&f.metadata().unwrap());
        drop(f);
        let spec = LoadSpec::new(&lib)
            .name("example.com/p")
            .sha256(sha256_hex(bytes))
            .plugin_root(dir.path());
        (dir, spec, stamp)
    }

    fn me() -> u32 {
        nix::unistd::Uid::effective().as_raw()
    }

    fn staged(v: &VerifiedLibrary) -> Vec<u8> {
        let map = SealedMap::new(v.source.file()).unwrap();
        map.bytes().to_vec()
    }

    #[test]
    fn an_unchanged_installed_file_skips_the_hash_and_elf_checks() {
        // Not ELF: only a load that skips the ELF checks gets past them.
        let (_dir, spec, stamp) = installed_file(b"bytes verified at install");
        let v = verify_trusting(&spec.clone().installed(Some(stamp)), me()).unwrap();
        assert_eq!(v.checks(), Checks::VerifiedAtInstall);
        assert_eq!(v.sha256(), sha256_hex(b"bytes verified at install"));
        // Still the sealed copy of the file's bytes that is loaded.
        assert_eq!(staged(&v), b"bytes verified at install");
        // No record of which runtime checked the layouts: abi_stable checks.
        assert!(!v.layouts_known());
    }

    /// Root only: setting the immutable flag needs CAP_LINUX_IMMUTABLE.
    #[test]
    #[ignore = "needs root"]
    fn an_immutable_unchanged_installed_file_is_used_in_place_once() {
        let (dir, spec, _) = installed_file(b"bytes verified at install");
        let f = File::open(&spec.path).unwrap();
        if !super::super::immutable::set_immutable(&f).unwrap() {
            eprintln!("skipped: {} keeps no immutable flag", dir.path().display());
            return;
        }
        // The flag changed the ctime: the stamp is taken after it.
        let stamp = LibraryStamp::of(&f.metadata().unwrap());
        let spec = spec.installed(Some(stamp));
        let v = verify_trusting(&spec, me()).unwrap();
        assert!(v.in_place());
        assert_eq!(v.checks(), Checks::VerifiedAtInstall);
        // The installed file itself, not a copy.
        let (a, b) = (v.source.file().metadata().unwrap(), f.metadata().unwrap());
        assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()));
        // A second load of the same file in this process gets its own
        // sealed copy (the dynamic loader would hand back the first).
        let again = verify_trusting(&spec, me()).unwrap();
        assert!(!again.in_place());
        assert_eq!(staged(&again), b"bytes verified at install");
        // Without the flag (an admin's `chattr -i`), the stamp differs.
        super::super::immutable::clear_tree(dir.path()).unwrap();
        let (_d2, spec2, stamp2) = installed_file(b"not flagged");
        let v = verify_trusting(&spec2.installed(Some(stamp2)), me()).unwrap();
        assert!(!v.in_place());
        assert_eq!(v.checks(), Checks::VerifiedAtInstall);
    }

    #[test]
    fn only_the_runtime_binary_that_checked_the_layouts_skips_that_check() {
        let (_dir, spec, stamp) = installed_file(b"bytes verified at install");
        let this = super::super::stamp::runtime().expect("/proc/self/exe");
        let spec = spec.installed(Some(stamp));
        let by = |runtime| verify_trusting(&spec.clone().layouts_checked_by(runtime), me());
        assert!(by(Some(this)).unwrap().layouts_known());
        // Another binary (an upgraded runtime) checks them again.
        let other = LibraryStamp {
            mtime_ns: this.mtime_ns + 1,
            ..this
        };
        assert!(!by(Some(other)).unwrap().layouts_known());
        assert!(!by(None).unwrap().layouts_known());
        // Changed bytes: full checks, layouts included (refused here earlier).
        let (_dir, spec, _) = installed_file(b"bytes verified at install");
        let v = verify_trusting(
            &spec
                .clone()
                .installed(Some(LibraryStamp { ino: 0, ..stamp }))
                .layouts_checked_by(Some(this)),
            me(),
        );
        assert!(matches!(
            v,
            Err(LoadError {
                kind: LoadErrorKind::NotElf,
                ..
            })
        ));
    }

    #[test]
    fn a_file_rewritten_in_place_is_hashed_and_refused() {
        use std::io::{Seek, SeekFrom, Write};
        let (_dir, spec, stamp) = installed_file(b"bytes verified at install");
        // Same size, same inode, other bytes.
        let mut f = File::options().write(true).open(&spec.path).unwrap();
        f.seek(SeekFrom::Start(6)).unwrap();
        f.write_all(b"TAMPERED").unwrap();
        drop(f);
        assert_eq!(
            std::fs::metadata(&spec.path).unwrap().len(),
            stamp.size,
            "the size alone cannot tell"
        );
        let err = verify_trusting(&spec.installed(Some(stamp)), me()).unwrap_err();
        match err.kind {
            LoadErrorKind::DigestMismatch { expected, actual } => {
                assert_eq!(expected, sha256_hex(b"bytes verified at install"));
                assert_eq!(actual, sha256_hex(b"bytes TAMPERED at install"));
            }
            other => panic!("expected a digest mismatch, got {other:?}"),
        }
    }

    #[test]
    fn without_a_usable_stamp_the_full_checks_run() {
        let (dir, spec, stamp) = installed_file(b"bytes verified at install");
        let full = |spec: &LoadSpec, owner| match verify_trusting(spec, owner) {
            // The ELF checks ran (and refused these bytes): the full path.
            Err(LoadError {
                kind: LoadErrorKind::NotElf,
                ..
            }) => {}
            other => panic!("expected the full checks, got {other:?}"),
        };
        // A meta from before stamps: none recorded.
        full(&spec, me());
        // A stamp of another file.
        let other = LibraryStamp {
            ino: stamp.ino + 1,
            ..stamp
        };
        full(&spec.clone().installed(Some(other)), me());
        // No digest to stand for, or no plugin root whose owner is known.
        let mut no_digest = spec.clone().installed(Some(stamp));
        no_digest.sha256 = None;
        full(&no_digest, me());
        let mut no_root = spec.clone().installed(Some(stamp));
        no_root.plugin_root = None;
        full(&no_root, me());
        // A store that is not the trusted owner's: as root, refused outright.
        let stamped = spec.clone().installed(Some(stamp));
        if nix::unistd::Uid::effective().is_root() {
            assert!(matches!(
                verify_trusting(&stamped, me() + 1),
                Err(LoadError {
                    kind: LoadErrorKind::NotRootOwned { .. },
                    ..
                })
            ));
        } else {
            full(&stamped, me() + 1);
        }
        drop(dir);
    }

    #[test]
    fn layout_summary_keeps_the_errors() {
        let report = "Compared <this>:\n  lots\n\nError:mismatched package\nExpected:\n    vessel-plugin-api\nFound:\n    other\n";
        assert_eq!(
            layout_summary(report),
            "mismatched package (expected vessel-plugin-api, found other)"
        );
        assert_eq!(layout_summary("garbage"), "type layouts differ");
    }

    #[test]
    fn not_elf_and_truncated_elf_are_told_apart() {
        let p = Path::new("x.so");
        assert!(matches!(
            check_elf("x", p, b"#!/bin/sh\n"),
            Err(LoadError {
                kind: LoadErrorKind::NotElf,
                ..
            })
        ));
        assert!(matches!(
            check_elf("x", p, b"\x7fELF\x02\x01\x01"),
            Err(LoadError {
                kind: LoadErrorKind::MalformedElf { .. },
                ..
            })
        ));
    }
}
