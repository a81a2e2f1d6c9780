//! `--runtime-image REF`: the cluster's exact runtime, from its image.
//!
//! The image (a registry reference or `oci:DIR[:TAG]`) is pulled and unpacked once per manifest
//! digest into the cache's runtimes bucket, with only what running its interpreter needs: no
//! documentation, no `/var` or home directories, and of st2's own virtualenv (hundreds of MB of
//! site-packages) only `pyvenv.cfg`, `bin/` and `st2common/__init__.py`, which say where its
//! base interpreter is and which st2 it is. Then its interpreter is found and run here
//! ([`crate::runtime::image_root`]) to learn what the virtualenvs must match: the Python
//! version, the architecture and the glibc, facts read from the runtime itself rather than
//! assumed.
//!
//! A second use of the same image unpacks and downloads nothing: a registry reference costs one
//! manifest request to learn its digest, a digest reference found in the cache none.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cache::{Bucket, Cache, mark_used};
use crate::image::assemble::{Image, ImageError};
use crate::image::blobs::{BlobError, BlobStore};
use crate::image::layout::{self, LayoutError};
use crate::image::model::sha256_hex;
use crate::image::unpack::{UnpackError, apply_layer};
use crate::redact::{redact_url, scrub};
use crate::registry::{
    Reference, ReferenceError, RegistryClient, RegistryError, pull_config, pull_layers,
    resolve_manifest_digest,
};
use crate::runtime::image_root::{ImagePython, ImageRoot, ST2_VENV, write_launcher};
use crate::runtime::target::Arch;
use crate::runtime::{Platform, PythonVersion, RuntimeError, TargetRuntime};

/// Top-level directories of an image that running its interpreter never reads.
const SKIPPED: [&str; 11] = [
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "var",
    "home",
    "root",
    "tmp",
    "proc",
    "sys",
    "dev",
];

/// The st2 release from which st2 adds its site-packages to pack virtualenvs with a `.pth`.
const ST2_WRITES_PTH_FROM: (u32, u32) = (3, 9);

/// The oldest glibc a manylinux platform tag can name.
const OLDEST_GLIBC: (u16, u16) = (2, 17);

/// Asks the image's interpreter what a virtualenv must match. `CS_GNU_LIBC_VERSION` is the glibc
/// actually loaded (the image's), in every Python 3; a musl libc has none.
const PROBE: &str = "import os, platform, sys
try:
    libc = os.confstr('CS_GNU_LIBC_VERSION') or ''
except (AttributeError, OSError, ValueError):
    libc = ''
print(platform.python_implementation())
print(platform.python_version())
print('%d.%d' % sys.version_info[:2])
print(platform.machine())
print(libc)
";

/// A runtime image unpacked in the cache.
#[derive(Debug, Clone)]
pub struct RuntimeImage {
    /// The reference as the user gave it, credentials hidden.
    pub reference: String,
    /// The digest of the image manifest unpacked (the platform's, for an index).
    pub digest: String,
    /// The unpacked root directory, in the cache's runtimes bucket: read it, never write it.
    pub root: PathBuf,
    /// Whether this fetch unpacked it (else the cache had it).
    pub unpacked_now: bool,
    /// Keeps the cache's shared lock while the root is in use, so no prune removes it.
    _cache: Cache,
}

/// A runtime image and the runtime its interpreter reported.
#[derive(Debug)]
pub struct ImageRuntime {
    pub image: RuntimeImage,
    /// What a virtualenv must match: the interpreter is its path inside the image.
    pub target: TargetRuntime,
    /// The interpreter found, and where it was found from.
    pub python: ImagePython,
    /// The interpreter's full version, e.g. `3.9.2`.
    pub full_version: String,
    /// An executable that runs the image's interpreter on this machine with its arguments: for
    /// uv's `--python` and the bytecode compiler. Lives as long as this value.
    pub launcher: PathBuf,
    _launcher_dir: tempfile::TempDir,
}

