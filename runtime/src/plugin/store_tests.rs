use super::*;
use crate::plugin::manifest::CallbackKind;

fn manifest(name: &str) -> Manifest {
    Manifest {
        name: name.into(),
        author: "a".into(),
        version: "1".into(),
        description: "d".into(),
        api_version: "1.0.0".into(),
        runtime_version: String::new(),
        rustc_version: String::new(),
        target: String::new(),
        callbacks: vec![CallbackKind::Command],
        commands: vec![],
        flags: vec![],
        global_pre_run: false,
        sha256: "00".into(),
        provenance: None,
    }
}

fn install(store: &Store, name: &str, payload: &[u8]) -> Result<(), crate::Error> {
    install_manifest(store, manifest(name), payload)
}

fn install_manifest(store: &Store, m: Manifest, payload: &[u8]) -> Result<(), crate::Error> {
    let lock = store.lock()?;
    let meta = new_meta(m, true, None);
    let st = store.new_staging(&lock, &meta)?;
    st.write(PLUGIN_SO, payload, 0o644)?;
    store.commit_install(&lock, st, &meta, |_| Ok(()))
}

fn so_of(store: &Store, name: &str) -> Vec<u8> {
    fs::read(store.name_link(name).join(PLUGIN_SO)).unwrap()
}

#[test]
fn names_outside_the_grammar_are_refused_before_anything_is_written() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::new(d.path().join("plugins"));
    for bad in ["x", "../x", "example.com/../x", "example.com/x\u{200b}"] {
        assert!(matches!(
            install(&store, bad, b"x"),
            Err(crate::Error::Plugin(crate::plugin::PluginError::Store(
                StoreError::BadName(_)
            )))
        ));
    }
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn metas_with_path_like_fields_are_refused_and_touch_nothing_outside() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::new(d.path().join("plugins"));
    install(&store, "example.com/p", b"p").unwrap();
    let victim = d.path().join("victim");
    fs::create_dir(&victim).unwrap();
    fs::write(victim.join("keep"), b"k").unwrap();
    let meta_path = store.meta_path("example.com/p");
    let good = fs::read_to_string(&meta_path).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    for (field, value) in [
        ("install_id", victim.to_str().unwrap().to_owned()),
        ("install_id", "../../victim".to_owned()),
        ("install_id", "".to_owned()),
    ] {
        v[field] = value.into();
        fs::write(&meta_path, v.to_string()).unwrap();
        assert!(matches!(
            store.get("example.com/p"),
            Err(StoreError::BadMeta { .. })
        ));
        let lock = store.lock().unwrap();
        store.commit_uninstall(&lock, "example.com/p").unwrap();
        assert!(victim.join("keep").exists());
        drop(lock);
        install(&store, "example.com/p", b"p").unwrap();
        v = serde_json::from_str(&fs::read_to_string(&meta_path).unwrap()).unwrap();
    }
    // A meta under another plugin's file name is not that plugin.
    let mut other = v.clone();
    other["manifest"]["name"] = "example.com/q".into();
    fs::write(&meta_path, other.to_string()).unwrap();
    assert!(matches!(
        store.get("example.com/p"),
        Err(StoreError::BadMeta { .. })
    ));
    // A Meta built in code with a path for an id is refused too.
    let lock = store.lock().unwrap();
    let mut m = new_meta(manifest("example.com/r"), true, None);
    m.install_id = victim.to_str().unwrap().to_owned();
    assert!(store.new_staging(&lock, &m).is_err());
    assert!(store.put_meta(&lock, &m).is_err());
    assert!(victim.join("keep").exists());
}

#[test]
fn install_list_uninstall() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::new(d.path().join("plugins"));
    assert!(store.list().unwrap().is_empty());
    install(&store, "example.com/b", b"b").unwrap();
    install(&store, "example.com/a", b"a").unwrap();
    let names: Vec<_> = store
        .list()
        .unwrap()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    assert_eq!(names, ["example.com/a", "example.com/b"]);
    assert_eq!(so_of(&store, "example.com/a"), b"a");
    let lock = store.lock().unwrap();
    store.commit_uninstall(&lock, "example.com/a").unwrap();
    assert!(!store.name_link("example.com/a").exists());
    assert!(matches!(
        store.get("example.com/a"),
        Err(StoreError::NotInstalled(_))
    ));
    store.commit_uninstall(&lock, "example.com/b").unwrap();
    assert!(
        !store.dir().join("names/example.com").exists(),
        "empty parent left behind"
    );
}

