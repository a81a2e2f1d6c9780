//! The last guard before a virtualenv is kept: every installed wheel's tags and every extension
//! module's file name must fit the target, so that an extension built for another Python or
//! platform never lands there. uv already picks wheels for the target; this catches what it
//! cannot see (a wheel whose files contradict its tags, a local build tagged for this machine).

use std::path::Path;

use walkdir::WalkDir;

use super::RuntimeError;
use super::target::{Platform, PythonVersion, TargetRuntime};

/// Checks every `*.dist-info/WHEEL` and every `*.so` under `site_packages` against `target`.
pub fn check_installed(site_packages: &Path, target: &TargetRuntime) -> Result<(), RuntimeError> {
    let wanted = target_tag(target);
    for entry in WalkDir::new(site_packages).sort_by_file_name() {
        let entry = entry.map_err(|error| RuntimeError::Io {
            path: error.path().unwrap_or(site_packages).to_path_buf(),
            action: "read the installed files",
            source: error.into(),
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let path = entry.path();
        let name = entry.file_name().to_string_lossy();
        let foreign = |found: String| RuntimeError::ForeignBinary {
            file: path.to_path_buf(),
            found,
            target: wanted.clone(),
        };
        if name == "WHEEL" && is_in_dist_info(path) {
            let text = std::fs::read_to_string(path).map_err(RuntimeError::io(path, "read"))?;
            let tags: Vec<&str> = text
                .lines()
                .filter_map(|line| line.strip_prefix("Tag:"))
                .map(str::trim)
                .collect();
            if !tags.is_empty() && !tags.iter().any(|tag| wheel_tag_fits(tag, target)) {
                return Err(foreign(format!("wheel tag {}", tags.join(", "))));
            }
        } else if let Some(problem) = extension_problem(&name, target) {
            return Err(foreign(problem));
        }
    }
    Ok(())
}

/// How messages name what fits: `cp39 manylinux_2_31_x86_64`.
pub fn target_tag(target: &TargetRuntime) -> String {
    format!(
        "{} {}",
        target.python.cpython_tag(),
        target.platform.wheel_tag()
    )
}

fn is_in_dist_info(path: &Path) -> bool {
    path.parent()
        .and_then(Path::file_name)
        .is_some_and(|dir| dir.to_string_lossy().ends_with(".dist-info"))
}

/// Why an extension module's file name says it is for another interpreter or platform, if it
/// does. `x.abi3.so` and an untagged `x.so` are judged by their wheel's tags.
fn extension_problem(name: &str, target: &TargetRuntime) -> Option<String> {
    let stem = name.strip_suffix(".so")?;
    let (_, suffix) = stem.rsplit_once('.')?;
    if suffix == "abi3" {
        return None;
    }
    // cpython-39-x86_64-linux-gnu
    let rest = suffix.strip_prefix("cpython-")?;
    let (version, platform) = rest.split_once('-').unwrap_or((rest, ""));
    let expected_version = format!("{}{}", target.python.major, target.python.minor);
    let expected_platform = format!("{}-linux-gnu", target.platform.arch.as_str());
    if version != expected_version || (!platform.is_empty() && platform != expected_platform) {
        return Some(format!("an extension module for {suffix}"));
    }
    None
}

/// Whether a wheel tag `python-abi-platform` (each part possibly dotted) installs on `target`.
pub fn wheel_tag_fits(tag: &str, target: &TargetRuntime) -> bool {
    let mut parts = tag.split('-');
    let (Some(pythons), Some(abis), Some(platforms), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let python_fits = |python: &str| python_tag_fits(python, abis, target.python);
    pythons.split('.').any(python_fits)
        && platforms
            .split('.')
            .any(|platform| platform_fits(platform, target.platform))
}

fn python_tag_fits(python: &str, abis: &str, version: PythonVersion) -> bool {
    let minor_of = |digits: &str| -> Option<Option<u8>> {
        let rest = digits.strip_prefix('3')?;
        if rest.is_empty() {
            return Some(None);
        }
        rest.parse().ok().map(Some)
    };
    let abis: Vec<&str> = abis.split('.').collect();
    if let Some(digits) = python.strip_prefix("py") {
        // py3, py39: pure or ABI-free; never an ABI of its own.
        return match minor_of(digits) {
            Some(None) => abis.contains(&"none"),
            Some(Some(minor)) => minor <= version.minor && abis.contains(&"none"),
            None => false,
        };
    }
    let Some(digits) = python.strip_prefix("cp") else {
        return false;
    };
    let Some(Some(minor)) = minor_of(digits) else {
        return false;
    };
    abis.iter().any(|abi| match *abi {
        "abi3" | "none" => minor <= version.minor,
        exact => minor == version.minor && exact == version.cpython_tag(),
    })
}

fn platform_fits(platform: &str, target: Platform) -> bool {
    if platform == "any" {
        return true;
    }
    let arch = target.arch.as_str();
    let Some(glibc) = platform
        .strip_suffix(arch)
        .and_then(|p| p.strip_suffix('_'))
    else {
        return false;
    };
    let needed = match glibc {
        "manylinux1" => (2, 5),
        "manylinux2010" => (2, 12),
        "manylinux2014" => (2, 17),
        other => {
            let Some((major, minor)) = other
                .strip_prefix("manylinux_")
                .and_then(|v| v.split_once('_'))
            else {
                // linux_x86_64 (built here, for this machine) and musllinux never fit.
                return false;
            };
            match (major.parse::<u16>(), minor.parse::<u16>()) {
                (Ok(major), Ok(minor)) => (major, minor),
                _ => return false,
            }
        }
    };
    needed <= target.glibc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bullseye() -> TargetRuntime {
        TargetRuntime::described("3.9", None, "x86_64-manylinux_2_31").unwrap()
    }

    #[test]
    fn wheel_tags_for_the_target_fit() {
        let target = bullseye();
        for tag in [
            "py3-none-any",
            "py2.py3-none-any",
            "cp39-cp39-manylinux_2_17_x86_64.manylinux2014_x86_64",
            "cp37-abi3-manylinux_2_28_x86_64",
            "cp39-cp39-manylinux_2_31_x86_64",
            "cp39-cp39-manylinux1_x86_64",
        ] {
            assert!(wheel_tag_fits(tag, &target), "{tag}");
        }
    }

    #[test]
    fn wheel_tags_for_another_python_or_platform_do_not() {
        let target = bullseye();
        for tag in [
            "cp311-cp311-manylinux_2_17_x86_64",
            "cp38-cp38-manylinux_2_17_x86_64",
            "cp39-cp39-linux_x86_64",
            "cp39-cp39-manylinux_2_34_x86_64",
            "cp39-cp39-manylinux_2_17_aarch64",
            "cp39-cp39-musllinux_1_2_x86_64",
            "cp310-abi3-manylinux_2_17_x86_64",
            "py310-none-any",
            "cp39-cp39-win_amd64",
            "not-a-tag",
        ] {
            assert!(!wheel_tag_fits(tag, &target), "{tag}");
        }
    }

    #[test]
    fn extension_file_names_are_judged_by_their_abi_suffix() {
        let target = bullseye();
        assert_eq!(
            extension_problem("_speedups.cpython-39-x86_64-linux-gnu.so", &target),
            None
        );
        assert_eq!(extension_problem("_speedups.abi3.so", &target), None);
        assert_eq!(extension_problem("libfoo.so", &target), None);
        assert!(
            extension_problem("_speedups.cpython-311-x86_64-linux-gnu.so", &target)
                .unwrap()
                .contains("cpython-311")
        );
        assert!(extension_problem("_speedups.cpython-39-aarch64-linux-gnu.so", &target).is_some());
    }
}