/// Why a runtime image could not be used. Each message starts with the reference as given.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeImageError {
    #[error("--runtime-image: {0}")]
    Reference(ReferenceError),
    #[error("--runtime-image {reference}: {source}")]
    Pull {
        reference: String,
        source: Box<RegistryError>,
    },
    #[error("--runtime-image {reference}: {source}")]
    Layout {
        reference: String,
        source: Box<LayoutError>,
    },
    #[error("--runtime-image {reference}: {source}")]
    Image {
        reference: String,
        source: ImageError,
    },
    #[error("--runtime-image {reference}: {source}")]
    Blob {
        reference: String,
        source: BlobError,
    },
    #[error(
        "--runtime-image {reference}: layer {digest}: {source}; the image is damaged or was not \
         made to be unpacked: pull or copy it again, or use another image"
    )]
    Layer {
        reference: String,
        digest: String,
        source: UnpackError,
    },
    #[error(
        "--runtime-image {reference}: could not {action} {}: {source}; check that the cache \
         directory is writable, or choose another with --cache-dir",
        path.display()
    )]
    Cache {
        reference: String,
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "--runtime-image {reference}: {reason}; use the cluster's st2 image (linux/amd64, glibc, \
         CPython 3.6 or later), or describe the runtime with --target-python and \
         --target-platform"
    )]
    Unsupported { reference: String, reason: String },
    #[error("--runtime-image {reference}: {source}")]
    Runtime {
        reference: String,
        source: RuntimeError,
    },
    #[error(
        "--runtime-image {reference}: its interpreter {} did not run on this machine: {detail}; \
         name another with --target-interpreter, or describe the runtime with --target-python \
         and --target-platform",
        interpreter.display()
    )]
    InterpreterFailed {
        reference: String,
        interpreter: PathBuf,
        detail: String,
    },
}

impl RuntimeImageError {
    /// 2 for a reference or an image that cannot be used as given, 1 for a failure on the way.
    pub fn exit_code(&self) -> i32 {
        match self {
            RuntimeImageError::Reference(_)
            | RuntimeImageError::Layout { .. }
            | RuntimeImageError::Unsupported { .. } => 2,
            RuntimeImageError::Pull { source, .. } => source.exit_code(),
            RuntimeImageError::Layer { source, .. } => source.exit_code(),
            RuntimeImageError::Runtime { source, .. } => source.exit_code(),
            RuntimeImageError::Image { .. }
            | RuntimeImageError::Blob { .. }
            | RuntimeImageError::Cache { .. }
            | RuntimeImageError::InterpreterFailed { .. } => 1,
        }
    }
}