#[test]
fn failed_activation_keeps_the_old_version() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::new(d.path().join("plugins"));
    install(&store, "example.com/p", b"old").unwrap();
    let before = store.get("example.com/p").unwrap();
    let lock = store.lock().unwrap();
    let meta = new_meta(manifest("example.com/p"), true, None);
    let st = store.new_staging(&lock, &meta).unwrap();
    st.write(PLUGIN_SO, b"new", 0o644).unwrap();
    let err = store
        .commit_install(&lock, st, &meta, |_| {
            Err(StoreError::NotInstalled("install callback failed".into()).into())
        })
        .unwrap_err();
    assert!(err.to_string().contains("install callback failed"));
    assert_eq!(store.get("example.com/p").unwrap(), before);
    assert_eq!(so_of(&store, "example.com/p"), b"old");
    let dirs = fs::read_dir(store.dir().join(FILES_DIR)).unwrap().count();
    assert_eq!(dirs, 1);
}

#[test]
fn a_name_ending_in_meta_is_not_mistaken_for_a_meta() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::new(d.path().join("plugins"));
    install(&store, "example.com/x.meta", b"x").unwrap();
    install(&store, "example.com/y", b"example.com/y").unwrap();
    let (metas, unreadable) = store.list_all().unwrap();
    assert!(unreadable.is_empty(), "{unreadable:?}");
    let names: Vec<_> = metas.iter().map(|m| m.name()).collect();
    assert_eq!(names, ["example.com/x.meta", "example.com/y"]);
    assert_eq!(so_of(&store, "example.com/x.meta"), b"x");
}

#[test]
fn an_unreadable_meta_hides_only_itself_and_can_be_uninstalled() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::new(d.path().join("plugins"));
    install(&store, "example.com/good", b"good").unwrap();
    install(&store, "example.com/broken", b"broken").unwrap();
    let broken = store.get("example.com/broken").unwrap();
    fs::write(store.meta_path("example.com/broken"), b"{\"manifest\":").unwrap();
    let names: Vec<_> = store
        .list()
        .unwrap()
        .into_iter()
        .map(|m| m.manifest.name)
        .collect();
    assert_eq!(names, ["example.com/good"]);
    // Writers still work, and keep the broken plugin's files meanwhile.
    let lock = store.lock().unwrap();
    assert!(store.files_dir(&broken).join(PLUGIN_SO).exists());
    let mut good = store.get("example.com/good").unwrap();
    good.enabled = false;
    store.put_meta(&lock, &good).unwrap();
    assert!(matches!(
        store.get("example.com/broken"),
        Err(StoreError::BadMeta { .. })
    ));
    store.commit_uninstall(&lock, "example.com/broken").unwrap();
    assert!(!store.meta_path("example.com/broken").exists());
    assert!(!store.files_dir(&broken).exists());
    assert!(!store.name_link("example.com/broken").exists());
    assert_eq!(so_of(&store, "example.com/good"), b"good");
}

