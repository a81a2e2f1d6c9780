//! Precompiling a tree to checked-hash `.pyc`.
//!
//! The packs and virtualenvs are mounted read-only at run time, so Python can never write bytecode
//! there: without precompiled `.pyc` every process start recompiles every module. Timestamp-based
//! `.pyc` would be judged stale as soon as the image builder normalises file times, so only
//! checked-hash `.pyc` (valid whatever the mtimes) are written, and any other `.pyc` is removed.
//!
//! Nothing is read or written through a symlink: a linked `.py` is left uncompiled (it may lead
//! to any file of the build machine), and a `__pycache__` that is a link is removed, so the
//! bytecode lands in a directory of the tree being compiled.
//!
//! A small driver runs in the target interpreter rather than `compileall -s/-p`, which only exists
//! from Python 3.9 on (StackStorm 3.8 runs on 3.8): it records the final path in each code object
//! and reports, rather than fails on, files that do not compile (old packages often ship Python 2
//! test files, which pip ignores too).

use std::path::Path;

use tokio::process::Command;

use super::VenvError;
use super::relocate::walk_error;

/// argv: dir, cache dir (or ""), comma-separated top-level packages of `site-packages` to leave
/// uncompiled (or ""). Prints `st2pack-failed\t<path>\t<reason>` per file that does
/// not compile, then `st2pack-compiled\t<count>`.
///
/// Each `.pyc` records the source's path relative to `dir`: Python replaces a code object's file
/// name with the real source path when it loads a `.pyc`, so the recorded one only has to be
/// stable. Its code is marshalled without back-references (format 2), whose use depends on what
/// the process compiled before. That makes a `.pyc` depend on nothing but the source, its
/// relative path and the interpreter, so identical files (pip, setuptools: most of every virtualenv) are compiled once
/// per cache and copied after that. A cached `.pyc` that is used gets its mtime set to now:
/// its last use, for whoever prunes the cache.
const COMPILE_SCRIPT: &str = r#"
import os, sys, hashlib, marshal, py_compile, importlib.util, shutil, tempfile
root, cache = sys.argv[1], sys.argv[2]
skip = set(p for p in sys.argv[3].split(",") if p)
mode = py_compile.PycInvalidationMode.CHECKED_HASH

def place(src, dst):
    # Copied, not linked: a cache file shared with an installed tree would change with it.
    shutil.copyfile(src, dst)

def normalize(cfile):
    # Marshal format 2 has no back-references, which the default format sets by reference
    # counts (so by what the process compiled before): the same source gives the same bytes in
    # any process. The 16-byte header (magic, flags, source hash) stays as it is.
    with open(cfile, "rb") as f:
        data = f.read()
    body = marshal.dumps(marshal.loads(data[16:]), 2)
    with open(cfile, "wb") as f:
        f.write(data[:16] + body)

def compile_one(path):
    rel = os.path.relpath(path, root)
    cfile = importlib.util.cache_from_source(path)
    try:
        key = None
        if cache:
            with open(path, "rb") as f:
                source = f.read()
            key = hashlib.sha256(b"st2pack-pyc-2\0" + importlib.util.MAGIC_NUMBER + b"\0" + rel.encode("utf-8", "surrogateescape") + b"\0" + source).hexdigest()
            cached = os.path.join(cache, key[:2], key + ".pyc")
            if os.path.exists(cached):
                os.makedirs(os.path.dirname(cfile), exist_ok=True)
                if os.path.lexists(cfile):
                    os.unlink(cfile)
                place(cached, cfile)
                try:
                    os.utime(cached)
                except OSError:
                    pass
                return None
        py_compile.compile(path, cfile=cfile, dfile=rel, doraise=True, invalidation_mode=mode)
        normalize(cfile)
        if key:
            os.makedirs(os.path.dirname(cached), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(cached), suffix=".tmp")
            os.close(fd)
            shutil.copyfile(cfile, tmp)
            os.replace(tmp, cached)
        return None
    except Exception as exc:
        lines = [l for l in str(exc).splitlines() if l.strip()]
        return "%s\t%s" % (rel, lines[-1].strip() if lines else type(exc).__name__)

files = []
for top, dirs, names in os.walk(root):
    at_site = os.path.basename(top) == "site-packages"
    dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not (at_site and d in skip))
    pycache = os.path.join(top, "__pycache__")
    if os.path.islink(pycache):
        os.unlink(pycache)
    for n in sorted(names):
        path = os.path.join(top, n)
        if n.endswith(".py") and not os.path.islink(path):
            files.append(path)