/// Fetches `reference` (a registry reference or `oci:DIR[:TAG]`) and unpacks what running its
/// interpreter needs into `cache`'s runtimes bucket, unless it is there already. `cache` should
/// hold the shared lock ([`Cache::init`]); the result keeps it held.
pub async fn fetch_runtime_image(
    reference: &str,
    registry: &RegistryClient,
    cache: &Cache,
) -> Result<RuntimeImage, RuntimeImageError> {
    let shown = redact_url(reference);
    let runtimes = cache.bucket(Bucket::Runtimes);
    let found = |digest: &str, root: PathBuf, unpacked_now: bool| RuntimeImage {
        reference: shown.clone(),
        digest: digest.to_string(),
        root,
        unpacked_now,
        _cache: cache.clone(),
    };
    if reference.starts_with("oci:") {
        let (reference, shown, runtimes) = (reference.to_string(), shown.clone(), runtimes.clone());
        let (digest, root, unpacked_now) = blocking(move || {
            let (dir, tag) = layout::parse_reference(&reference);
            let (image, store, digest) = layout::read_image_with_digest(&dir, tag.as_deref())
                .map_err(|source| RuntimeImageError::Layout {
                    reference: shown.clone(),
                    source: Box::new(source),
                })?;
            let (root, unpacked_now) = unpack_once(&runtimes, &digest, &image, &store, &shown)?;
            Ok((digest, root, unpacked_now))
        })
        .await?;
        return Ok(found(&digest, root, unpacked_now));
    }

    let parsed = Reference::parse(reference).map_err(|mut error| {
        error.input = shown.clone();
        error.reason = scrub(&error.reason, reference);
        RuntimeImageError::Reference(error)
    })?;
    let pull_error = |source| RuntimeImageError::Pull {
        reference: shown.clone(),
        source: Box::new(source),
    };
    if let Some(digest) = parsed.digest()
        && let Some(root) = cached(&runtimes, digest)
    {
        return Ok(found(digest, root, false));
    }
    let digest = resolve_manifest_digest(registry, &parsed)
        .await
        .map_err(pull_error)?;
    if let Some(root) = cached(&runtimes, &digest) {
        return Ok(found(&digest, root, false));
    }
    // Pinned, so what is pulled is the image whose digest was just looked up.
    let pinned = parsed
        .with_digest(&digest)
        .map_err(|e| pull_error(e.into()))?;
    let store = cache
        .blob_store()
        .map_err(|source| RuntimeImageError::Blob {
            reference: shown.clone(),
            source,
        })?;
    // The config first: an image for another platform is refused before its layers are pulled.
    let pulled = pull_config(registry, &pinned, &store)
        .await
        .map_err(pull_error)?;
    let image = Image::from_config_and_descriptors(&pulled.config, pulled.layers.clone()).map_err(
        |source| RuntimeImageError::Image {
            reference: shown.clone(),
            source,
        },
    )?;
    check_platform(&image, &shown)?;
    pull_layers(registry, &pinned, &store, &pulled.layers)
        .await
        .map_err(pull_error)?;
    let (digest_for_unpack, shown_for_unpack) = (digest.clone(), shown.clone());
    let (root, unpacked_now) = blocking(move || {
        unpack_once(
            &runtimes,
            &digest_for_unpack,
            &image,
            &store,
            &shown_for_unpack,
        )
    })
    .await?;
    Ok(found(&digest, root, unpacked_now))
}

