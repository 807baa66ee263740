//! The cache's LRU eviction and locking.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
#[error("build failed")]
struct Failed;

fn fill(dir: &Path, bytes: usize) -> Result<(), Failed> {
    std::fs::write(dir.join("data"), vec![0u8; bytes]).map_err(|_| Failed)
}

fn set_used(p: &Path, secs: u64) {
    let t = nix::sys::time::TimeSpec::from_duration(Duration::from_secs(secs));
    nix::sys::stat::utimensat(
        None,
        p,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

#[test]
fn builds_once_then_hits_and_rebuilds_an_invalid_entry() {
    let d = tempfile::tempdir().unwrap();
    let c = Cache::new(d.path().join("vessel"), 1 << 20);
    let valid = |p: &Path| p.join("data").is_file();
    let (h, o) = c
        .get_or_build("sandboxes", "k1", valid, |p| fill(p, 10))
        .unwrap();
    assert_eq!(o, Outcome::Built);
    assert_eq!(h.path(), d.path().join("vessel/sandboxes/k1"));
    drop(h);
    let (h, o) = c
        .get_or_build("sandboxes", "k1", valid, |_| -> Result<(), Failed> {
            panic!("must not build again")
        })
        .unwrap();
    assert_eq!(o, Outcome::Hit);
    std::fs::remove_file(h.path().join("data")).unwrap();
    drop(h);
    let (_h, o) = c
        .get_or_build("sandboxes", "k1", valid, |p| fill(p, 10))
        .unwrap();
    assert_eq!(o, Outcome::Rebuilt);
    let mode = std::fs::metadata(d.path().join("vessel/sandboxes"))
        .unwrap()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    // A failed build leaves no entry and no temp dir behind.
    let e = c.get_or_build("sandboxes", "k2", valid, |_| Err(Failed));
    assert!(matches!(e, Err(CacheError::Build { .. })), "{e:?}");
    let names: Vec<String> = std::fs::read_dir(d.path().join("vessel/sandboxes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    assert_eq!(names, ["k1"]);
}

#[test]
fn evicts_least_recently_used_first_and_skips_held_entries() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("vessel");
    let big = Cache::new(&root, u64::MAX);
    for (kind, key, used) in [
        ("sandboxes", "a", 100),
        ("blobs", "b", 300),
        ("sandboxes", "c", 200),
    ] {
        let (h, _) = big
            .get_or_build(kind, key, |_| true, |p| fill(p, 1000))
            .unwrap();
        set_used(h.path(), used);
    }
    let listed: Vec<_> = big.list().unwrap().into_iter().map(|e| e.key).collect();
    assert_eq!(listed, ["a", "c", "b"]);
    assert_eq!(big.list().unwrap()[0].size, 1000);
    assert_eq!(
        big.list().unwrap()[0].last_used,
        UNIX_EPOCH + Duration::from_secs(100)
    );
    // Room for two: the oldest ("a") goes, unless it is in use.
    let small = Cache::new(&root, 2000);
    let held = small
        .get_or_build("sandboxes", "a", |_| true, |p| fill(p, 1000))
        .unwrap();
    set_used(held.0.path(), 100);
    let removed = small.evict(&[]).unwrap();
    assert_eq!(removed.iter().map(|e| &*e.key).collect::<Vec<_>>(), ["c"]);
    drop(held);
    let removed = Cache::new(&root, 1000).evict(&[("blobs", "b")]).unwrap();
    assert_eq!(removed.iter().map(|e| &*e.key).collect::<Vec<_>>(), ["a"]);
    assert_eq!(
        big.list()
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect::<Vec<_>>(),
        ["b"]
    );
    // A new build evicts older entries to fit, never itself.
    let (h, _) = Cache::new(&root, 1500)
        .get_or_build("sandboxes", "new", |_| true, |p| fill(p, 1000))
        .unwrap();
    drop(h);
    assert_eq!(
        big.list()
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect::<Vec<_>>(),
        ["new"]
    );
}

#[test]
fn concurrent_builders_build_once_and_held_entries_are_not_removed() {
    let d = tempfile::tempdir().unwrap();
    let c = Arc::new(Cache::new(d.path().join("vessel"), u64::MAX));
    let builds = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (c, builds) = (c.clone(), builds.clone());
            std::thread::spawn(move || {
                let (h, _) = c
                    .get_or_build(
                        "sandboxes",
                        "same",
                        |p| p.join("data").is_file(),
                        |p| {
                            builds.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(100));
                            fill(p, 10)
                        },
                    )
                    .unwrap();
                assert!(h.path().join("data").is_file());
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(builds.load(Ordering::SeqCst), 1);
    let held = c
        .get_or_build("sandboxes", "same", |_| true, |p| fill(p, 1))
        .unwrap();
    let e = c.remove("sandboxes", "same").unwrap_err();
    assert_eq!(e.to_string(), "cache entry sandboxes/same: in use");
    drop(held);
    c.remove("sandboxes", "same").unwrap();
    assert!(c.list().unwrap().is_empty());
    let e = c.remove("sandboxes", "same").unwrap_err();
    assert!(matches!(e, CacheError::NoEntry(_)), "{e}");
    assert!(matches!(c.remove("..", "x"), Err(CacheError::BadName(_))));
}

#[test]
fn a_symlinked_cache_dir_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let other = d.path().join("elsewhere");
    std::fs::create_dir(&other).unwrap();
    std::fs::create_dir(d.path().join("vessel")).unwrap();
    std::os::unix::fs::symlink(&other, d.path().join("vessel/sandboxes")).unwrap();
    let c = Cache::new(d.path().join("vessel"), u64::MAX);
    let e = c
        .get_or_build("sandboxes", "k", |_| true, |p| fill(p, 1))
        .unwrap_err();
    assert!(matches!(e, CacheError::Insecure(_)), "{e}");
    assert_eq!(std::fs::read_dir(&other).unwrap().count(), 0);
}
