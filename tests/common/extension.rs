//! Python packages with compiled code, made by the tests: an extension module built here with
//! the stable ABI (as a manylinux wheel would be), and source distributions whose in-tree build
//! backend either writes a pure wheel or compiles C for the interpreter that runs it, as
//! setuptools would.

#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Adds to `wheelhouse` what a target runtime's install is tested with: a pure wheel `greeter`
/// with a console script `greet` (printing `hello from greeter`), a compiled extension module
/// `fastmod` (stable ABI, manylinux_2_17, compiled in `scratch`) and a pure-Python source
/// distribution `puresdist`.
pub fn add_target_wheels(wheelhouse: &Path, scratch: &Path) {
    use super::wheel::{build_tagged_wheel, build_wheel};
    build_wheel(
        wheelhouse,
        "greeter",
        "1.0",
        &[(
            "greeter.py",
            "def main():\n    print('hello from greeter')\n",
        )],
        &[("greet", "greeter:main")],
        &[],
    );
    let fastmod = compile_fastmod(scratch);
    build_tagged_wheel(
        wheelhouse,
        "fastmod",
        "1.0",
        "cp37-abi3-manylinux_2_17_x86_64",
        &[("fastmod.abi3.so", &fastmod)],
    );
    build_backend_sdist(wheelhouse, "puresdist", "1.0", false);
}

/// C for an extension module `fastmod` with `answer() -> 42`, using only the stable ABI.
pub const FASTMOD_C: &str = r#"#define Py_LIMITED_API 0x03060000
#include <Python.h>
static PyObject *answer(PyObject *self, PyObject *args) { return PyLong_FromLong(42); }
static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "fastmod", NULL, -1, methods};
PyMODINIT_FUNC PyInit_fastmod(void) { return PyModule_Create(&module); }
"#;

/// A PEP 517 build backend in the source tree: it writes `NAME-VERSION` as a wheel, compiling
/// `fast.c` for the interpreter that runs it when there is one (tagged `cpXY-cpXY-linux_ARCH`,
/// as setuptools tags a local build).
const BACKEND: &str = r#"import base64, hashlib, os, platform, subprocess, sys, sysconfig, zipfile
NAME, VERSION = "@NAME@", "@VERSION@"

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = {}
    if os.path.exists("fast.c"):
        so = "fastmod" + sysconfig.get_config_var("EXT_SUFFIX")
        include = sysconfig.get_paths()["include"]
        subprocess.check_call(["cc", "-shared", "-fPIC", "-I" + include, "fast.c", "-o", so])
        files[so] = open(so, "rb").read()
        py = "cp%d%d" % sys.version_info[:2]
        tag = "%s-%s-linux_%s" % (py, py, platform.machine())
    else:
        files[NAME + ".py"] = b"VALUE = 'from source'\n"
        tag = "py3-none-any"
    info = "%s-%s.dist-info" % (NAME, VERSION)
    files[info + "/METADATA"] = ("Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (NAME, VERSION)).encode()
    files[info + "/WHEEL"] = ("Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: %s\n" % tag).encode()
    record = ""
    for path, content in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
        record += "%s,sha256=%s,%d\n" % (path, digest, len(content))
    files[info + "/RECORD"] = (record + info + "/RECORD,,\n").encode()
    name = "%s-%s-%s.whl" % (NAME, VERSION, tag)
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as wheel:
        for path, content in files.items():
            wheel.writestr(path, content)
    return name
"#;

/// This machine's Python: its prefix and headers.
pub fn host_python(expression: &str) -> String {
    let output = Command::new("python3")
        .args(["-c", &format!("import sys, sysconfig; print({expression})")])
        .output()
        .expect("python3 runs");
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// Compiles `FASTMOD_C` here into `fastmod.abi3.so` and returns its bytes.
pub fn compile_fastmod(scratch: &Path) -> Vec<u8> {
    let source = scratch.join("fast.c");
    fs::write(&source, FASTMOD_C).unwrap();
    let include = host_python("sysconfig.get_paths()['include']");
    let so = scratch.join("fastmod.abi3.so");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2"])
        .arg(format!("-I{include}"))
        .arg(&source)
        .arg("-o")
        .arg(&so)
        .status()
        .expect("cc (a C compiler) is installed");
    assert!(status.success());
    fs::read(so).unwrap()
}

/// Writes `NAME-VERSION.tar.gz`, a source distribution built by `BACKEND`, with `fast.c` when
/// `compiled`.
pub fn build_backend_sdist(out_dir: &Path, name: &str, version: &str, compiled: bool) -> PathBuf {
    let root = format!("{name}-{version}");
    let mut files =
        vec![
        (
            "pyproject.toml",
            "[build-system]\nrequires = []\nbuild-backend = \"backend\"\nbackend-path = [\".\"]\n"
                .to_string(),
        ),
        (
            "backend.py",
            BACKEND.replace("@NAME@", name).replace("@VERSION@", version),
        ),
        (
            "PKG-INFO",
            format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"),
        ),
    ];
    if compiled {
        files.push(("fast.c", FASTMOD_C.to_string()));
    }
    fs::create_dir_all(out_dir).unwrap();
    let path = out_dir.join(format!("{root}.tar.gz"));
    let gz = flate2::write::GzEncoder::new(
        fs::File::create(&path).unwrap(),
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    for (file, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, format!("{root}/{file}"), content.as_bytes())
            .unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap().flush().unwrap();
    path
}