#[test]
fn leftovers_of_a_crash_are_cleaned_by_the_next_writer() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::new(d.path().join("plugins"));
    install(&store, "example.org/p", b"old").unwrap();
    let old = store.get("example.org/p").unwrap();
    {
        // Crash 1: new files written, meta never switched.
        let lock = store.lock().unwrap();
        let meta = new_meta(manifest("example.org/p"), true, None);
        let st = store.new_staging(&lock, &meta).unwrap();
        st.write(PLUGIN_SO, b"new", 0o644).unwrap();
    }
    assert_eq!(store.get("example.org/p").unwrap(), old);
    assert_eq!(so_of(&store, "example.org/p"), b"old");
    let newer = new_meta(manifest("example.org/p"), true, None);
    {
        // Crash 2: meta switched, link and old files not updated yet.
        let lock = store.lock().unwrap();
        let st = store.new_staging(&lock, &newer).unwrap();
        st.write(PLUGIN_SO, b"newer", 0o644).unwrap();
        store.put_meta(&lock, &newer).unwrap();
    }
    let _lock = store.lock().unwrap();
    assert_eq!(store.get("example.org/p").unwrap(), newer);
    assert_eq!(so_of(&store, "example.org/p"), b"newer");
    let dirs: Vec<_> = fs::read_dir(store.dir().join(FILES_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(dirs, vec![newer.install_id.as_str()]);
    // Crash 3: uninstall removed the meta only.
    fs::remove_file(store.meta_path("example.org/p")).unwrap();
    drop(_lock);
    let _lock = store.lock().unwrap();
    assert!(!store.dir().join("names/example.org").exists());
    assert_eq!(
        fs::read_dir(store.dir().join(FILES_DIR)).unwrap().count(),
        0
    );
}

#[test]
fn writers_sweep_dead_scratch_dirs_but_never_a_live_one() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let store = Store::new(d.path().join("plugins"));
    let live = store.scratch().unwrap();
    let mode = fs::metadata(live.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    // A writer that died: its scratch has no holder.
    let dead = d.path().join("plugins/.scratch/install-dead");
    fs::create_dir(&dead).unwrap();
    fs::write(dead.join(PLUGIN_SO), b"x").unwrap();
    drop(store.lock().unwrap());
    assert!(!dead.exists());
    assert!(live.path().exists());
    let root = live.path().parent().unwrap().to_owned();
    drop(live);
    assert!(!root.exists(), "an empty .scratch is left");
}

/// The index's view, asking for every plugin's meta.
fn surface(store: &Store) -> CliSurface {
    store.cli_surface(Scope::All, |_, _| true).unwrap()
}

fn names(s: &CliSurface) -> Vec<&str> {
    s.plugins.iter().map(|p| p.name.as_str()).collect()
}

#[test]
fn every_store_write_keeps_the_index_current() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::new(d.path().join("plugins"));
    install(&store, "example.com/a", b"a").unwrap();
    install(&store, "example.com/b", b"b").unwrap();
    assert!(index::is_current(&store));
    let s = surface(&store);
    assert!(s.from_index);
    assert_eq!(names(&s), ["example.com/a", "example.com/b"]);
    assert_eq!(s.metas, store.list().unwrap());

    let lock = store.lock().unwrap();
    let mut b = store.get("example.com/b").unwrap();
    b.enabled = false;
    store.put_meta(&lock, &b).unwrap();
    store.commit_uninstall(&lock, "example.com/a").unwrap();
    drop(lock);
    assert!(index::is_current(&store));
    let s = surface(&store);
    assert!(s.from_index);
    assert_eq!(s.plugins, vec![Summary::of(&b)]);
    assert!(!s.plugins[0].enabled);

    // Only the metas asked for are read from it.
    let s = store.cli_surface(Scope::All, |_, p| p.enabled).unwrap();
    assert!(s.from_index && s.metas.is_empty() && s.plugins.len() == 1);
}

#[test]
fn a_missing_stale_or_corrupt_index_is_rebuilt_from_the_metas() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::new(d.path().join("plugins"));
    install(&store, "example.com/a", b"a").unwrap();
    let index_path = store.dir().join(index::INDEX_FILE);
    let good = fs::read(&index_path).unwrap();
    let root = crate::trust::secure::enforced();

    // Missing (e.g. a crash after the writer removed it before a switch).
    let lock = store.lock().unwrap();
    store.invalidate_index(&lock).unwrap();
    drop(lock);
    assert!(!index::is_current(&store));
    let s = surface(&store);
    assert!(!s.from_index);
    assert_eq!(names(&s), ["example.com/a"]);
    // As root the reader writes the rebuilt index back (no writer holds the lock).
    assert_eq!(index::is_current(&store), root);
    if root {
        // The same index but for its stamp (the writer marks the metas dir).
        let body = |t: &str| t.split_once('\n').unwrap().1.to_owned();
        let now = fs::read_to_string(&index_path).unwrap();
        assert_eq!(body(&now), body(&String::from_utf8(good).unwrap()));
    }

    // Stale: a meta added behind the store's back.
    let mut m = store.get("example.com/a").unwrap();
    m.manifest.name = "example.com/added".into();
    fs::write(
        store.meta_path("example.com/added"),
        serde_json::to_vec(&m).unwrap(),
    )
    .unwrap();
    assert!(!index::is_current(&store));
    assert_eq!(
        names(&surface(&store)),
        ["example.com/a", "example.com/added"]
    );

    // Corrupt: garbage, a truncated file, a meta line that does not match.
    // (A writer brings the index up to date first.)
    drop(store.lock().unwrap());
    assert!(index::is_current(&store));
    let current = fs::read_to_string(&index_path).unwrap();
    let header_end = current.find('\n').unwrap();
    for bad in [
        "garbage".to_owned(),
        current[..current.len() / 2].to_owned(),
        format!("{}\n{{}}\n{{}}\n", &current[..header_end]),
    ] {
        fs::write(&index_path, &bad).unwrap();
        let s = surface(&store);
        assert!(!s.from_index, "{bad}");
        assert_eq!(names(&s), ["example.com/a", "example.com/added"]);
        assert_eq!(s.metas, store.list().unwrap());
    }
}

