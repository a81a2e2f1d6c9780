//! `st2pack base-image`: a minimal base image from a static busybox, for clusters that cannot
//! pull a public base. The chart's init container only needs `/bin/sh` and `/bin/cp`.

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use clap::Args;

use super::build::{TargetArgs, push, source_date_epoch, write_output};
use super::registry_args::RegistryArgs;
use super::{Failure, failed, run_to_exit_code, usage};
use crate::build::BuiltImage;
use crate::image::assemble::{HistoryEntry, Image, rfc3339};
use crate::image::labels::ANNOTATION_CREATED;
use crate::image::layer::{LayerInput, LayerOptions, build_layer};
use crate::progress::Progress;

/// The busybox applets the image links: what the chart's init container and a person debugging
/// the image need.
const APPLETS: &[&str] = &[
    "sh", "cp", "ls", "cat", "mkdir", "rm", "mv", "ln", "chmod", "chown", "find", "echo", "test",
    "true", "false", "env", "id", "du", "stat",
];

#[derive(Debug, Clone, Args)]
pub struct BaseArgs {
    /// A statically linked busybox binary (Debian: busybox-static installs /bin/busybox).
    #[arg(long, value_name = "PATH", default_value = "/bin/busybox")]
    pub busybox: PathBuf,

    #[command(flatten)]
    pub targets: TargetArgs,

    /// The cache: git mirrors, virtualenvs, bytecode, layers [default: ~/.cache/st2pack]
    #[arg(long, value_name = "DIR", env = "ST2PACK_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(args: &BaseArgs) -> i32 {
    run_to_exit_code(base_image(args))
}

async fn base_image(args: &BaseArgs) -> Result<(), Failure> {
    let (targets, outputs) = args.targets.parse()?;
    if !args.busybox.is_file() {
        return Err(usage(format!(
            "--busybox {}: no such file; install a static busybox (Debian: apt-get install busybox-static) or give its path",
            args.busybox.display()
        )));
    }
    check_static(&args.busybox).map_err(|problem| {
        usage(format!(
            "--busybox {}: {problem}; the image holds nothing else, so its /bin/sh could not \
             start: give a statically linked busybox (Debian: apt-get install busybox-static \
             installs /bin/busybox)",
            args.busybox.display()
        ))
    })?;
    let mtime = source_date_epoch()?;
    let cache = super::cache::open(args.cache_dir.clone(), super::cache::DEFAULT_LOCK_TIMEOUT)?;
    let store = cache.blob_store().map_err(failed)?;

    let rootfs = tempfile::tempdir().map_err(failed)?;
    let bin = rootfs.path().join("bin");
    std::fs::create_dir(&bin).map_err(failed)?;
    std::fs::copy(&args.busybox, bin.join("busybox"))
        .map_err(|e| failed(format!("{}: {e}", args.busybox.display())))?;
    std::fs::set_permissions(bin.join("busybox"), std::fs::Permissions::from_mode(0o755))
        .map_err(failed)?;
    for applet in APPLETS {
        symlink("busybox", bin.join(applet)).map_err(failed)?;
    }
    for dir in ["tmp", "opt/stackstorm/packs", "opt/stackstorm/virtualenvs"] {
        std::fs::create_dir_all(rootfs.path().join(dir)).map_err(failed)?;
    }
    let options = LayerOptions {
        mtime,
        ..LayerOptions::default()
    };
    let input = LayerInput::new([(rootfs.path().to_path_buf(), "/".to_string())]);
    let (layer, _) = build_layer(&store, &input, &options).map_err(failed)?;

    let mut image = Image::scratch();
    image.config["config"]["Cmd"] = serde_json::json!(["/bin/sh"]);
    image.config["config"]["Env"] = serde_json::json!(["PATH=/bin"]);
    image
        .append_layer(
            layer,
            HistoryEntry {
                created_by: format!("st2pack base-image from {}", args.busybox.display()),
                created: Some(mtime),
                comment: None,
            },
        )
        .map_err(failed)?;
    image.set_created(mtime).map_err(failed)?;
    let annotations = BTreeMap::from([(
        ANNOTATION_CREATED.to_string(),
        rfc3339(mtime).map_err(failed)?,
    )]);
    let built = BuiltImage {
        image,
        annotations,
        layers: Vec::new(),
    };
    let digest = built.image.digest(&built.annotations);

    for output in &outputs {
        write_output(output, &built, &targets, &store, mtime)?;
    }
    if args.targets.push {
        let refs: Vec<_> = targets.iter().collect();
        let mut client = args.registry.client(&refs).map_err(usage)?;
        let progress = Progress::new(false);
        client.on_event(progress.registry_sink());
        push(&client, &built, &targets, &store, None, &progress).await?;
    }
    println!("{digest}");
    Ok(())
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