/// Finds the interpreter of `image` (`interpreter`, a path inside the image, when given), runs
/// it here, and describes the runtime it is. Runs a process: call it off the async workers.
pub fn describe_runtime_image(
    image: RuntimeImage,
    interpreter: Option<&Path>,
) -> Result<ImageRuntime, RuntimeImageError> {
    let runtime_error = |source| RuntimeImageError::Runtime {
        reference: image.reference.clone(),
        source,
    };
    let unsupported = |reason: String| RuntimeImageError::Unsupported {
        reference: image.reference.clone(),
        reason,
    };
    if let Some(given) = interpreter
        && !given.is_absolute()
    {
        return Err(runtime_error(RuntimeError::BadInterpreter {
            given: given.display().to_string(),
            reason: "not an absolute path inside the image".to_string(),
        }));
    }
    let root = ImageRoot::new(&image.root);
    let python = root.find_python(interpreter).map_err(runtime_error)?;
    let command = root.python_command(&python).map_err(runtime_error)?;
    let launcher_dir = tempfile::Builder::new()
        .prefix("st2pack-runtime-")
        .tempdir()
        .map_err(|source| RuntimeImageError::Cache {
            reference: image.reference.clone(),
            action: "create a directory in",
            path: std::env::temp_dir(),
            source,
        })?;
    let launcher = launcher_dir
        .path()
        .join(python.interpreter.file_name().unwrap_or("python".as_ref()));
    write_launcher(&command, &launcher).map_err(runtime_error)?;

    let failed = |detail: String| RuntimeImageError::InterpreterFailed {
        reference: image.reference.clone(),
        interpreter: python.interpreter.clone(),
        detail,
    };
    let output = Command::new(&launcher)
        .args(["-c", PROBE])
        .output()
        .map_err(|e| failed(e.to_string()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last: Vec<&str> = stderr.lines().rev().take(5).collect();
        let last: Vec<&str> = last.into_iter().rev().collect();
        return Err(failed(format!("{} ({})", last.join(" / "), output.status)));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut lines = stdout.lines().map(str::trim);
    let mut next = || lines.next().unwrap_or_default().to_string();
    let (implementation, full_version, minor, machine, libc) =
        (next(), next(), next(), next(), next());
    if implementation != "CPython" {
        return Err(unsupported(format!(
            "its interpreter {} is {implementation}, not CPython",
            python.interpreter.display()
        )));
    }
    let version = PythonVersion::parse(&minor).map_err(|_| {
        unsupported(format!(
            "its interpreter {} is Python {full_version}; pack virtualenvs need 3.6 or later",
            python.interpreter.display()
        ))
    })?;
    if machine != Arch::X86_64.as_str() {
        return Err(unsupported(format!(
            "its interpreter runs on {machine}, not x86_64"
        )));
    }
    let glibc = parse_glibc(&libc)
        .filter(|glibc| *glibc >= OLDEST_GLIBC)
        .ok_or_else(|| {
            unsupported(if libc.is_empty() {
                "its C library is not glibc (wheels for it are not manylinux)".to_string()
            } else {
                format!("its C library is {libc}, older than glibc 2.17")
            })
        })?;
    let st2_site_packages = st2_site_packages_with_pth(&image.root);
    let target = TargetRuntime {
        python: version,
        interpreter: python.interpreter.clone(),
        platform: Platform {
            arch: Arch::X86_64,
            glibc,
        },
        pyvenv_home: python
            .interpreter
            .parent()
            .unwrap_or(Path::new("/"))
            .to_path_buf(),
        system_site_packages: true,
        st2_site_packages,
    };
    Ok(ImageRuntime {
        image,
        target,
        python,
        full_version,
        launcher,
        _launcher_dir: launcher_dir,
    })
}

/// [`fetch_runtime_image`], then [`describe_runtime_image`]: `--runtime-image REF` with an
/// optional `--target-interpreter PATH`.
pub async fn load_runtime_image(
    reference: &str,
    interpreter: Option<&Path>,
    registry: &RegistryClient,
    cache: &Cache,
) -> Result<ImageRuntime, RuntimeImageError> {
    let image = fetch_runtime_image(reference, registry, cache).await?;
    let interpreter = interpreter.map(Path::to_path_buf);
    blocking(move || describe_runtime_image(image, interpreter.as_deref())).await
}

/// Whether running an image's interpreter needs the entry at `path` (inside the image, with its
/// directories resolved).
pub fn needed(path: &Path, is_dir: bool) -> bool {
    if SKIPPED.iter().any(|skipped| path.starts_with(skipped)) {
        return false;
    }
    match path.strip_prefix(ST2_VENV.trim_start_matches('/')) {
        Ok(in_st2) => needed_of_st2(in_st2, is_dir),
        // `opt/stackstorm` itself, and its other trees (packs, virtualenvs, configs).
        Err(_) => match path.strip_prefix("opt/stackstorm") {
            Ok(rest) => rest.as_os_str().is_empty() && is_dir,
            Err(_) => true,
        },
    }
}

/// Of st2's virtualenv: `pyvenv.cfg`, `bin/`, `st2common/__init__.py`, and the directories on
/// the way to them.
fn needed_of_st2(path: &Path, is_dir: bool) -> bool {
    let parts: Vec<&str> = path
        .components()
        .map(|c| c.as_os_str().to_str().unwrap_or(""))
        .collect();
    match parts.as_slice() {
        [] | ["lib"] => is_dir,
        ["pyvenv.cfg"] | ["bin", ..] => true,
        ["lib", python] | ["lib", python, "site-packages"] => {
            is_dir && python.starts_with("python")
        }
        ["lib", python, "site-packages", "st2common"] => is_dir && python.starts_with("python"),
        ["lib", python, "site-packages", "st2common", "__init__.py"] => {
            python.starts_with("python")
        }
        _ => false,
    }
}

/// st2's site-packages (a path inside the image) when the image's st2 adds it to pack
/// virtualenvs, i.e. when its `st2common.__version__` is 3.9 or later.
fn st2_site_packages_with_pth(root: &Path) -> Option<PathBuf> {
    let lib = Path::new(ST2_VENV).join("lib");
    let image = ImageRoot::new(root);
    let mut found = fs::read_dir(image.host_path(&lib))
        .ok()?
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("python"))
        .collect::<Vec<_>>();
    found.sort();
    found.into_iter().find_map(|python| {
        let site_packages = lib.join(python).join("site-packages");
        let init = image.host_path(&site_packages.join("st2common/__init__.py"));
        let version = st2_version(&fs::read_to_string(init).ok()?)?;
        (version >= ST2_WRITES_PTH_FROM).then_some(site_packages)
    })
}

/// `(major, minor)` of `__version__ = '3.9.0'` (or `"3.9dev"`) in `st2common/__init__.py`.
fn st2_version(source: &str) -> Option<(u32, u32)> {
    let line = source
        .lines()
        .find(|line| line.trim_start().starts_with("__version__"))?;
    let value = line.split_once('=')?.1.trim().trim_matches(['\'', '"']);
    let mut numbers = value.split('.').map(|part| {
        part.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
            .ok()
    });
    Some((numbers.next()??, numbers.next()??))
}

/// `(2, 31)` of `glibc 2.31`.
fn parse_glibc(libc: &str) -> Option<(u16, u16)> {
    let version = libc.strip_prefix("glibc ")?;
    let (major, minor) = version.split_once('.')?;
    let minor: String = minor.chars().take_while(char::is_ascii_digit).collect();
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The unpacked root of `digest` in the runtimes bucket, marked as used, if it is there.
fn cached(runtimes: &Path, digest: &str) -> Option<PathBuf> {
    let root = runtimes.join(sha256_hex(digest)?);
    root.is_dir().then(|| {
        mark_used(&root);
        root
    })
}

/// The unpacked root of `image` (manifest `digest`), unpacked from `store` unless the bucket
/// has it. Unpacked in a staging directory and renamed into place whole, so the bucket only
/// ever holds complete roots; when another process published the same digest meanwhile, its
/// root is used.
fn unpack_once(
    runtimes: &Path,
    digest: &str,
    image: &Image,
    store: &BlobStore,
    shown: &str,
) -> Result<(PathBuf, bool), RuntimeImageError> {
    if let Some(root) = cached(runtimes, digest) {
        return Ok((root, false));
    }
    check_platform(image, shown)?;
    let cache_error = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| RuntimeImageError::Cache {
            reference: shown.to_string(),
            action,
            path,
            source,
        }
    };
    let hex = sha256_hex(digest).ok_or_else(|| RuntimeImageError::Unsupported {
        reference: shown.to_string(),
        reason: format!("its manifest digest {digest} is not sha256"),
    })?;
    let final_root = runtimes.join(hex);
    fs::create_dir_all(runtimes).map_err(cache_error("create", runtimes))?;
    // A name starting with `.`: a prune removes it if this process dies half way.
    let staging = tempfile::Builder::new()
        .prefix(".unpacking-")
        .tempdir_in(runtimes)
        .map_err(cache_error("create a staging directory in", runtimes))?;
    let root = staging.path().join("root");
    fs::create_dir(&root).map_err(cache_error("create", &root))?;
    for layer in &image.layers {
        let digest = &layer.descriptor.digest;
        let blob_error = |source| RuntimeImageError::Blob {
            reference: shown.to_string(),
            source,
        };
        // A registry's blobs were checked as they arrived; a layout's are checked here.
        store.verify(digest).map_err(blob_error)?;
        let blob = store.open_blob(digest).map_err(blob_error)?;
        apply_layer(&root, blob, &layer.descriptor.media_type, &needed).map_err(|source| {
            RuntimeImageError::Layer {
                reference: shown.to_string(),
                digest: digest.clone(),
                source,
            }
        })?;
    }
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755))
        .map_err(cache_error("set the mode of", &root))?;
    match fs::rename(&root, &final_root) {
        Ok(()) => {}
        Err(_) if final_root.is_dir() => return Ok((final_root, false)),
        Err(source) => {
            return Err(cache_error("move the unpacked image to", &final_root)(
                source,
            ));
        }
    }
    mark_used(&final_root);
    Ok((final_root, true))
}

