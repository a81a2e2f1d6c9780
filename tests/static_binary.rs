//! The static binaries of `scripts/build-static.sh` (in `dist/`) where dynamically linked ones
//! cannot start: inside a Debian bullseye root (glibc 2.31, as the st2 3.8 images' Ubuntu focal;
//! no OpenSSL 3), entered with chroot. There `st2-pack-install` installs a pack with a requirement
//! into a virtualenv of bullseye's own Python, and `st2pack build` writes the image to an OCI
//! layout, which skopeo and umoci read from outside.
//!
//! The binaries and the root are prepared once, outside the test run, because both are slow to
//! make (`.ci/run` does it): `bash scripts/build-static.sh` and `bash scripts/bullseye-root.sh`.
//! The root is shared and stays untouched: each test sees it through an overlay mounted in a
//! private mount namespace, which disappears with the test's processes, so no mount outlives a
//! test even when it is killed.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::bullseye;
use common::run::Sandbox;
use sha2::{Digest, Sha256};

const TARGET: &str = "x86_64-unknown-linux-musl";
const BINARIES: [&str; 2] = ["st2pack", "st2-pack-install"];

/// `dist/` (or `$ST2PACK_DIST_DIR`), with both binaries in it.
fn dist() -> PathBuf {
    let dir = std::env::var_os("ST2PACK_DIST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("dist"));
    for binary in BINARIES {
        assert!(
            dir.join(binary).is_file(),
            "{}: not found. Build the static binaries first: bash scripts/build-static.sh \
             (.ci/run does, with a cached target dir)",
            dir.join(binary).display()
        );
    }
    dir
}

/// Whether an ELF executable asks for a program interpreter (the dynamic loader): a static
/// executable has no `PT_INTERP` program header.
fn has_interpreter(file: &Path) -> bool {
    const PT_INTERP: u32 = 3;
    let bytes = fs::read(file).unwrap();
    assert!(
        bytes.starts_with(b"\x7fELF\x02\x01"),
        "{}: not a 64-bit little-endian ELF file",
        file.display()
    );
    let u16_at = |at: usize| u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap()) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    let (offset, size, count) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..count).any(|i| {
        let at = offset + i * size;
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) == PT_INTERP
    })
}

fn output(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_dist_binaries_are_static_checksummed_and_name_their_build() {
    let dist = dist();
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    for binary in BINARIES {
        let path = dist.join(binary);
        assert!(
            !has_interpreter(&path),
            "{}: dynamically linked (it has a program interpreter)",
            path.display()
        );
        let ldd = Command::new("ldd").arg(&path).output().unwrap();
        let ldd = String::from_utf8_lossy(&ldd.stdout).to_string()
            + &String::from_utf8_lossy(&ldd.stderr);
        assert!(
            !ldd.contains("=>"),
            "{}: ldd lists libraries: {ldd}",
            path.display()
        );

        let recorded = fs::read_to_string(dist.join(format!("{binary}.sha256"))).unwrap();
        let actual = hex::encode(Sha256::digest(fs::read(&path).unwrap()));
        assert_eq!(
            recorded.trim(),
            format!("{actual}  {binary}"),
            "{binary}.sha256 is in `sha256sum -c` form and matches"
        );

        let version = output(Command::new(&path).arg("--version"));
        assert!(
            version.starts_with(&format!("{binary} {} (commit ", env!("CARGO_PKG_VERSION")))
                && version.contains(&format!(", {TARGET})")),
            "{binary} --version names the version, commit and target: {version}"
        );
        if let Some(head) = &head {
            assert!(
                version.contains(head.as_str()),
                "{}: built from another commit than the checkout ({head}): {version}\
                 rebuild it with bash scripts/build-static.sh",
                path.display()
            );
        }
    }
}

#[test]
fn the_static_binaries_install_and_build_inside_debian_bullseye() {
    let dist = dist();
    let sandbox = Sandbox::new();
    let upper = sandbox.path().join("upper");
    // What the chroot sees under /st2pack-test: the binaries, an offline wheelhouse and the pack.
    let inside = upper.join("st2pack-test");
    fs::create_dir_all(inside.join("bin")).unwrap();
    for binary in BINARIES {
        fs::copy(dist.join(binary), inside.join("bin").join(binary)).unwrap();
    }
    common::run::fill_wheelhouse(&inside.join("wheelhouse"));
    let pack = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/packs/with_reqs");
    let status = Command::new("cp")
        .arg("-a")
        .arg(&pack)
        .arg(inside.join("with_reqs"))
        .status()
        .unwrap();
    assert!(status.success());

    let script = r#"
cd /st2pack-test
bin/st2-pack-install --version
python3 -c 'import ssl, platform; print(platform.libc_ver(), ssl.OPENSSL_VERSION)'
bin/st2-pack-install /st2pack-test/with_reqs \
  --packs-dir /opt/stackstorm/packs --virtualenvs-dir /opt/stackstorm/virtualenvs \
  --python /usr/bin/python3 --wheelhouse /st2pack-test/wheelhouse --cache-dir /st2pack-test/cache
/opt/stackstorm/virtualenvs/with_reqs/bin/python -c \
  'import fixture_lib; print(fixture_lib.shout("installed"))'
bin/st2pack build --root /opt/stackstorm --base scratch --cache-dir /st2pack-test/cache \
  --tag st2packs:bullseye --output oci:/st2pack-test/layout:bullseye \
  --digest-file /st2pack-test/digest
"#;
    let run = bullseye::run(&upper, script);
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "in the bullseye root:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("glibc', '2.31'"),
        "bullseye's glibc: {stdout}"
    );
    assert!(stdout.contains("INSTALLED!"), "{stdout}");

    // The image, read from outside by independent tools.
    let digest = fs::read_to_string(inside.join("digest")).unwrap();
    let layout = format!("oci:{}:bullseye", inside.join("layout").display());
    let inspected: serde_json::Value =
        serde_json::from_str(&output(Command::new("skopeo").args(["inspect", &layout]))).unwrap();
    assert_eq!(inspected["Digest"], digest.trim());
    // The pack's virtualenv's layer, then its own.
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 2);
    let label: serde_json::Value = serde_json::from_str(
        inspected["Labels"]["org.stackstorm.st2pack.packs"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(label[0]["name"], "with_reqs");

    let bundle = sandbox.path().join("bundle");
    output(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(inside.join("layout:bullseye"))
            .arg(&bundle),
    );
    let rootfs = bundle.join("rootfs/opt/stackstorm");
    assert!(rootfs.join("packs/with_reqs/pack.yaml").is_file());
    // Bullseye's Python is 3.9: the virtualenv was built with the interpreter inside the root.
    assert!(
        rootfs
            .join("virtualenvs/with_reqs/lib/python3.9/site-packages/fixture_lib/__init__.py")
            .is_file(),
        "the image holds the virtualenv with the requirement"
    );
}
