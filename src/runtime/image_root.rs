//! The interpreter of an unpacked runtime image, found and run on this machine.
//!
//! A `--runtime-image` is the exact runtime: its own interpreter creates the virtualenvs and
//! compiles their bytecode. It runs here without chroot and without root: the image's own
//! dynamic loader starts it with the image's own libraries (`ld.so --library-path`), and
//! `PYTHONHOME` points it at the image's standard library, so the build machine's glibc and
//! Python do not matter. Every path is resolved inside the image root: an absolute symlink in
//! the image (`lib64/ld-linux-x86-64.so.2 -> /lib/...`) means the image's `/lib`, never ours.

use std::fs;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use super::RuntimeError;
use crate::image::in_root;

/// Where st2 lives in its images: a virtualenv whose base interpreter is the runtime's.
pub const ST2_VENV: &str = "/opt/stackstorm/st2";

/// The interpreter of images that are not st2's.
pub const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// An unpacked image's root directory on this machine.
#[derive(Debug, Clone)]
pub struct ImageRoot {
    root: PathBuf,
}

/// The interpreter found in an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePython {
    /// Its path inside the image, symlinks resolved (`/usr/bin/python3.8`): what a pack venv's
    /// `bin/python` links to there.
    pub interpreter: PathBuf,
    /// Where it was found from: st2's venv, the system `python3`, or the path given.
    pub found_from: PathBuf,
}

impl ImageRoot {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ImageRoot { root: root.into() }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Finds the runtime's interpreter: `given` when set; else, in an st2 image, the base
    /// interpreter of st2's virtualenv (its `bin/python` symlink, or, for a `--copies` venv, the
    /// `pyvenv.cfg` `home` and version, as virtualenv resolves it); else `/usr/bin/python3`.
    pub fn find_python(&self, given: Option<&Path>) -> Result<ImagePython, RuntimeError> {
        let found_from = match given {
            Some(given) => given.to_path_buf(),
            None => match self.st2_base_interpreter()? {
                Some(base) => base,
                None => PathBuf::from(SYSTEM_PYTHON),
            },
        };
        let interpreter = self.resolve(&found_from)?;
        let on_disk = self.host_path(&interpreter);
        let is_file = fs::metadata(&on_disk).is_ok_and(|meta| meta.is_file());
        if !is_file {
            return Err(RuntimeError::ImageHasNoPython {
                root: self.root.clone(),
                looked_for: found_from.display().to_string(),
            });
        }
        Ok(ImagePython {
            interpreter,
            found_from,
        })
    }

    /// st2's venv's base interpreter as a path inside the image, if this is an st2 image.
    fn st2_base_interpreter(&self) -> Result<Option<PathBuf>, RuntimeError> {
        let venv = Path::new(ST2_VENV);
        let python = venv.join("bin/python");
        let on_disk = self.host_path(&python);
        if let Ok(target) = fs::read_link(&on_disk) {
            return Ok(Some(venv.join("bin").join(target)));
        }
        let cfg_path = self.host_path(&venv.join("pyvenv.cfg"));
        let Ok(cfg) = fs::read_to_string(&cfg_path) else {
            return Ok(None);
        };
        let value = |key: &str| {
            cfg.lines().find_map(|line| {
                let (name, value) = line.split_once('=')?;
                (name.trim() == key).then(|| value.trim().to_string())
            })
        };
        if let Some(base) = value("base-executable") {
            return Ok(Some(PathBuf::from(base)));
        }
        let home = value("home");
        let version = value("version_info").or_else(|| value("version"));
        match (home, version) {
            (Some(home), Some(version)) => {
                let minor: Vec<&str> = version.split('.').take(2).collect();
                Ok(Some(
                    Path::new(&home).join(format!("python{}", minor.join("."))),
                ))
            }
            _ => Err(RuntimeError::ImageHasNoPython {
                root: self.root.clone(),
                looked_for: format!(
                    "{} (its pyvenv.cfg has no home and version)",
                    venv.display()
                ),
            }),
        }
    }

    /// A path of the image as a path on this machine (no symlink followed).
    pub fn host_path(&self, inside: &Path) -> PathBuf {
        let mut path = self.root.clone();
        path.extend(inside.components().filter_map(|c| match c {
            Component::Normal(part) => Some(part),
            _ => None,
        }));
        path
    }

    /// `inside` with every symlink followed as the image would follow it: absolute targets
    /// from the image root, `..` never above it. Returns the path inside the image.
    pub fn resolve(&self, inside: &Path) -> Result<PathBuf, RuntimeError> {
        let resolved = in_root::resolve(&self.root, inside).map_err(|_| RuntimeError::Io {
            path: self.host_path(inside),
            action: "resolve (too many levels of symlinks)",
            source: std::io::ErrorKind::InvalidData.into(),
        })?;
        Ok(Path::new("/").join(resolved))
    }

