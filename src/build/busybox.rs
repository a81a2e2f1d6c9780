//! A minimal base image from a static busybox, for clusters that cannot pull a public base: the
//! chart's init container only needs `/bin/sh` and `/bin/cp`.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::pack_layer::{PACKS_IN_IMAGE, VIRTUALENVS_IN_IMAGE};
use super::{BuildError, BuildEvent, BuildOutcome, BuiltImage, Target, write_targets};
use crate::cache::Cache;
use crate::image::annotations::ANNOTATION_CREATED;
use crate::image::assemble::{HistoryEntry, Image, ImageError, rfc3339};
use crate::image::blobs::BlobStore;
use crate::image::layer::{LayerError, LayerInput, LayerOptions, build_layer};
use crate::progress::Progress;
use crate::registry::RegistryClient;

/// The busybox applets the image links: what the chart's init container and a person debugging
/// the image need.
const APPLETS: &[&str] = &[
    "sh", "cp", "ls", "cat", "mkdir", "rm", "mv", "ln", "chmod", "chown", "find", "echo", "test",
    "true", "false", "env", "id", "du", "stat",
];

#[derive(Debug, Error)]
pub enum BusyboxError {
    #[error(
        "--busybox {}: no such file; install a static busybox (Debian: apt-get install busybox-static) or give its path",
        .0.display()
    )]
    Missing(PathBuf),
    #[error(
        "--busybox {}: {problem}; the image holds nothing else, so its /bin/sh could not start: give a statically linked busybox (Debian: apt-get install busybox-static installs /bin/busybox)",
        path.display()
    )]
    NotStatic { path: PathBuf, problem: String },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Image(#[from] ImageError),
}

impl BusyboxError {
    /// Exit code: 2 when the busybox is not there, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            BusyboxError::Missing(_) | BusyboxError::NotStatic { .. } => 2,
            _ => 1,
        }
    }
}

/// Builds the base image from `busybox` into the blob store of `cache`, with every timestamp
/// `mtime`, and writes it to `targets`, telling `on_event` after each.
pub async fn run(
    busybox: &Path,
    cache: &Cache,
    mtime: u64,
    targets: &[Target],
    registry: &RegistryClient,
    progress: &Progress,
    mut on_event: impl FnMut(BuildEvent<'_>),
) -> Result<BuildOutcome, BuildError> {
    let store = cache.blob_store()?;
    let built = base_image(busybox, &store, mtime)?;
    on_event(BuildEvent::Built(&built));
    let written = write_targets(&built, targets, &store, registry, progress, &mut on_event).await?;
    Ok(BuildOutcome {
        digest: built.digest(),
        image: built,
        written,
        installed: Default::default(),
    })
}

/// Checks that `busybox` is a file, and a static executable, before any work starts.
pub fn check(busybox: &Path) -> Result<(), BusyboxError> {
    if !busybox.is_file() {
        return Err(BusyboxError::Missing(busybox.to_path_buf()));
    }
    check_static(busybox).map_err(|problem| BusyboxError::NotStatic {
        path: busybox.to_path_buf(),
        problem,
    })
}

/// Whether `path` is an ELF executable that needs no program interpreter (a dynamic loader),
/// the only kind that runs alone in the image; otherwise what is wrong with it.
fn check_static(path: &Path) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let elf = goblin::elf::Elf::parse(&bytes)
        .map_err(|_| "not an executable ELF file (a script or a file for another system?)")?;
    match elf.interpreter {
        Some(interpreter) => Err(format!(
            "dynamically linked: it needs the program interpreter {interpreter} and the shared \
             libraries it loads"
        )),
        None if elf.header.e_type != goblin::elf::header::ET_EXEC
            && elf.header.e_type != goblin::elf::header::ET_DYN =>
        {
            Err("not an executable ELF file (an object file or a core dump?)".to_string())
        }
        None => Ok(()),
    }
}

/// The base image: `busybox` as `/bin/busybox` with its applets linked, `/tmp`, and the empty
/// pack and virtualenv directories, every timestamp `mtime`. Its layer goes into `store`.
pub fn base_image(
    busybox: &Path,
    store: &BlobStore,
    mtime: u64,
) -> Result<BuiltImage, BusyboxError> {
    check(busybox)?;
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BusyboxError::Io { path, source }
    };
    let rootfs = tempfile::tempdir().map_err(io_err(&std::env::temp_dir()))?;
    let bin = rootfs.path().join("bin");
    std::fs::create_dir(&bin).map_err(io_err(&bin))?;
    std::fs::copy(busybox, bin.join("busybox")).map_err(io_err(busybox))?;
    std::fs::set_permissions(bin.join("busybox"), std::fs::Permissions::from_mode(0o755))
        .map_err(io_err(&bin))?;
    for applet in APPLETS {
        symlink("busybox", bin.join(applet)).map_err(io_err(&bin))?;
    }
    for dir in ["tmp", PACKS_IN_IMAGE, VIRTUALENVS_IN_IMAGE] {
        let dir = rootfs.path().join(dir.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    }
    let options = LayerOptions {
        mtime,
        ..LayerOptions::default()
    };
    let input = LayerInput::new([(rootfs.path().to_path_buf(), "/".to_string())]);
    let (layer, _) = build_layer(store, &input, &options)?;

    let mut image = Image::scratch();
    image.config["config"]["Cmd"] = serde_json::json!(["/bin/sh"]);
    image.config["config"]["Env"] = serde_json::json!(["PATH=/bin"]);
    image.append_layer(
        layer,
        HistoryEntry {
            created_by: format!("st2pack base-image from {}", busybox.display()),
            created: Some(mtime),
            comment: None,
        },
    )?;
    image.set_created(mtime)?;
    let annotations = BTreeMap::from([(ANNOTATION_CREATED.to_string(), rfc3339(mtime)?)]);
    Ok(BuiltImage {
        image,
        annotations,
        created: mtime,
        mount_from: None,
        layer_sources: Default::default(),
        packs: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_binary_is_refused_with_its_interpreter() {
        let problem = check_static(Path::new("/bin/ls")).unwrap_err();
        assert!(
            problem.contains("dynamically linked") && problem.contains("ld"),
            "{problem}"
        );
        let err = check(Path::new("/bin/ls")).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string()
                .starts_with("--busybox /bin/ls: dynamically linked")
        );
    }

    #[test]
    fn a_static_busybox_and_a_script() {
        assert_eq!(check_static(Path::new("/bin/busybox")), Ok(()));
        let tmp = tempfile::tempdir().unwrap();
        let script = tmp.path().join("busybox");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        assert!(
            check_static(&script)
                .unwrap_err()
                .contains("not an executable ELF")
        );
    }
}