#[test]
fn an_index_naming_a_plugin_without_a_meta_is_not_used() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::new(d.path().join("plugins"));
    install(&store, "example.com/a", b"a").unwrap();
    let index_path = store.dir().join(index::INDEX_FILE);
    // Same stamp and count, but plugin "a" renamed everywhere in the index.
    let forged = fs::read_to_string(&index_path)
        .unwrap()
        .replace("example.com/a", "example.com/ghost");
    fs::write(&index_path, forged).unwrap();
    let s = surface(&store);
    assert!(!s.from_index);
    assert_eq!(names(&s), ["example.com/a"]);
    // Nor when only the engine's plugins are asked for.
    install_with(&store, "example.com/cfg", vec![CallbackKind::EngineConfig]);
    let forged = fs::read_to_string(&index_path)
        .unwrap()
        .replace("example.com/cfg", "example.com/ghost");
    fs::write(&index_path, forged).unwrap();
    let s = store.cli_surface(Scope::Active, |_, _| true).unwrap();
    assert!(!s.from_index);
    assert_eq!(names(&s), ["example.com/cfg"]);
}

/// Installs `name` with `callbacks`.
fn install_with(store: &Store, name: &str, callbacks: Vec<CallbackKind>) {
    let mut m = manifest(name);
    m.callbacks = callbacks;
    install_manifest(store, m, b"so").unwrap();
}

#[test]
fn a_builtin_command_reads_only_the_active_plugins_from_the_index() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::new(d.path().join("plugins"));
    install_with(&store, "example.com/cmd", vec![CallbackKind::Command]);
    install_with(&store, "example.com/cfg", vec![CallbackKind::EngineConfig]);
    let s = store.cli_surface(Scope::Active, |_, _| true).unwrap();
    assert!(s.from_index);
    assert_eq!(names(&s), ["example.com/cfg"]);
    assert_eq!(s.metas, vec![store.get("example.com/cfg").unwrap()]);
    // The engine gets the runtime plugins from their metas.
    assert_eq!(
        store.runtime_metas().unwrap(),
        vec![store.get("example.com/cfg").unwrap()]
    );
    // Disabled, it is no longer active.
    let lock = store.lock().unwrap();
    let mut cfg = store.get("example.com/cfg").unwrap();
    cfg.enabled = false;
    store.put_meta(&lock, &cfg).unwrap();
    drop(lock);
    assert!(names(&store.cli_surface(Scope::Active, |_, _| true).unwrap()).is_empty());
    assert!(store.runtime_metas().unwrap().is_empty());
}

#[test]
fn a_meta_switched_behind_the_stores_back_makes_the_index_stale_at_once() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::new(d.path().join("plugins"));
    install_with(&store, "example.com/cfg", vec![CallbackKind::EngineConfig]);
    assert!(index::is_current(&store));
    // Disabled by hand, right after the index was written (same clock tick):
    // the index must not keep offering it.
    let mut m = store.get("example.com/cfg").unwrap();
    m.enabled = false;
    write_atomic(
        &store.meta_path("example.com/cfg"),
        &serde_json::to_vec(&m).unwrap(),
        0o644,
    )
    .unwrap();
    assert!(!index::is_current(&store));
    assert!(store.runtime_metas().unwrap().is_empty());
    let s = store.cli_surface(Scope::Active, |_, _| true).unwrap();
    assert!(s.plugins.is_empty());
}

#[test]
fn the_engine_fails_closed_on_an_unreadable_runtime_meta_even_with_a_current_index() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::new(d.path().join("plugins"));
    install_with(&store, "example.com/cmd", vec![CallbackKind::Command]);
    install_with(&store, "example.com/cfg", vec![CallbackKind::EngineConfig]);
    assert!(index::is_current(&store));
    // Corrupted in place: the dir does not change, the index stays current,
    // but the engine reads the meta itself and refuses to run without it.
    fs::write(store.meta_path("example.com/cfg"), b"{").unwrap();
    assert!(index::is_current(&store));
    let e = store.runtime_metas().unwrap_err();
    assert!(matches!(e, StoreError::Incomplete(_)), "{e}");
    // An unreadable meta listed by the index (a rebuilt one) fails too.
    let lock = store.lock().unwrap();
    store.invalidate_index(&lock).unwrap();
    store.write_index(&lock).unwrap();
    drop(lock);
    assert!(store.runtime_metas().is_err());
}

/// Installs like `plugin install` does: the library's stamp, taken once it
/// is written, goes into the meta.
fn install_stamped(store: &Store, name: &str, payload: &[u8]) -> Meta {
    let lock = store.lock().unwrap();
    let mut m = manifest(name);
    m.sha256 = sha256_hex(payload);
    let mut meta = new_meta(m, true, None);
    let st = store.new_staging(&lock, &meta).unwrap();
    let written = st.write(PLUGIN_SO, payload, 0o644).unwrap();
    meta.library = Some(LibraryStamp::of(&written));
    store.commit_install(&lock, st, &meta, |_| Ok(())).unwrap();
    meta
}

