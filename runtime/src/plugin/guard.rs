//! Plugin callbacks under guard: a deadline, the stop signals, and crash
//! attribution.
//!
//! [`with_deadline`] runs a callback on a helper thread while the calling
//! thread waits for it at most `plugin_timeout` (vessel.toml), still taking
//! SIGINT, SIGTERM and SIGHUP: when the caller has them blocked (the engine
//! does once the container exists) they are picked up here and end the
//! wait; otherwise their default action ends vessel as usual.
//!
//! [`CrashScope`] records, in statics a signal handler may read, which
//! plugin and callback run now; a fatal signal (SIGSEGV, SIGBUS, SIGILL,
//! SIGFPE, SIGABRT) then prints one line naming them before the default
//! action ends the process.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Once};
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};

use super::PluginError;

/// The deadline of a plugin callback without `plugin_timeout` in vessel.toml.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

static TIMEOUT_MS: AtomicU64 = AtomicU64::new(DEFAULT_TIMEOUT.as_millis() as u64);

/// Sets the deadline of every plugin callback from now on (the runtime sets
/// it from vessel.toml at start-up).
pub fn set_timeout(d: Duration) {
    TIMEOUT_MS.store(
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
}

/// The deadline of a plugin callback.
pub fn timeout() -> Duration {
    Duration::from_millis(TIMEOUT_MS.load(Ordering::Relaxed))
}

/// How often the waiting thread looks at pending stop signals.
const POLL: Duration = Duration::from_millis(20);

/// Runs `f` (a call of plugin `plugin`'s `callback`) on a helper thread and
/// waits for it at most [`timeout()`]. `f` owns what it works on, so the
/// caller's data is never shared with a thread that may outlive the wait.
///
/// On expiry, or when SIGINT/SIGTERM/SIGHUP arrive (if the caller blocks
/// them), the error is returned and the helper thread is abandoned: a
/// thread running plugin code cannot be killed or cancelled safely, so the
/// caller reports, stops the container if one runs, and the process exits
/// without waiting for that thread (exit does not join threads).
pub fn with_deadline<T: Send + 'static>(
    plugin: &str,
    callback: &'static str,
    f: impl FnOnce() -> Result<T, PluginError> + Send + 'static,
) -> Result<T, PluginError> {
    within(timeout(), plugin, callback, f)
}