    /// A command that runs `python` (found by [`ImageRoot::find_python`]) on this machine with
    /// the image's loader and libraries. Arguments are added by the caller.
    pub fn python_command(&self, python: &ImagePython) -> Result<Command, RuntimeError> {
        let loader = self.resolve(Path::new("/lib64/ld-linux-x86-64.so.2"))?;
        let loader_on_disk = self.host_path(&loader);
        if !loader_on_disk.is_file() {
            return Err(RuntimeError::ImageHasNoLoader {
                root: self.root.clone(),
            });
        }
        let mut library_path: Vec<PathBuf> = Vec::new();
        for dir in [
            "/lib/x86_64-linux-gnu",
            "/usr/lib/x86_64-linux-gnu",
            "/lib64",
            "/usr/lib64",
            "/lib",
            "/usr/lib",
        ] {
            let on_disk = self.host_path(&self.resolve(Path::new(dir))?);
            if on_disk.is_dir() && !library_path.contains(&on_disk) {
                library_path.push(on_disk);
            }
        }
        let library_path = std::env::join_paths(&library_path).map_err(|_| RuntimeError::Io {
            path: self.root.clone(),
            action: "use as a library path (a `:` in the path)",
            source: std::io::ErrorKind::InvalidInput.into(),
        })?;
        // The prefix: /usr for /usr/bin/python3.X.
        let prefix = python
            .interpreter
            .parent()
            .and_then(Path::parent)
            .unwrap_or(Path::new("/"));
        let mut command = Command::new(loader_on_disk);
        command
            .arg("--library-path")
            .arg(library_path)
            .arg(self.host_path(&python.interpreter));
        for name in [
            "PYTHONPATH",
            "PYTHONSTARTUP",
            "PYTHONUSERBASE",
            "VIRTUAL_ENV",
        ] {
            command.env_remove(name);
        }
        command
            .env("PYTHONHOME", self.host_path(prefix))
            .env("PYTHONNOUSERSITE", "1");
        Ok(command)
    }
}

/// Writes `launcher`: an executable `/bin/sh` script that runs `command` (from
/// [`ImageRoot::python_command`]) with its own arguments, so that anything taking an interpreter
/// path (uv's `--python`, the bytecode compiler) can use the image's interpreter as it is.
pub fn write_launcher(command: &Command, launcher: &Path) -> Result<(), RuntimeError> {
    let quote = |text: &std::ffi::OsStr| {
        text.to_str()
            .map(|text| format!("'{}'", text.replace('\'', r"'\''")))
            .ok_or_else(|| RuntimeError::Io {
                path: PathBuf::from(text),
                action: "write into a launcher (not UTF-8)",
                source: std::io::ErrorKind::InvalidData.into(),
            })
    };
    let mut script = String::from("#!/bin/sh\n");
    for (name, value) in command.get_envs() {
        let name = name.to_string_lossy();
        match value {
            Some(value) => script.push_str(&format!("export {name}={}\n", quote(value)?)),
            None => script.push_str(&format!("unset {name}\n")),
        }
    }
    script.push_str("exec ");
    script.push_str(&quote(command.get_program())?);
    for arg in command.get_args() {
        script.push(' ');
        script.push_str(&quote(arg)?);
    }
    script.push_str(" \"$@\"\n");
    fs::write(launcher, script).map_err(RuntimeError::io(launcher, "write"))?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(launcher, fs::Permissions::from_mode(0o755))
        .map_err(RuntimeError::io(launcher, "make executable"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A root with Debian's layout of links: `/lib64 -> usr/lib64`, an absolute loader link,
    /// `python3 -> python3.8`.
    fn fake_root() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let at = |p: &str| root.path().join(p);
        for dir in ["usr/bin", "usr/lib64", "usr/lib/x86_64-linux-gnu"] {
            fs::create_dir_all(at(dir)).unwrap();
        }
        symlink("usr/lib64", at("lib64")).unwrap();
        symlink("usr/lib", at("lib")).unwrap();
        fs::write(at("usr/lib/x86_64-linux-gnu/ld-2.31.so"), "").unwrap();
        symlink(
            "/lib/x86_64-linux-gnu/ld-2.31.so",
            at("usr/lib64/ld-linux-x86-64.so.2"),
        )
        .unwrap();
        fs::write(at("usr/bin/python3.8"), "").unwrap();
        symlink("python3.8", at("usr/bin/python3")).unwrap();
        root
    }

    #[test]
    fn absolute_links_resolve_inside_the_root() {
        let root = fake_root();
        let image = ImageRoot::new(root.path());
        assert_eq!(
            image
                .resolve(Path::new("/lib64/ld-linux-x86-64.so.2"))
                .unwrap(),
            Path::new("/usr/lib/x86_64-linux-gnu/ld-2.31.so")
        );
        assert_eq!(
            image
                .resolve(Path::new("/usr/../../../usr/bin/python3"))
                .unwrap(),
            Path::new("/usr/bin/python3.8")
        );
        symlink("loop", root.path().join("loop")).unwrap();
        assert!(image.resolve(Path::new("/loop")).is_err());
    }

    #[test]
    fn a_plain_image_uses_its_python3() {
        let root = fake_root();
        let python = ImageRoot::new(root.path()).find_python(None).unwrap();
        assert_eq!(python.interpreter, Path::new("/usr/bin/python3.8"));
        assert_eq!(python.found_from, Path::new(SYSTEM_PYTHON));
    }

    #[test]
    fn an_st2_image_uses_the_base_interpreter_of_st2s_copied_venv() {
        let root = fake_root();
        // A --copies venv: bin/python is a file; virtualenv 20.4 recorded home = /usr.
        let venv = root.path().join("opt/stackstorm/st2");
        fs::create_dir_all(venv.join("bin")).unwrap();
        fs::write(venv.join("bin/python"), "").unwrap();
        fs::write(
            venv.join("pyvenv.cfg"),
            "home = /usr/bin\nversion_info = 3.8.10.final.0\n",
        )
        .unwrap();
        let python = ImageRoot::new(root.path()).find_python(None).unwrap();
        assert_eq!(python.interpreter, Path::new("/usr/bin/python3.8"));
        assert_eq!(python.found_from, Path::new("/usr/bin/python3.8"));
    }

    #[test]
    fn an_image_with_no_python_says_so() {
        let root = tempfile::tempdir().unwrap();
        let error = ImageRoot::new(root.path()).find_python(None).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, RuntimeError::ImageHasNoPython { .. }),
            "{message}"
        );
        assert!(message.contains("/usr/bin/python3"), "{message}");
        assert!(message.contains("--target-interpreter"), "{message}");
    }
}