/// The loader's view of an installed plugin, as `dispatch::load_installed`
/// builds it from the meta.
fn verify_installed(
    store: &Store,
    meta: &Meta,
) -> Result<crate::plugin::loader::VerifiedLibrary, crate::plugin::LoadError> {
    use crate::plugin::loader::{verify_trusting, LoadSpec};
    let spec = LoadSpec::new(store.files_dir(meta).join(PLUGIN_SO))
        .name(meta.name())
        .sha256(meta.manifest.sha256.clone())
        .plugin_root(store.dir())
        .installed(meta.library);
    verify_trusting(&spec, nix::unistd::Uid::effective().as_raw())
}

#[test]
fn the_install_stamp_is_kept_and_lets_the_unchanged_library_skip_its_hash() {
    use crate::plugin::loader::Checks;
    let d = tempfile::tempdir().unwrap();
    let store = Store::new(d.path().join("plugins"));
    let installed = install_stamped(&store, "example.com/p", b"payload");
    let meta = store.get("example.com/p").unwrap();
    assert_eq!(meta.library, installed.library);
    let stamp = meta.library.expect("a stamp recorded at install");
    let so = store.files_dir(&meta).join(PLUGIN_SO);
    assert_eq!(
        stamp,
        LibraryStamp::of(&fs::metadata(&so).unwrap()),
        "the stamp is the finished file's (mode set)"
    );
    // Disable and enable rewrite the meta: the stamp stays with it.
    let lock = store.lock().unwrap();
    let mut off = meta.clone();
    off.enabled = false;
    store.put_meta(&lock, &off).unwrap();
    drop(lock);
    let meta = store.get("example.com/p").unwrap();
    assert_eq!(meta.library, Some(stamp));
    // Not ELF: only a load that skips the install's checks gets through.
    let v = verify_installed(&store, &meta).unwrap();
    assert_eq!(v.checks(), Checks::VerifiedAtInstall);
}

#[test]
fn metas_without_a_stamp_load_with_the_full_checks() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::new(d.path().join("plugins"));
    install_stamped(&store, "example.com/p", b"payload");
    // A meta written before stamps existed.
    let meta_path = store.meta_path("example.com/p");
    let mut v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&meta_path).unwrap()).unwrap();
    assert!(v.as_object_mut().unwrap().remove("library").is_some());
    write_atomic(&meta_path, v.to_string().as_bytes(), 0o644).unwrap();
    let meta = store.get("example.com/p").unwrap();
    assert_eq!(meta.library, None);
    // The ELF checks ran (and refused these bytes): the full path.
    assert!(matches!(
        verify_installed(&store, &meta),
        Err(crate::plugin::LoadError {
            kind: crate::plugin::LoadErrorKind::NotElf,
            ..
        })
    ));
}

#[test]
fn on_a_file_system_with_coarse_times_the_meta_file_names_are_compared_too() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::new(d.path().join("plugins"));
    install(&store, "example.com/a", b"a").unwrap();
    install(&store, "example.com/b", b"b").unwrap();
    let index_path = store.dir().join(index::INDEX_FILE);
    let text = fs::read_to_string(&index_path).unwrap();
    assert!(text.contains("\"precise\":true"), "{text}");
    // As a file system that truncated the writer's mtime would have it.
    let coarse = text.replacen("\"precise\":true", "\"precise\":false", 1);
    fs::write(&index_path, &coarse).unwrap();
    assert!(index::is_current(&store), "same names: still current");
    // A listing that no longer matches the dir (what a change within the
    // same coarse tick looks like to the stamp) is stale.
    let (head, rest) = coarse.split_once('\n').unwrap();
    let (files, body) = rest.split_once('\n').unwrap();
    let mut names: Vec<String> = serde_json::from_str(files).unwrap();
    names.pop();
    let forged = format!("{head}\n{}\n{body}", serde_json::to_string(&names).unwrap());
    fs::write(&index_path, forged).unwrap();
    assert!(!index::is_current(&store));
    assert_eq!(names_of_all(&store), ["example.com/a", "example.com/b"]);
}

fn names_of_all(store: &Store) -> Vec<String> {
    let s = store.cli_surface(Scope::All, |_, _| true).unwrap();
    s.plugins.into_iter().map(|p| p.name).collect()
}