fn within<T: Send + 'static>(
    limit: Duration,
    plugin: &str,
    callback: &'static str,
    f: impl FnOnce() -> Result<T, PluginError> + Send + 'static,
) -> Result<T, PluginError> {
    let (tx, rx) = mpsc::channel();
    // The helper's kernel thread id, so the wait below can watch that one
    // thread leave (0 until it runs).
    let tid = Arc::new(AtomicI32::new(0));
    let helper_tid = Arc::clone(&tid);
    let handle = std::thread::Builder::new()
        .name("vessel-plugin".into())
        .spawn(move || {
            helper_tid.store(nix::unistd::gettid().as_raw(), Ordering::SeqCst);
            ensure_alt_stack();
            let _ = tx.send(f());
        })
        .map_err(|source| PluginError::Spawn {
            plugin: plugin.to_owned(),
            source,
        })?;
    let start = Instant::now();
    loop {
        let left = limit.saturating_sub(start.elapsed());
        match rx.recv_timeout(left.min(POLL)) {
            Ok(r) => {
                let _ = handle.join();
                settle_thread(tid.load(Ordering::SeqCst));
                return r;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // The closure panicked (runtime code: the SDK catches the
                // plugin's own panics): propagate it as it would have been.
                if let Err(p) = handle.join() {
                    std::panic::resume_unwind(p);
                }
                unreachable!("a helper thread ended without a result or a panic");
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Some(signal) = take_stop_signal() {
            return Err(PluginError::Interrupted {
                plugin: plugin.to_owned(),
                callback,
                signal: signal.as_str(),
            });
        }
        if start.elapsed() >= limit {
            return Err(PluginError::TimedOut {
                plugin: plugin.to_owned(),
                callback,
                after: limit,
            });
        }
    }
}

/// Runs `f` (a call of plugin `plugin`'s `callback`) on this thread under
/// [`timeout()`], for callbacks that run before vessel has anything to undo
/// (EngineConfig, and the flag and global pre-run hooks, which run before
/// the command: no work dir, mount or container process exists yet, and
/// the stop signals are not blocked, so they end vessel as usual).
///
/// A helper thread ([`with_deadline`]) costs a clone and two cross-CPU
/// wake-ups, a third of a millisecond on a small VM: most of what a no-op
/// EngineConfig plugin added to `exec`. Here a one-shot timer aimed at this
/// thread instead raises SIGRTMAX at the deadline, whose handler
/// writes the same one-line error [`with_deadline`] would return (rendered
/// from [`PluginError::TimedOut`] before the call) and ends vessel with the
/// runtime-failure status. A plugin that blocks that signal on this thread
/// defeats the deadline: callbacks that need one held against anything the
/// plugin does use [`with_deadline`].
pub fn with_deadline_here<T>(
    plugin: &str,
    callback: &'static str,
    f: impl FnOnce() -> Result<T, PluginError>,
) -> Result<T, PluginError> {
    here_within(timeout(), plugin, callback, f)
}

fn here_within<T>(
    limit: Duration,
    plugin: &str,
    callback: &'static str,
    f: impl FnOnce() -> Result<T, PluginError>,
) -> Result<T, PluginError> {
    let line = format!(
        "error: {}\n",
        PluginError::TimedOut {
            plugin: plugin.to_owned(),
            callback,
            after: limit,
        }
    );
    let _armed = Alarm::arm(limit, &line).map_err(|source| PluginError::Deadline {
        plugin: plugin.to_owned(),
        source,
    })?;
    f()
}

/// The signal of [`with_deadline_here`]'s timer: the highest real-time
/// signal (glibc keeps the lowest ones for itself).
fn deadline_signal() -> libc::c_int {
    libc::SIGRTMAX()
}

const ALARM_CAP: usize = 512;
/// The line the deadline handler writes, and whether a timer is armed (a
/// signal still queued from a disarmed timer is ignored).
static ALARM_LINE: [AtomicU8; ALARM_CAP] = [ZERO; ALARM_CAP];
static ALARM_LEN: AtomicUsize = AtomicUsize::new(0);
static ALARM_ARMED: AtomicBool = AtomicBool::new(false);
static ALARM_INSTALL: Once = Once::new();

/// An armed one-shot timer; disarmed and deleted when dropped.
struct Alarm {
    timer: libc::timer_t,
    mask: libc::sigset_t,
}

impl Alarm {
    fn arm(after: Duration, line: &str) -> std::io::Result<Self> {
        let sig = deadline_signal();
        // The handler stays for the process: a signal queued just before a
        // timer was deleted must never meet the default action (which ends
        // the process).
        ALARM_INSTALL.call_once(|| {
            // SAFETY: a zeroed sigaction is valid; the handler only uses
            // atomics, write(2) and _exit(2), all async-signal-safe.
            unsafe {
                let mut act: libc::sigaction = std::mem::zeroed();
                act.sa_sigaction = on_deadline as *const () as usize;
                act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
                libc::sigemptyset(&mut act.sa_mask);
                libc::sigaction(sig, &act, std::ptr::null_mut());
            }
        });
        ALARM_ARMED.store(false, Ordering::SeqCst);
        // Always ends with its newline, even cut short.
        let n = fill(&ALARM_LINE, line);
        if n == ALARM_CAP {
            ALARM_LINE[ALARM_CAP - 1].store(b'\n', Ordering::Relaxed);
        }
        ALARM_LEN.store(n, Ordering::SeqCst);
        // SAFETY: plain libc calls on values owned here; the sigevent is
        // zeroed (its union's other members unused) before the fields set.
        unsafe {
            let mut mask: libc::sigset_t = std::mem::zeroed();
            let mut only: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut only);
            libc::sigaddset(&mut only, sig);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &only, &mut mask);
            let mut ev: libc::sigevent = std::mem::zeroed();
            ev.sigev_notify = libc::SIGEV_THREAD_ID;
            ev.sigev_signo = sig;
            ev.sigev_notify_thread_id = libc::gettid();
            let mut timer: libc::timer_t = std::mem::zeroed();
            if libc::timer_create(libc::CLOCK_MONOTONIC, &mut ev, &mut timer) != 0 {
                let e = std::io::Error::last_os_error();
                libc::pthread_sigmask(libc::SIG_SETMASK, &mask, std::ptr::null_mut());
                return Err(e);
            }
            let spec = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: libc::timespec {
                    tv_sec: libc::time_t::try_from(after.as_secs()).unwrap_or(libc::time_t::MAX),
                    tv_nsec: libc::c_long::from(after.subsec_nanos()),
                },
            };
            ALARM_ARMED.store(true, Ordering::SeqCst);
            if libc::timer_settime(timer, 0, &spec, std::ptr::null_mut()) != 0 {
                let e = std::io::Error::last_os_error();
                ALARM_ARMED.store(false, Ordering::SeqCst);
                libc::timer_delete(timer);
                libc::pthread_sigmask(libc::SIG_SETMASK, &mask, std::ptr::null_mut());
                return Err(e);
            }
            Ok(Self { timer, mask })
        }
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        ALARM_ARMED.store(false, Ordering::SeqCst);
        // SAFETY: the timer and mask this value created and saved.
        unsafe {
            libc::timer_delete(self.timer);
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.mask, std::ptr::null_mut());
        }
    }
}

