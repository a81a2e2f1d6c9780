//! Real, valid pure-Python wheels built offline, for tests that install packages with pip or uv.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// The wheel file-name form of a distribution name (`my-pkg` -> `my_pkg`).
pub fn wheel_name(name: &str) -> String {
    name.replace(['-', '.'], "_")
}

/// Writes `<name>-<version>-py3-none-any.whl` into `out_dir` and returns its path.
///
/// `modules` are `(path inside the wheel, source)`, e.g. `("greeter.py", "...")` or
/// `("pkg/__init__.py", "")`; `console_scripts` are `(script name, "module:function")`;
/// `requires` become `Requires-Dist` lines.
pub fn build_wheel(
    out_dir: &Path,
    name: &str,
    version: &str,
    modules: &[(&str, &str)],
    console_scripts: &[(&str, &str)],
    requires: &[&str],
) -> PathBuf {
    let dist = wheel_name(name);
    let dist_info = format!("{dist}-{version}.dist-info");
    let mut files: Vec<(String, Vec<u8>)> = modules
        .iter()
        .map(|(path, source)| (path.to_string(), source.as_bytes().to_vec()))
        .collect();

    let mut metadata = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n");
    for requirement in requires {
        metadata.push_str(&format!("Requires-Dist: {requirement}\n"));
    }
    files.push((format!("{dist_info}/METADATA"), metadata.into_bytes()));
    files.push((
        format!("{dist_info}/WHEEL"),
        b"Wheel-Version: 1.0\nGenerator: st2pack-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
            .to_vec(),
    ));
    let mut entry_points = String::new();
    if !console_scripts.is_empty() {
        entry_points.push_str("[console_scripts]\n");
        for (script, target) in console_scripts {
            entry_points.push_str(&format!("{script} = {target}\n"));
        }
    }
    files.push((
        format!("{dist_info}/entry_points.txt"),
        entry_points.into_bytes(),
    ));
    files.push((
        format!("{dist_info}/top_level.txt"),
        top_level(modules).into_bytes(),
    ));

    std::fs::create_dir_all(out_dir).expect("create wheel output directory");
    write_wheel(
        &out_dir.join(format!("{dist}-{version}-py3-none-any.whl")),
        &dist_info,
        files,
        0o644,
    )
}

fn top_level(modules: &[(&str, &str)]) -> String {
    let mut names: Vec<&str> = modules
        .iter()
        .map(|(path, _)| {
            let first = path.split('/').next().unwrap_or(path);
            first.strip_suffix(".py").unwrap_or(first)
        })
        .collect();
    names.sort();
    names.dedup();
    names.iter().map(|n| format!("{n}\n")).collect()
}

/// RFC 4648 base64 with the URL-safe alphabet and no padding, as RECORD hashes use.
pub fn urlsafe_b64_nopad(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextets = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for sextet in &sextets[..chunk.len() + 1] {
            out.push(char::from(ALPHABET[*sextet as usize]));
        }
    }
    out
}

/// Copies the pip and setuptools wheels that ship with `python3` (ensurepip's bundled wheels, or
/// Debian's /usr/share/python-wheels) into `dir`. Returns the copied paths.
pub fn seed_wheelhouse(dir: &Path) -> Vec<PathBuf> {
    let output = Command::new("python3")
        .args([
            "-c",
            "import ensurepip, os; print(os.path.dirname(ensurepip.__file__))",
        ])
        .env_remove("PYTHONPATH")
        .output()
        .expect("run python3 to find ensurepip");
    let mut sources = Vec::new();
    if output.status.success() {
        let ensurepip = String::from_utf8_lossy(&output.stdout).trim().to_string();
        sources.push(Path::new(&ensurepip).join("_bundled"));
    }
    sources.push(PathBuf::from("/usr/share/python-wheels"));

    std::fs::create_dir_all(dir).expect("create wheelhouse");
    let mut copied = Vec::new();
    for source in sources {
        let Ok(entries) = std::fs::read_dir(&source) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let wanted = ["pip-", "setuptools-"].iter().any(|p| name.starts_with(p));
            if wanted && name.ends_with(".whl") {
                let target = dir.join(&name);
                std::fs::copy(entry.path(), &target).expect("copy bundled wheel");
                copied.push(target);
            }
        }
        if !copied.is_empty() {
            break;
        }
    }
    assert!(
        !copied.is_empty(),
        "no bundled pip/setuptools wheels found for python3 (ensurepip/_bundled)"
    );
    copied
}

