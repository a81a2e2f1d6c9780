//! What differs between the lock file and the lock the specs give today, in words a CI log can
//! show: which pack moved to which commit, which requirement changed version or files.

use std::collections::BTreeMap;

use super::format::{LockFile, LockedPackEntry, LockedRequirement};

/// The differences from `old` (the file) to `new` (made now); empty when they are the same.
pub fn differences(old: &LockFile, new: &LockFile) -> Vec<String> {
    let mut found = Vec::new();
    if old.requested != new.requested {
        found.push(format!(
            "the packs asked for differ: the lock has [{}], now [{}]",
            old.requested.join(", "),
            new.requested.join(", ")
        ));
    }
    if old.runtime != new.runtime {
        found.push(format!(
            "the runtime differs: the lock is for {}, now {}",
            old.runtime.describe(),
            new.runtime.describe()
        ));
    }
    if old.settings != new.settings {
        found.push(format!(
            "the settings differ: the lock has {:?}, now {:?}",
            old.settings, new.settings
        ));
    }
    let by_name = |lock: &LockFile| -> BTreeMap<String, LockedPackEntry> {
        lock.packs
            .iter()
            .map(|p| (p.name.clone(), p.clone()))
            .collect()
    };
    let (old_packs, new_packs) = (by_name(old), by_name(new));
    for (name, pack) in &old_packs {
        match new_packs.get(name) {
            None => found.push(format!("pack {name} is no longer asked for")),
            Some(now) => pack_differences(pack, now, &mut found),
        }
    }
    for (name, pack) in &new_packs {
        if !old_packs.contains_key(name) {
            found.push(format!(
                "pack {name} {} from {} is not in the lock",
                pack.version, pack.source
            ));
        }
    }
    found
}

fn pack_differences(old: &LockedPackEntry, new: &LockedPackEntry, found: &mut Vec<String>) {
    let name = &old.name;
    let mut field = |what: &str, was: String, now: String| {
        if was != now {
            found.push(format!("pack {name}: {what} was {was}, now {now}"));
        }
    };
    let shown = |value: &Option<String>| value.clone().unwrap_or_else(|| "(none)".to_string());
    field("version", old.version.clone(), new.version.clone());
    field("source", old.source.clone(), new.source.clone());
    field("ref", shown(&old.reference), shown(&new.reference));
    field("commit", shown(&old.commit), shown(&new.commit));
    field(
        "content",
        shown(&old.content_digest),
        shown(&new.content_digest),
    );
    field(
        "dependencies",
        format!("[{}]", old.dependencies.join(", ")),
        format!("[{}]", new.dependencies.join(", ")),
    );
    field(
        "requirements.txt",
        shown(&old.requirements_digest),
        shown(&new.requirements_digest),
    );
    if old.specs != new.specs {
        found.push(format!(
            "pack {name}: asked for as [{}], now [{}]",
            old.specs.join(", "),
            new.specs.join(", ")
        ));
    }
    let by_name = |list: &[LockedRequirement]| -> BTreeMap<String, LockedRequirement> {
        list.iter().map(|r| (r.name.clone(), r.clone())).collect()
    };
    let (was, now) = (by_name(&old.requirements), by_name(&new.requirements));
    for (requirement, locked) in &was {
        match now.get(requirement) {
            None => found.push(format!(
                "pack {name}: requirement {} is no longer needed",
                locked.specifier()
            )),
            Some(current) if current.specifier() != locked.specifier() => found.push(format!(
                "pack {name}: requirement {} is now {}",
                locked.specifier(),
                current.specifier()
            )),
            Some(current) if current.hashes != locked.hashes => found.push(format!(
                "pack {name}: the files of requirement {} have other hashes now",
                locked.specifier()
            )),
            Some(_) => {}
        }
    }
    for (requirement, current) in &now {
        if !was.contains_key(requirement) {
            found.push(format!(
                "pack {name}: requirement {} is new",
                current.specifier()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lockfile::format::{FORMAT, LockSettings};
    use crate::pack::pin::RuntimePin;

    fn lock(commit: &str, six: &str, hash: &str) -> LockFile {
        LockFile {
            format: FORMAT,
            requested: vec!["demo".into()],
            runtime: RuntimePin::default(),
            settings: LockSettings::default(),
            packs: vec![LockedPackEntry {
                name: "demo".into(),
                version: "1.0.0".into(),
                source: "https://example.com/demo.git".into(),
                reference: Some("main".into()),
                commit: Some(commit.into()),
                content_digest: None,
                specs: vec!["demo".into()],
                dependencies: vec![],
                requirements_digest: None,
                requirements: vec![LockedRequirement {
                    name: "six".into(),
                    version: Some(six.into()),
                    url: None,
                    marker: None,
                    hashes: vec![hash.into()],
                }],
            }],
        }
    }

    #[test]
    fn names_what_moved() {
        let old = lock("aaa", "1.16.0", "sha256:1");
        assert!(differences(&old, &old.clone()).is_empty());
        let found = differences(&old, &lock("bbb", "1.17.0", "sha256:2"));
        assert_eq!(
            found,
            [
                "pack demo: commit was aaa, now bbb",
                "pack demo: requirement six==1.16.0 is now six==1.17.0"
            ]
        );
        let found = differences(&old, &lock("aaa", "1.16.0", "sha256:3"));
        assert_eq!(
            found,
            ["pack demo: the files of requirement six==1.16.0 have other hashes now"]
        );
    }
}