/// The deadline handler: the callback is still running on this thread and
/// cannot be unwound, so vessel ends here, saying why.
extern "C" fn on_deadline(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    if !ALARM_ARMED.load(Ordering::SeqCst) {
        return;
    }
    write_buf(&ALARM_LINE, ALARM_LEN.load(Ordering::SeqCst));
    // SAFETY: _exit is async-signal-safe; nothing of vessel's needs undoing
    // before the callbacks this guards (see `with_deadline_here`).
    unsafe { libc::_exit(crate::EXIT_RUNTIME_FAILURE) };
}

/// Takes a pending SIGINT, SIGTERM or SIGHUP that this thread blocks (the
/// engine blocks them while the container runs). Unblocked ones need no
/// polling: their default action ends the process.
fn take_stop_signal() -> Option<Signal> {
    let blocked = SigSet::thread_get_mask().ok()?;
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        if blocked.contains(s) {
            set.add(s);
        }
    }
    if set == SigSet::empty() {
        return None;
    }
    let now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid set and timespec; no siginfo is asked for.
    let r = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &now) };
    (r > 0).then(|| Signal::try_from(r).ok()).flatten()
}

/// Waits (briefly) until the joined helper thread `tid` is gone from the
/// kernel too: a join returns slightly before the kernel releases the thread,
/// and the engine refuses to clone the container from a threaded process.
/// The kernel unhashes the thread's id and drops it from the thread count
/// together, so `/proc/self/task/<tid>` vanishing is the moment the count
/// drops; one stat per look, instead of rendering `/proc/self/status`.
fn settle_thread(tid: i32) {
    if tid <= 0 {
        return;
    }
    let path = format!("/proc/self/task/{tid}");
    let start = Instant::now();
    let mut looks = 0u32;
    while std::fs::symlink_metadata(&path).is_ok() && start.elapsed() < Duration::from_secs(1) {
        // The thread is in its last steps of exit: give it the CPU first,
        // then back off.
        if looks < 100 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(50));
        }
        looks += 1;
    }
}