/// Writes the source distribution `<name>-<version>.tar.gz` into `out_dir`: a `setup.py` that
/// runs `setup_code` first (as any sdist can) and then declares the package.
pub fn build_sdist(out_dir: &Path, name: &str, version: &str, setup_code: &str) -> PathBuf {
    let stem = format!("{name}-{version}");
    let setup = format!(
        "{setup_code}\nfrom setuptools import setup\nsetup(name={name:?}, version={version:?}, \
         py_modules=[])\n"
    );
    let pkg_info = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n");
    std::fs::create_dir_all(out_dir).expect("create sdist output directory");
    let path = out_dir.join(format!("{stem}.tar.gz"));
    let file = std::fs::File::create(&path).expect("create sdist");
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (member, content) in [("setup.py", setup), ("PKG-INFO", pkg_info)] {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, format!("{stem}/{member}"), content.as_bytes())
            .expect("add to sdist");
    }
    tar.into_inner()
        .expect("finish tar")
        .finish()
        .expect("finish gzip");
    path
}

/// Writes a wheel with any `tag` (e.g. `cp37-abi3-manylinux_2_17_x86_64`) holding `files`
/// (path inside the wheel, bytes), for tests of platform wheels. Returns its path.
pub fn build_tagged_wheel(
    out_dir: &Path,
    name: &str,
    version: &str,
    tag: &str,
    files: &[(&str, &[u8])],
) -> PathBuf {
    let dist = wheel_name(name);
    let dist_info = format!("{dist}-{version}.dist-info");
    let mut entries: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|(path, content)| (path.to_string(), content.to_vec()))
        .collect();
    entries.push((
        format!("{dist_info}/METADATA"),
        format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n").into_bytes(),
    ));
    entries.push((
        format!("{dist_info}/WHEEL"),
        format!(
            "Wheel-Version: 1.0\nGenerator: st2pack-tests\nRoot-Is-Purelib: false\nTag: {tag}\n"
        )
        .into_bytes(),
    ));
    std::fs::create_dir_all(out_dir).expect("create wheel output directory");
    write_wheel(
        &out_dir.join(format!("{dist}-{version}-{tag}.whl")),
        &dist_info,
        entries,
        0o755,
    )
}

/// Adds the `RECORD` of `entries` under `dist_info` and zips them into `wheel`, each file with
/// `mode`. Returns the wheel's path.
fn write_wheel(
    wheel: &Path,
    dist_info: &str,
    mut entries: Vec<(String, Vec<u8>)>,
    mode: u32,
) -> PathBuf {
    let mut record = String::new();
    for (path, content) in &entries {
        let digest = Sha256::digest(content);
        record.push_str(&format!(
            "{path},sha256={},{}\n",
            urlsafe_b64_nopad(&digest),
            content.len()
        ));
    }
    let record_path = format!("{dist_info}/RECORD");
    record.push_str(&format!("{record_path},,\n"));
    entries.push((record_path, record.into_bytes()));

    let mut zip = zip::ZipWriter::new(std::fs::File::create(wheel).expect("create wheel file"));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(mode);
    for (path, content) in &entries {
        zip.start_file(path.as_str(), options)
            .expect("add file to wheel");
        zip.write_all(content).expect("write file into wheel");
    }
    zip.finish().expect("finish wheel");
    wheel.to_path_buf()
}