/// Refuses an image whose interpreter cannot run here.
fn check_platform(image: &Image, shown: &str) -> Result<(), RuntimeImageError> {
    let (os, architecture, _) = image.platform();
    if os != "linux" || architecture != "amd64" {
        return Err(RuntimeImageError::Unsupported {
            reference: shown.to_string(),
            reason: format!("it is an image for {os}/{architecture}, not linux/amd64"),
        });
    }
    Ok(())
}

/// Runs blocking work (file system, processes) off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, RuntimeImageError> + Send + 'static,
) -> Result<T, RuntimeImageError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_the_interpreter_needs_is_unpacked() {
        let yes = |path: &str, is_dir| assert!(needed(Path::new(path), is_dir), "{path}");
        let no = |path: &str, is_dir| assert!(!needed(Path::new(path), is_dir), "{path}");
        yes("usr/bin/python3.9", false);
        yes("usr/lib/python3.9/os.py", false);
        yes("usr/share/zoneinfo/UTC", false);
        yes("etc/ld.so.cache", false);
        for skipped in [
            "usr/share/doc/python3.9/README",
            "usr/share/locale/de/x.mo",
            "var/lib/dpkg/status",
            "home/st2",
            "root/.bashrc",
            "tmp",
            "dev/null",
            "proc",
        ] {
            no(skipped, false);
        }
        yes("opt", true);
        yes("opt/stackstorm", true);
        yes("opt/stackstorm/st2", true);
        yes("opt/stackstorm/st2/pyvenv.cfg", false);
        yes("opt/stackstorm/st2/bin/python", false);
        yes("opt/stackstorm/st2/lib/python3.8/site-packages", true);
        yes(
            "opt/stackstorm/st2/lib/python3.8/site-packages/st2common/__init__.py",
            false,
        );
        no(
            "opt/stackstorm/st2/lib/python3.8/site-packages/st2common/util.py",
            false,
        );
        no(
            "opt/stackstorm/st2/lib/python3.8/site-packages/requests",
            true,
        );
        no("opt/stackstorm/packs/core/pack.yaml", false);
        no("opt/stackstorm/virtualenvs", true);
        no("opt/stackstorm/st2/lib/python3.8/site-packages", false);
    }

    #[test]
    fn st2_and_glibc_versions_are_read() {
        assert_eq!(st2_version("# x\n__version__ = '3.9.0'\n"), Some((3, 9)));
        assert_eq!(st2_version("__version__ = \"3.10dev\""), Some((3, 10)));
        assert_eq!(st2_version("__version__ = '3.8.1'"), Some((3, 8)));
        assert_eq!(st2_version("VERSION = 1"), None);
        assert_eq!(parse_glibc("glibc 2.31"), Some((2, 31)));
        assert_eq!(parse_glibc("glibc 2.35"), Some((2, 35)));
        assert_eq!(parse_glibc(""), None);
    }

    #[test]
    fn st2_39_adds_its_site_packages_and_38_does_not() {
        let tmp = tempfile::tempdir().unwrap();
        let st2common = tmp
            .path()
            .join("opt/stackstorm/st2/lib/python3.8/site-packages/st2common");
        fs::create_dir_all(&st2common).unwrap();
        fs::write(st2common.join("__init__.py"), "__version__ = '3.8.1'\n").unwrap();
        assert_eq!(st2_site_packages_with_pth(tmp.path()), None);
        fs::write(st2common.join("__init__.py"), "__version__ = '3.9.0'\n").unwrap();
        assert_eq!(
            st2_site_packages_with_pth(tmp.path()),
            Some(PathBuf::from(
                "/opt/stackstorm/st2/lib/python3.8/site-packages"
            ))
        );
    }
}