/// `10s`, `0.5s`: a deadline as the error shows it.
pub(crate) fn secs(d: &Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

// ---- crash attribution -------------------------------------------------

const NAME_CAP: usize = 200;
const CALLBACK_CAP: usize = 64;
#[allow(clippy::declare_interior_mutable_const)] // only an array initialiser
const ZERO: AtomicU8 = AtomicU8::new(0);

/// Whether a plugin callback runs now; the buffers below say which.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static NAME: [AtomicU8; NAME_CAP] = [ZERO; NAME_CAP];
static NAME_LEN: AtomicUsize = AtomicUsize::new(0);
static CALLBACK: [AtomicU8; CALLBACK_CAP] = [ZERO; CALLBACK_CAP];
static CALLBACK_LEN: AtomicUsize = AtomicUsize::new(0);

/// The fatal signals attributed to a running plugin.
const FATAL: [libc::c_int; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
];

/// The actions the handler replaced, restored when a fatal signal arrives
/// outside plugin code (std's stack overflow report, or the default).
struct OldActions(UnsafeCell<[Option<libc::sigaction>; FATAL.len()]>);
// SAFETY: written once, inside `INSTALL`, before any handler that reads it
// is installed; only read afterwards.
unsafe impl Sync for OldActions {}
static OLD: OldActions = OldActions(UnsafeCell::new([None; FATAL.len()]));
static INSTALL: Once = Once::new();

/// Marks plugin `plugin`'s `callback` as running until dropped: a fatal
/// signal meanwhile is reported as that plugin's crash.
#[derive(Debug)]
pub struct CrashScope(());

impl CrashScope {
    /// Records the plugin and callback (installing the handler once).
    pub fn enter(plugin: &str, callback: &str) -> Self {
        INSTALL.call_once(install_handler);
        ensure_alt_stack();
        ACTIVE.store(false, Ordering::SeqCst);
        let n = fill(&NAME, plugin);
        NAME_LEN.store(n, Ordering::SeqCst);
        let c = fill(&CALLBACK, callback);
        CALLBACK_LEN.store(c, Ordering::SeqCst);
        ACTIVE.store(true, Ordering::SeqCst);
        Self(())
    }
}

impl Drop for CrashScope {
    fn drop(&mut self) {
        ACTIVE.store(false, Ordering::SeqCst);
    }
}

fn fill(buf: &[AtomicU8], text: &str) -> usize {
    let n = text.len().min(buf.len());
    for (slot, b) in buf.iter().zip(text.bytes()) {
        slot.store(b, Ordering::Relaxed);
    }
    n
}

fn install_handler() {
    for (i, sig) in FATAL.iter().enumerate() {
        // SAFETY: a zeroed sigaction is valid; the handler has the
        // SA_SIGINFO signature and only does async-signal-safe things.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_fatal_signal as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_RESETHAND | libc::SA_ONSTACK;
            libc::sigemptyset(&mut act.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(*sig, std::ptr::null(), &mut old) == 0 {
                (*OLD.0.get())[i] = Some(old);
                libc::sigaction(*sig, &act, std::ptr::null_mut());
            }
        }
    }
}

/// Gives this thread an alternate signal stack unless it has one (std gives
/// its threads one), so a plugin that overflowed its stack is reported too.
fn ensure_alt_stack() {
    const SIZE: usize = 64 * 1024;
    // SAFETY: sigaltstack reads/writes the stack_t values we own; the stack
    // memory is leaked, so it outlives the thread using it.
    unsafe {
        let mut cur: libc::stack_t = std::mem::zeroed();
        if libc::sigaltstack(std::ptr::null(), &mut cur) != 0
            || cur.ss_flags & libc::SS_DISABLE == 0
        {
            return;
        }
        let mem: &'static mut [u8] = Box::leak(vec![0u8; SIZE].into_boxed_slice());
        let st = libc::stack_t {
            ss_sp: mem.as_mut_ptr().cast(),
            ss_flags: 0,
            ss_size: SIZE,
        };
        libc::sigaltstack(&st, std::ptr::null_mut());
    }
}

fn signal_name(sig: libc::c_int) -> &'static [u8] {
    match sig {
        libc::SIGSEGV => b"SIGSEGV",
        libc::SIGBUS => b"SIGBUS",
        libc::SIGILL => b"SIGILL",
        libc::SIGFPE => b"SIGFPE",
        libc::SIGABRT => b"SIGABRT",
        _ => b"a fatal signal",
    }
}

fn write_stderr(bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        // SAFETY: write(2) from a valid buffer; async-signal-safe.
        let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            return;
        }
        rest = &rest[n as usize..];
    }
}

/// Writes the first `len` bytes of one of the handlers' buffers (at most
/// [`ALARM_CAP`], the largest) to stderr.
fn write_buf(buf: &[AtomicU8], len: usize) {
    let mut local = [0u8; ALARM_CAP];
    let n = len.min(buf.len()).min(local.len());
    for (dst, src) in local.iter_mut().zip(buf.iter()).take(n) {
        *dst = src.load(Ordering::Relaxed);
    }
    write_stderr(&local[..n]);
}

