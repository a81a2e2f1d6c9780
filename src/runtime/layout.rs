//! A virtualenv's skeleton as virtualenv makes it on the target, written without running the
//! target's interpreter: `pyvenv.cfg`, `bin/python` as an absolute symlink to the target
//! interpreter with `python3` and `python3.X` linking to it, and exactly one
//! `lib/pythonX.Y/site-packages` (st2 puts the first `lib/python*` it finds on `PYTHONPATH`).
//! No `lib64`: virtualenv only makes one where the interpreter uses it, which Debian's and
//! Ubuntu's do not.

use std::fs;
use std::path::{Path, PathBuf};

use super::RuntimeError;
use super::target::TargetRuntime;

/// The `.pth` that puts st2's site-packages on a pack venv's path (st2 3.9 and later); `zzzz`
/// sorts it last, after the pack's own `.pth` files. The same file the native engine writes.
pub use crate::install::venv::ST2_PTH_FILE as ST2_PTH;

/// Writes the skeleton into `dir` (which must not exist yet) and returns its site-packages.
pub fn lay_out(dir: &Path, target: &TargetRuntime) -> Result<PathBuf, RuntimeError> {
    let bin = dir.join("bin");
    let site_packages = site_packages(dir, target);
    for made in [&bin, &site_packages] {
        fs::create_dir_all(made).map_err(RuntimeError::io(made, "create the directory"))?;
    }
    write(&dir.join("pyvenv.cfg"), &pyvenv_cfg(target))?;

    let python = bin.join("python");
    symlink(&target.interpreter, &python)?;
    let versioned = format!("python{}", target.python.major);
    for alias in [versioned, target.python.lib_dir_name()] {
        symlink(Path::new("python"), &bin.join(alias))?;
    }
    if let Some(st2) = &target.st2_site_packages {
        write(&site_packages.join(ST2_PTH), &st2_pth(st2)?)?;
    }
    Ok(site_packages)
}

/// The line the native engine writes too: a `.pth` line starting with `import` is run by
/// `site.addpackage()`, where `addsitedir` and `known_paths` are in scope.
fn st2_pth(st2: &Path) -> Result<String, RuntimeError> {
    let dir = st2.to_str().ok_or_else(|| RuntimeError::Io {
        path: st2.to_path_buf(),
        action: "write into a .pth (not UTF-8)",
        source: std::io::ErrorKind::InvalidData.into(),
    })?;
    let literal = dir.replace('\\', "\\\\").replace('\'', "\\'");
    Ok(format!(
        "# Written by st2pack: makes StackStorm's site-packages visible to this pack's virtualenv.\n\
         import sys; addsitedir('{literal}', known_paths)\n"
    ))
}

/// `DIR/lib/pythonX.Y/site-packages`.
pub fn site_packages(dir: &Path, target: &TargetRuntime) -> PathBuf {
    dir.join("lib")
        .join(target.python.lib_dir_name())
        .join("site-packages")
}

/// What virtualenv writes, minus what only it knows (its own version, the interpreter's patch
/// release): Python itself reads `home` to find the standard library and
/// `include-system-site-packages`.
fn pyvenv_cfg(target: &TargetRuntime) -> String {
    format!(
        "home = {}\nimplementation = CPython\nversion = {}\ninclude-system-site-packages = {}\n\
         base-executable = {}\n",
        target.pyvenv_home.display(),
        target.python,
        target.system_site_packages,
        target.interpreter.display(),
    )
}

fn write(path: &Path, text: &str) -> Result<(), RuntimeError> {
    fs::write(path, text).map_err(RuntimeError::io(path, "write"))
}

fn symlink(to: &Path, link: &Path) -> Result<(), RuntimeError> {
    std::os::unix::fs::symlink(to, link).map_err(RuntimeError::io(link, "create the symlink"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::presets::preset;

    #[test]
    fn the_skeleton_is_virtualenvs_for_the_target() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().join("venv");
        let target = TargetRuntime::described("3.9", None, "x86_64-manylinux_2_31").unwrap();
        let site = lay_out(&dir, &target).unwrap();
        assert_eq!(site, dir.join("lib/python3.9/site-packages"));
        assert!(site.is_dir());
        assert_eq!(
            fs::read_link(dir.join("bin/python")).unwrap(),
            Path::new("/usr/bin/python3.9")
        );
        for alias in ["python3", "python3.9"] {
            assert_eq!(
                fs::read_link(dir.join("bin").join(alias)).unwrap(),
                Path::new("python")
            );
        }
        let cfg = fs::read_to_string(dir.join("pyvenv.cfg")).unwrap();
        assert!(cfg.contains("home = /usr/bin\n"), "{cfg}");
        assert!(cfg.contains("version = 3.9\n"), "{cfg}");
        assert!(
            cfg.contains("include-system-site-packages = true\n"),
            "{cfg}"
        );
        let libs: Vec<_> = fs::read_dir(dir.join("lib")).unwrap().collect();
        assert_eq!(libs.len(), 1);
        assert!(!dir.join("lib64").exists());
        assert!(!site.join(ST2_PTH).exists());
    }

    #[test]
    fn st2_3_9_venvs_get_st2s_pth() {
        let scratch = tempfile::tempdir().unwrap();
        let target = preset("st2-3.9").unwrap().target();
        let site = lay_out(&scratch.path().join("venv"), &target).unwrap();
        let pth = fs::read_to_string(site.join(ST2_PTH)).unwrap();
        assert!(
            pth.contains(
                "addsitedir('/opt/stackstorm/st2/lib/python3.10/site-packages', known_paths)"
            ),
            "{pth}"
        );
    }
}
