//! The lock file a plugin crate of its own workspace is built with. The
//! crates it shares with the runtime (the plugin API and everything it pulls
//! in) must resolve exactly as in the vessel tree's Cargo.lock, or the ABI the
//! plugin is compiled against is not the runtime's; its other dependencies
//! keep the versions pinned in its own Cargo.lock.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use toml::{Table, Value};

use super::BuildError;

/// The crate plugins depend on; everything it pulls in is shared.
const SDK_CRATE: &str = "vessel-plugin-api";

/// A parsed Cargo.lock.
#[derive(Debug, Clone)]
pub(super) struct Lock {
    table: Table,
}

/// One `[[package]]`: name and version.
type Pkg = (String, String);

impl Lock {
    /// Reads and parses `path`.
    pub(super) fn read(path: &Path) -> Result<Self, BuildError> {
        let text = fs::read_to_string(path).map_err(super::io_err(path))?;
        let table = toml::from_str(&text).map_err(|e| BuildError::BadCrate {
            path: path.to_owned(),
            reason: format!("invalid lock file: {}", e.message()),
        })?;
        Ok(Self { table })
    }

    /// Writes it to `path`.
    pub(super) fn write(&self, path: &Path) -> Result<(), BuildError> {
        let text = toml::to_string(&self.table)
            .map_err(|e| super::io_err(path)(std::io::Error::other(e)))?;
        fs::write(path, text).map_err(super::io_err(path))
    }

    fn packages(&self) -> impl Iterator<Item = &Table> {
        self.table
            .get("package")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_table)
    }

    fn pkg(t: &Table) -> Option<Pkg> {
        Some((
            t.get("name")?.as_str()?.to_owned(),
            t.get("version")?.as_str()?.to_owned(),
        ))
    }

    /// The packages the SDK crate pulls in, itself included (the closure of
    /// its `dependencies` in this lock).
    pub(super) fn shared(&self) -> BTreeSet<Pkg> {
        let mut by_name: BTreeMap<String, Vec<(&Table, Pkg)>> = BTreeMap::new();
        for t in self.packages() {
            if let Some(p) = Self::pkg(t) {
                by_name.entry(p.0.clone()).or_default().push((t, p));
            }
        }
        let mut out = BTreeSet::new();
        let mut todo: Vec<(String, Option<String>)> = vec![(SDK_CRATE.to_owned(), None)];
        while let Some((name, version)) = todo.pop() {
            let Some(cands) = by_name.get(&name) else {
                continue;
            };
            for (t, p) in cands {
                if version.as_ref().is_some_and(|v| v != &p.1) || !out.insert(p.clone()) {
                    continue;
                }
                let deps = t.get("dependencies").and_then(Value::as_array);
                for d in deps.into_iter().flatten().filter_map(Value::as_str) {
                    // "name", "name version" or "name version (source)".
                    let mut words = d.split_whitespace();
                    if let Some(n) = words.next() {
                        todo.push((n.to_owned(), words.next().map(str::to_owned)));
                    }
                }
            }
        }
        out
    }

    /// The plugin's own lock with every shared package of `tree` added where
    /// it lacks it, so cargo resolves the shared crates exactly as the
    /// runtime's. A shared crate the plugin pinned to another compatible
    /// version is refused.
    pub(super) fn merged_with(mut self, tree: &Lock) -> Result<Lock, BuildError> {
        let shared = tree.shared();
        check_pins(&self, &shared)?;
        let have: BTreeSet<Pkg> = self.packages().filter_map(Self::pkg).collect();
        let missing: Vec<Value> = tree
            .packages()
            .filter(|t| Self::pkg(t).is_some_and(|p| shared.contains(&p) && !have.contains(&p)))
            .map(|t| Value::Table(t.clone()))
            .collect();
        if let Some(Value::Array(pkgs)) = self.table.get_mut("package") {
            pkgs.extend(missing);
        } else {
            self.table.insert("package".into(), Value::Array(missing));
        }
        if let Some(v) = tree.table.get("version") {
            self.table.insert("version".into(), v.clone());
        }
        Ok(self)
    }

    /// Refuses a lock whose shared crates resolved differently from `tree`'s.
    pub(super) fn check_against(&self, tree: &Lock) -> Result<(), BuildError> {
        check_pins(self, &tree.shared())
    }
}

/// The semver-compatibility class of a version: cargo unifies versions of
/// one class (`1.x.y` by major, `0.x.y` by minor).
fn compat_class(v: &str) -> String {
    let mut parts = v.split(['.', '-', '+']);
    let major = parts.next().unwrap_or_default();
    if major == "0" {
        format!("0.{}", parts.next().unwrap_or_default())
    } else {
        major.to_owned()
    }
}

fn check_pins(lock: &Lock, shared: &BTreeSet<Pkg>) -> Result<(), BuildError> {
    for (name, version) in lock.packages().filter_map(Lock::pkg) {
        if let Some((_, want)) = shared
            .iter()
            .find(|(n, v)| *n == name && compat_class(v) == compat_class(&version))
        {
            if *want != version {
                return Err(BuildError::SharedPin {
                    package: name,
                    plugin_version: version,
                    runtime_version: want.clone(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(text: &str) -> Lock {
        Lock {
            table: toml::from_str(text).unwrap(),
        }
    }

    const TREE: &str = r#"
version = 4
[[package]]
name = "vessel-plugin-api"
version = "1.1.0"
dependencies = ["vessel-plugin-abi", "serde 1.0.200"]
[[package]]
name = "vessel-plugin-abi"
version = "1.1.0"
dependencies = ["abi_stable"]
[[package]]
name = "abi_stable"
version = "0.11.3"
[[package]]
name = "serde"
version = "1.0.200"
[[package]]
name = "serde"
version = "0.9.1"
[[package]]
name = "clap"
version = "4.5.0"
"#;

    #[test]
    fn shared_is_what_the_sdk_pulls_in() {
        let shared = lock(TREE).shared();
        let names: Vec<String> = shared.iter().map(|(n, v)| format!("{n} {v}")).collect();
        assert_eq!(
            names,
            [
                "abi_stable 0.11.3",
                "serde 1.0.200",
                "vessel-plugin-abi 1.1.0",
                "vessel-plugin-api 1.1.0"
            ]
        );
    }

    #[test]
    fn own_pins_stay_shared_ones_are_added_and_conflicts_refused() {
        let tree = lock(TREE);
        let own = lock(
            r#"
version = 3
[[package]]
name = "humantime"
version = "2.1.0"
[[package]]
name = "serde"
version = "0.9.9"
"#,
        );
        let merged = own.merged_with(&tree).unwrap();
        let pkgs: BTreeSet<Pkg> = merged.packages().filter_map(Lock::pkg).collect();
        assert!(pkgs.contains(&("humantime".into(), "2.1.0".into())));
        assert!(pkgs.contains(&("serde".into(), "1.0.200".into())));
        assert!(pkgs.contains(&("abi_stable".into(), "0.11.3".into())));
        // serde 0.9 is another compatibility class: the plugin's own.
        assert!(pkgs.contains(&("serde".into(), "0.9.9".into())));
        assert!(!pkgs.contains(&("clap".into(), "4.5.0".into())));
        merged.check_against(&tree).unwrap();

        let conflicting = lock("[[package]]\nname = \"abi_stable\"\nversion = \"0.11.1\"\n");
        let e = conflicting.merged_with(&tree).unwrap_err().to_string();
        assert!(
            e.contains("abi_stable") && e.contains("0.11.1") && e.contains("0.11.3"),
            "{e}"
        );
    }
}