workers = min(os.cpu_count() or 1, 8)
if workers > 1 and len(files) > 100:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        results = list(pool.map(compile_one, files, chunksize=32))
else:
    results = [compile_one(f) for f in files]
out = sys.stdout
for failure in results:
    if failure:
        out.write("st2pack-failed\t%s\n" % failure.replace("\n", " "))
out.write("st2pack-compiled\t%d\n" % len(files))
"#;

/// Compiles every `.py` under `dir` to checked-hash `.pyc` (reusing those in `cache`, when
/// given, for identical sources), except the top-level `site-packages` packages in `skip`, then
/// deletes every other `.pyc`.
///
/// Returns a warning per file that does not compile. Interpreters older than 3.7 have no
/// hash-based `.pyc`: there, stale `.pyc` are removed and a warning says nothing was compiled.
pub async fn compile_bytecode(
    python: &Path,
    dir: &Path,
    cache: Option<&Path>,
    skip: &[&str],
) -> Result<Vec<String>, VenvError> {
    let compile_error = |detail: String| VenvError::Compile {
        python: python.to_path_buf(),
        dir: dir.to_path_buf(),
        detail,
    };
    let mut cmd = Command::new(python);
    // Isolated as `-I` would be: no user site (-s), no PYTHON* variable of ours, and not the
    // current directory (a pack's own) on the path, so nothing shadows the stdlib. But with a
    // fixed hash seed, which `-I` would ignore: before 3.11, Python marshals a frozenset
    // constant in hash order, so only a fixed seed gives the same `.pyc` bytes for the same
    // source on every machine, and so the same image.
    let script = format!("import sys\ndel sys.path[0]\n{COMPILE_SCRIPT}");
    cmd.args(["-s", "-c", &script])
        .arg(dir)
        .arg(cache.map(Path::as_os_str).unwrap_or_default())
        .arg(skip.join(","));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PYTHON") {
            cmd.env_remove(name);
        }
    }
    super::installer::sanitize(&mut cmd, dir);
    cmd.env("PYTHONHASHSEED", "0");
    let output = cmd
        .output()
        .await
        .map_err(|e| compile_error(e.to_string()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);

    let mut warnings = Vec::new();
    if !output.status.success() || !stdout.contains("st2pack-compiled\t") {
        if stderr.contains("PycInvalidationMode") {
            warnings.push(format!(
                "{} is older than Python 3.7, which introduced hash-based .pyc, so no bytecode was \
                 precompiled for {}: its modules will be compiled at every start",
                python.display(),
                dir.display()
            ));
        } else {
            return Err(compile_error(format!(
                "{}:\n{}",
                output.status,
                super::installer::output_tail(&output.stdout, &output.stderr, 20)
            )));
        }
    }
    for line in stdout.lines() {
        if let Some(failure) = line.strip_prefix("st2pack-failed\t") {
            let (file, reason) = failure.split_once('\t').unwrap_or((failure, ""));
            warnings.push(format!("{file} was not byte-compiled: {reason}"));
        }
    }
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || remove_stale_pyc(&dir))
        .await
        .map_err(|e| compile_error(e.to_string()))??;
    Ok(warnings)
}

/// Flags of a checked-hash `.pyc` (PEP 552): bit 0 hash-based, bit 1 check source.
const CHECKED_HASH: u32 = 0b11;

/// Deletes every `.pyc` under `dir` that is not checked-hash.
pub(crate) fn remove_stale_pyc(dir: &Path) -> Result<(), VenvError> {
    for entry in walkdir::WalkDir::new(dir).follow_links(false) {
        let entry = entry.map_err(|e| walk_error(dir, e))?;
        let path = entry.path();
        if !entry.file_type().is_file() || path.extension().is_none_or(|e| e != "pyc") {
            continue;
        }
        if pyc_flags(path) != Some(CHECKED_HASH) {
            std::fs::remove_file(path).map_err(|e| VenvError::io("remove", path, e))?;
        }
    }
    Ok(())
}

/// The PEP 552 flags word of a `.pyc`, if it has a full header.
pub(crate) fn pyc_flags(path: &Path) -> Option<u32> {
    use std::io::Read;
    let mut header = [0u8; 16];
    std::fs::File::open(path)
        .ok()?
        .read_exact(&mut header)
        .ok()?;
    Some(u32::from_le_bytes([
        header[4], header[5], header[6], header[7],
    ]))
}