/// The fatal-signal handler: only atomics, write(2), sigaction and raise,
/// all async-signal-safe.
extern "C" fn on_fatal_signal(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    if ACTIVE.load(Ordering::SeqCst) {
        write_stderr(b"error: plugin \"");
        write_buf(&NAME, NAME_LEN.load(Ordering::SeqCst));
        write_stderr(b"\" crashed (");
        write_stderr(signal_name(sig));
        write_stderr(b") in its ");
        write_buf(&CALLBACK, CALLBACK_LEN.load(Ordering::SeqCst));
        write_stderr(b" callback\n");
        // SA_RESETHAND restored the default action: the signal raised
        // again (held until this handler returns) ends the process the
        // usual way (a fault would also recur on return).
        // SAFETY: raise is async-signal-safe.
        unsafe { libc::raise(sig) };
        return;
    }
    // Not in plugin code: give the signal to whoever had it before.
    if let Some(i) = FATAL.iter().position(|&s| s == sig) {
        // SAFETY: OLD is only read here, after it was written; sigaction
        // and raise are async-signal-safe; info comes from the kernel.
        unsafe {
            if let Some(old) = &(*OLD.0.get())[i] {
                libc::sigaction(sig, old, std::ptr::null_mut());
            }
            // A sent signal (not a fault) does not recur on its own.
            if info.is_null() || (*info).si_code <= 0 {
                libc::raise(sig);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callback_past_its_deadline_is_abandoned_with_an_error() {
        let start = Instant::now();
        let e = within(
            Duration::from_millis(200),
            "example.com/slow",
            "EngineConfig",
            || {
                std::thread::sleep(Duration::from_secs(5));
                Ok(())
            },
        )
        .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(2));
        assert_eq!(
            e.to_string(),
            "plugin \"example.com/slow\": its EngineConfig callback did not return within 0.2s"
        );
        assert_eq!(
            within(DEFAULT_TIMEOUT, "example.com/fast", "Install", || Ok(7)).unwrap(),
            7
        );
    }

    #[test]
    fn a_returned_callback_leaves_no_thread_behind() {
        // The engine clones the container right after the callbacks and
        // refuses to from a threaded process: the helper must be gone from
        // the kernel, not only joined, when `within` returns.
        for _ in 0..20 {
            let tid = within(DEFAULT_TIMEOUT, "example.com/fast", "EngineConfig", || {
                Ok(nix::unistd::gettid().as_raw())
            })
            .unwrap();
            assert_ne!(tid, nix::unistd::gettid().as_raw());
            assert!(
                !std::path::Path::new(&format!("/proc/self/task/{tid}")).exists(),
                "helper thread {tid} still exists"
            );
        }
    }

    #[test]
    fn a_callback_here_returns_and_its_timer_goes_with_it() {
        let v = here_within(
            Duration::from_millis(100),
            "example.com/fast",
            "EngineConfig",
            || Ok(nix::unistd::gettid().as_raw()),
        )
        .unwrap();
        // On this very thread: no helper for the engine to wait out.
        assert_eq!(v, nix::unistd::gettid().as_raw());
        // Past the deadline the process lives on: the timer was deleted.
        std::thread::sleep(Duration::from_millis(300));
        let e = here_within(
            Duration::from_secs(5),
            "example.com/x",
            "EngineConfig",
            || {
                Err::<(), _>(PluginError::Callback {
                    plugin: "example.com/x".into(),
                    callback: "EngineConfig",
                    message: "no".into(),
                })
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("no"), "{e}");
    }

    /// Runs in a child process (this test binary, filtered to this test):
    /// the deadline ends the process itself.
    #[test]
    fn a_callback_here_past_its_deadline_ends_vessel_with_the_error() {
        const CHILD: &str = "VESSEL_GUARD_TEST_CHILD";
        if std::env::var_os(CHILD).is_some() {
            let _ = here_within(
                Duration::from_millis(200),
                "example.com/slow",
                "EngineConfig",
                || {
                    std::thread::sleep(Duration::from_secs(20));
                    Ok(())
                },
            );
            std::process::exit(0);
        }
        let start = Instant::now();
        let o = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "plugin::guard::tests::a_callback_here_past_its_deadline_ends_vessel_with_the_error",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        assert!(start.elapsed() < Duration::from_secs(10));
        assert_eq!(o.status.code(), Some(crate::EXIT_RUNTIME_FAILURE), "{o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("error: plugin \"example.com/slow\": its EngineConfig callback did not return within 0.2s\n"),
            "{err}"
        );
    }

    #[test]
    fn crash_scopes_record_and_clear_the_running_callback() {
        {
            let _s = CrashScope::enter("example.com/x", "EngineConfig");
            assert!(ACTIVE.load(Ordering::SeqCst));
            assert_eq!(NAME_LEN.load(Ordering::SeqCst), "example.com/x".len());
        }
        assert!(!ACTIVE.load(Ordering::SeqCst));
    }
}
