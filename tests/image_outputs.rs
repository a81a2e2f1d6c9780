//! The image writers checked by independent tools: `umoci` unpacks our OCI layouts, `skopeo`
//! reads our layouts and docker-archives and copies them on. Also determinism, reading layouts
//! back (ours and skopeo's), multi-tag layouts, multi-platform indexes and the error cases.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use st2pack::build::label::{self as labels, PACKS_LABEL};
use st2pack::image::annotations::{ANNOTATION_CREATED, ANNOTATION_REF_NAME};
use st2pack::image::archive::write_archive;
use st2pack::image::assemble::{HistoryEntry, Image, canonical_json};
use st2pack::image::blobs::BlobStore;
use st2pack::image::layout::{self, LayoutError, layout_blob_store, read_image, write_image};
use st2pack::image::model::{self, Layer, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST};
use st2pack::image::platform::host_architecture;
use st2pack::pack::pin::{PackPin, VirtualenvPin};

const EPOCH: u64 = 1_700_000_000;

/// A gzip layer of `files` (path, content, mode), in the blob store.
fn make_layer(store: &BlobStore, files: &[(&str, &str, u32)]) -> Layer {
    let mut tar = tar::Builder::new(Vec::new());
    let mut dirs = std::collections::BTreeSet::new();
    for (path, _, _) in files {
        let mut parent = Path::new(path).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(format!("{}/", p.display()));
            parent = p.parent();
        }
    }
    for dir in dirs {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        header.set_mtime(EPOCH);
        tar.append_data(&mut header, &dir, std::io::empty())
            .unwrap();
    }
    for (path, content, mode) in files {
        let mut header = tar::Header::new_gnu();
        header.set_mode(*mode);
        header.set_size(content.len() as u64);
        header.set_mtime(EPOCH);
        tar.append_data(&mut header, path, content.as_bytes())
            .unwrap();
    }
    let raw = tar.into_inner().unwrap();
    let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&raw)));
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&raw).unwrap();
    let descriptor = store
        .put_bytes(OCI_LAYER_GZIP, &gz.finish().unwrap())
        .unwrap();
    Layer {
        descriptor,
        diff_id,
    }
}

fn pack_label(name: &str) -> PackPin {
    PackPin {
        name: name.into(),
        version: "1.0.0".into(),
        commit: Some("0123456789abcdef".into()),
        source: format!("https://git.example.com/{name}.git"),
        r#ref: None,
        content_digest: None,
        virtualenv: Some(VirtualenvPin {
            key: None,
            python_version: "3.8.10".into(),
            ..Default::default()
        }),
    }
}

/// The test image: two pack layers on scratch.
fn build(store: &BlobStore) -> Image {
    let mut image = Image::scratch();
    image.set_created(EPOCH).unwrap();
    let packs = make_layer(
        store,
        &[
            (
                "opt/stackstorm/packs/hello/pack.yaml",
                "name: hello\nversion: 1.0.0\n",
                0o644,
            ),
            (
                "opt/stackstorm/packs/hello/actions/run.sh",
                "#!/bin/sh\necho hi\n",
                0o755,
            ),
        ],
    );
    let venv = make_layer(
        store,
        &[(
            "opt/stackstorm/virtualenvs/hello/pyvenv.cfg",
            "home = /usr/bin\n",
            0o644,
        )],
    );
    for (layer, what) in [(packs, "packs"), (venv, "virtualenvs")] {
        image
            .append_layer(
                layer,
                HistoryEntry {
                    created_by: format!("st2pack: hello {what}"),
                    created: Some(EPOCH),
                    comment: None,
                },
            )
            .unwrap();
    }
    labels::set_packs(&mut image, &[pack_label("hello")]);
    image
}

fn annotations() -> BTreeMap<String, String> {
    BTreeMap::from([(
        ANNOTATION_CREATED.to_string(),
        "2023-11-14T22:13:20Z".to_string(),
    )])
}

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} (install it: apt-get install {program}): {e}")
        });
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn skopeo_inspect(reference: &str) -> Value {
    serde_json::from_str(&run("skopeo", &["inspect", reference])).unwrap()
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn umoci_unpack(image: &str, bundle: &Path) -> PathBuf {
    run(
        "umoci",
        &["unpack", "--rootless", "--image", image, path_str(bundle)],
    );
    bundle.join("rootfs")
}

fn check_rootfs(rootfs: &Path) {
    let pack_yaml = rootfs.join("opt/stackstorm/packs/hello/pack.yaml");
    assert_eq!(
        fs::read_to_string(&pack_yaml).unwrap(),
        "name: hello\nversion: 1.0.0\n"
    );
    let script = rootfs.join("opt/stackstorm/packs/hello/actions/run.sh");
    assert_eq!(
        fs::metadata(&script).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert!(
        rootfs
            .join("opt/stackstorm/virtualenvs/hello/pyvenv.cfg")
            .is_file()
    );
}

fn tar_entries(file: &Path) -> Vec<(String, Vec<u8>, tar::Header)> {
    let mut archive = tar::Archive::new(fs::File::open(file).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let header = e.header().clone();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            (name, data, header)
        })
        .collect()
}

#[test]
fn oci_layout_is_unpacked_by_umoci_and_read_by_skopeo() {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::open(tmp.path().join("store")).unwrap();
    let image = build(&store);
    let dir = tmp.path().join("layout");
    let descriptor =
        write_image(&dir, &image, &annotations(), &["1.0", "latest"], &[&store]).unwrap();
    assert_eq!(descriptor.digest, image.digest(&annotations()));

    let rootfs = umoci_unpack(
        &format!("{}:1.0", dir.display()),
        &tmp.path().join("bundle"),
    );
    check_rootfs(&rootfs);

    let inspected = skopeo_inspect(&format!("oci:{}:latest", dir.display()));
    assert_eq!(inspected["Digest"], json!(descriptor.digest));
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 2);
    assert_eq!(inspected["Os"], json!("linux"));
    assert_eq!(inspected["Architecture"], json!(host_architecture()));
    let label = inspected["Labels"][PACKS_LABEL].as_str().unwrap();
    assert_eq!(labels::decode(label).unwrap(), vec![pack_label("hello")]);

    // The layout is what the spec says: oci-layout, an index naming both tags, blobs.
    assert_eq!(
        fs::read_to_string(dir.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["mediaType"], json!(OCI_INDEX));
    let names: Vec<_> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["annotations"][ANNOTATION_REF_NAME].as_str().unwrap())
        .collect();
    assert_eq!(names, ["1.0", "latest"]);
    for blob in [
        descriptor.digest.clone(),
        image.config_descriptor().digest,
        image.layers[0].descriptor.digest.clone(),
        image.layers[1].descriptor.digest.clone(),
    ] {
        assert!(
            dir.join("blobs/sha256").join(&blob[7..]).is_file(),
            "{blob}"
        );
    }
    // Nothing but blobs in the blob directory, and no temporary files left anywhere.
    assert_eq!(fs::read_dir(dir.join("blobs")).unwrap().count(), 1);
    assert_eq!(fs::read_dir(dir.join("blobs/sha256")).unwrap().count(), 4);
    let mut top: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    assert_eq!(top, ["blobs", "index.json", "oci-layout"]);
}

#[test]
fn docker_archive_is_read_and_copied_by_skopeo() {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::open(tmp.path().join("store")).unwrap();
    let image = build(&store);
    let file = tmp.path().join("packs.tar");
    let descriptor = write_archive(
        &file,
        &image,
        &annotations(),
        &["st2packs:1.0", "registry.example.com:5000/team/st2packs"],
        &[&store],
        EPOCH,
    )
    .unwrap();
    assert_eq!(descriptor.digest, image.digest(&annotations()));

    let reference = format!("docker-archive:{}", file.display());
    let inspected = skopeo_inspect(&reference);
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 2);
    // skopeo finds the image by each of its names, as `docker load` tags it.
    for name in [
        "st2packs:1.0",
        "registry.example.com:5000/team/st2packs:latest",
    ] {
        let by_name = skopeo_inspect(&format!("{reference}:{name}"));
        assert_eq!(by_name["Layers"], inspected["Layers"], "{name}");
    }
    let label = inspected["Labels"][PACKS_LABEL].as_str().unwrap();
    assert_eq!(labels::decode(label).unwrap(), vec![pack_label("hello")]);

    let other = tmp.path().join("other");
    run(
        "skopeo",
        &[
            "copy",
            &reference,
            &format!("oci:{}:copied", other.display()),
        ],
    );
    let rootfs = umoci_unpack(
        &format!("{}:copied", other.display()),
        &tmp.path().join("bundle"),
    );
    check_rootfs(&rootfs);

    // A layout skopeo wrote reads back with our reader: same config, same diff ids.
    let (copied, _) = read_image(&other, Some("copied")).unwrap();
    assert_eq!(copied.config["rootfs"], image.config["rootfs"]);
    assert_eq!(copied.labels(), image.labels());

    // The archive itself: sorted, owned by root, one mtime, both manifest formats.
    let entries = tar_entries(&file);
    let names: Vec<_> = entries.iter().map(|(n, _, _)| n.clone()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(names[..2], ["blobs/", "blobs/sha256/"]);
    assert_eq!(
        names[names.len() - 3..],
        ["index.json", "manifest.json", "oci-layout"]
    );
    assert_eq!(names.len(), 2 + 4 + 3);
    for (name, _, header) in &entries {
        assert_eq!(header.uid().unwrap(), 0, "{name}");
        assert_eq!(header.gid().unwrap(), 0, "{name}");
        assert_eq!(header.mtime().unwrap(), EPOCH, "{name}");
        let mode = if name.ends_with('/') { 0o755 } else { 0o644 };
        assert_eq!(header.mode().unwrap(), mode, "{name}");
    }
    let manifest = entries
        .iter()
        .find(|(n, _, _)| n == "manifest.json")
        .unwrap();
    let manifest: Value = serde_json::from_slice(&manifest.1).unwrap();
    assert_eq!(
        manifest[0]["RepoTags"],
        json!([
            "st2packs:1.0",
            "registry.example.com:5000/team/st2packs:latest"
        ])
    );
    assert_eq!(
        manifest[0]["Layers"][0],
        json!(format!(
            "blobs/sha256/{}",
            &image.layers[0].descriptor.digest[7..]
        ))
    );
    let index = entries.iter().find(|(n, _, _)| n == "index.json").unwrap();
    let index: Value = serde_json::from_slice(&index.1).unwrap();
    assert_eq!(
        index["manifests"][0]["annotations"]["io.containerd.image.name"],
        json!("docker.io/library/st2packs:1.0")
    );
    // The OCI half of the archive is a layout skopeo can read too.
    let unpacked = tmp.path().join("unpacked");
    fs::create_dir(&unpacked).unwrap();
    tar::Archive::new(fs::File::open(&file).unwrap())
        .unpack(&unpacked)
        .unwrap();
    let inspected = skopeo_inspect(&format!("oci:{}:1.0", unpacked.display()));
    assert_eq!(inspected["Digest"], json!(descriptor.digest));
}

#[test]
fn same_inputs_give_identical_bytes() {
    let outputs: Vec<_> = (0..2)
        .map(|_| {
            let tmp = tempfile::tempdir().unwrap();
            let store = BlobStore::open(tmp.path().join("store")).unwrap();
            let image = build(&store);
            let dir = tmp.path().join("layout");
            let descriptor =
                write_image(&dir, &image, &annotations(), &["1.0"], &[&store]).unwrap();
            let file = tmp.path().join("packs.tar");
            write_archive(
                &file,
                &image,
                &annotations(),
                &["st2packs:1.0"],
                &[&store],
                EPOCH,
            )
            .unwrap();
            (
                descriptor,
                fs::read(dir.join("index.json")).unwrap(),
                fs::read(file).unwrap(),
                tmp,
            )
        })
        .collect();
    assert_eq!(outputs[0].0, outputs[1].0);
    assert_eq!(outputs[0].1, outputs[1].1);
    assert!(outputs[0].2 == outputs[1].2, "archives differ");
}

#[test]
fn layout_reads_back_and_serves_as_a_base() {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::open(tmp.path().join("store")).unwrap();
    let image = build(&store);
    let base_dir = tmp.path().join("base");
    write_image(&base_dir, &image, &annotations(), &["base"], &[&store]).unwrap();

    let (mut read, base_store) = read_image(&base_dir, Some("base")).unwrap();
    assert_eq!(read, image);
    assert_eq!(read.config_bytes(), image.config_bytes());
    // With one image in the layout, no tag is needed.
    assert_eq!(read_image(&base_dir, None).unwrap().0, image);
    for layer in &read.layers {
        assert!(base_store.contains(&layer.descriptor.digest));
    }
    assert_eq!(layout_blob_store(&base_dir).unwrap(), base_store);
    // Opening the layout as a blob store leaves it a layout other tools still read.
    check_rootfs(&umoci_unpack(
        &format!("{}:base", base_dir.display()),
        &tmp.path().join("base-bundle"),
    ));
    run("umoci", &["gc", "--layout", path_str(&base_dir)]);
    run(
        "umoci",
        &["stat", "--image", &format!("{}:base", base_dir.display())],
    );

    // Build on it with a layer from a different store; write from both stores.
    let other_store = BlobStore::open(tmp.path().join("other-store")).unwrap();
    let extra = make_layer(
        &other_store,
        &[(
            "opt/stackstorm/packs/second/pack.yaml",
            "name: second\n",
            0o644,
        )],
    );
    read.append_layer(
        extra,
        HistoryEntry {
            created_by: "st2pack: second".into(),
            created: None,
            comment: Some("added".into()),
        },
    )
    .unwrap();
    let out = tmp.path().join("out");
    write_image(
        &out,
        &read,
        &annotations(),
        &["2"],
        &[&base_store, &other_store],
    )
    .unwrap();
    let rootfs = umoci_unpack(&format!("{}:2", out.display()), &tmp.path().join("bundle"));
    check_rootfs(&rootfs);
    assert!(
        rootfs
            .join("opt/stackstorm/packs/second/pack.yaml")
            .is_file()
    );
    let inspected = skopeo_inspect(&format!("oci:{}:2", out.display()));
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 3);
}

#[test]
fn tags_are_added_and_replaced_in_one_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::open(tmp.path().join("store")).unwrap();
    let first = build(&store);
    let mut second = first.clone();
    second.set_label("extra", "yes");
    let dir = tmp.path().join("layout");
    let a = write_image(&dir, &first, &annotations(), &["a"], &[&store]).unwrap();
    let b = write_image(&dir, &second, &annotations(), &["b"], &[&store]).unwrap();
    assert_ne!(a.digest, b.digest);
    assert_eq!(layout::tags(&dir).unwrap(), ["a", "b"]);

    match read_image(&dir, None) {
        Err(LayoutError::Ambiguous { available, .. }) => assert_eq!(available, ["a", "b"]),
        other => panic!("expected an ambiguity error, got {other:?}"),
    }
    let message = read_image(&dir, None).unwrap_err().to_string();
    assert!(
        message.contains("a, b") && message.contains(":TAG"),
        "{message}"
    );
    assert_eq!(read_image(&dir, Some("a")).unwrap().0, first);
    assert_eq!(read_image(&dir, Some("b")).unwrap().0, second);

    // Writing tag a again moves it to the new image and keeps b.
    write_image(&dir, &second, &annotations(), &["a"], &[&store]).unwrap();
    assert_eq!(layout::tags(&dir).unwrap(), ["a", "b"]);
    assert_eq!(read_image(&dir, Some("a")).unwrap().0, second);
    assert_eq!(
        skopeo_inspect(&format!("oci:{}:a", dir.display()))["Digest"],
        json!(b.digest)
    );
    assert_eq!(
        skopeo_inspect(&format!("oci:{}:b", dir.display()))["Labels"]["extra"],
        json!("yes")
    );
}

#[test]
fn multi_platform_index_is_followed_to_this_machine() {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::open(tmp.path().join("store")).unwrap();
    let image = build(&store);
    let dir = tmp.path().join("layout");
    let ours = write_image(&dir, &image, &BTreeMap::new(), &["plain"], &[&store]).unwrap();

    // A nested index, as `skopeo copy --all` leaves for a multi-arch base.
    let foreign = json!({"mediaType": OCI_MANIFEST, "digest": model::sha256_digest(b"x"), "size": 1,
                         "platform": {"os": "linux", "architecture": "not-this-one"}});
    let nested = |entries: Vec<Value>| {
        canonical_json(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}))
    };
    let ours_entry = json!({"mediaType": OCI_MANIFEST, "digest": ours.digest, "size": ours.size,
                            "platform": {"os": "linux", "architecture": host_architecture()}});
    let multi = nested(vec![foreign.clone(), ours_entry]);
    let only_foreign = nested(vec![foreign]);
    for bytes in [&multi, &only_foreign] {
        fs::write(
            dir.join("blobs/sha256")
                .join(&model::sha256_digest(bytes)[7..]),
            bytes,
        )
        .unwrap();
    }
    let mut index: Value =
        serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    for (tag, bytes) in [("multi", &multi), ("foreign", &only_foreign)] {
        index["manifests"].as_array_mut().unwrap().push(json!({
            "mediaType": OCI_INDEX, "digest": model::sha256_digest(bytes), "size": bytes.len(),
            "annotations": {ANNOTATION_REF_NAME: tag}}));
    }
    fs::write(dir.join("index.json"), canonical_json(&index)).unwrap();

    assert_eq!(read_image(&dir, Some("multi")).unwrap().0, image);
    match read_image(&dir, Some("foreign")) {
        Err(LayoutError::NoPlatform {
            available, wanted, ..
        }) => {
            assert_eq!(available, ["linux/not-this-one"]);
            assert_eq!(wanted, format!("linux/{}", host_architecture()));
        }
        other => panic!("expected a platform error, got {other:?}"),
    }
}

#[test]
fn layout_errors_name_the_directory_and_the_way_out() {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::open(tmp.path().join("store")).unwrap();
    let image = build(&store);

    let missing = tmp.path().join("missing");
    let err = read_image(&missing, None).unwrap_err();
    assert!(matches!(err, LayoutError::MissingDir { .. }), "{err}");
    assert!(err.to_string().contains("missing"), "{err}");

    let not_layout = tmp.path().join("not-layout");
    fs::create_dir(&not_layout).unwrap();
    fs::write(not_layout.join("notes.txt"), "hello").unwrap();
    let err = read_image(&not_layout, None).unwrap_err();
    assert!(matches!(err, LayoutError::NotALayout { .. }), "{err}");
    assert!(err.to_string().contains("oci-layout"), "{err}");
    // Nor is an image written into it: the directory is someone else's.
    let err = write_image(&not_layout, &image, &annotations(), &["x"], &[&store]).unwrap_err();
    assert!(matches!(err, LayoutError::NotEmpty { .. }), "{err}");
    assert_eq!(fs::read_dir(&not_layout).unwrap().count(), 1);

    let dir = tmp.path().join("layout");
    write_image(&dir, &image, &annotations(), &["1.0", "latest"], &[&store]).unwrap();
    let err = read_image(&dir, Some("2.0")).unwrap_err();
    assert!(matches!(err, LayoutError::TagNotFound { .. }), "{err}");
    assert!(err.to_string().contains("1.0, latest"), "{err}");

    let err = write_image(&dir, &image, &annotations(), &["bad tag"], &[&store]).unwrap_err();
    assert!(matches!(err, LayoutError::InvalidTag { .. }), "{err}");

    // A blob the image needs is in no store: nothing is written.
    let empty_store = BlobStore::open(tmp.path().join("empty-store")).unwrap();
    let fresh = tmp.path().join("fresh");
    let err = write_image(&fresh, &image, &annotations(), &["1"], &[&empty_store]).unwrap_err();
    assert!(matches!(err, LayoutError::BlobNotFound { .. }), "{err}");
    assert!(!fresh.join("index.json").exists());

    // A layer removed from the layout.
    let layer = &image.layers[1].descriptor.digest;
    fs::remove_file(dir.join("blobs/sha256").join(&layer[7..])).unwrap();
    match read_image(&dir, Some("1.0")) {
        Err(LayoutError::MissingBlob { digest, .. }) => assert_eq!(&digest, layer),
        other => panic!("expected a missing blob error, got {other:?}"),
    }
    // Writing the image again repairs it.
    write_image(&dir, &image, &annotations(), &["1.0"], &[&store]).unwrap();
    read_image(&dir, Some("1.0")).unwrap();

    // A damaged config is caught by its digest.
    let config = image.config_descriptor().digest;
    fs::write(dir.join("blobs/sha256").join(&config[7..]), "{}").unwrap();
    let err = read_image(&dir, Some("1.0")).unwrap_err();
    assert!(matches!(err, LayoutError::CorruptBlob { .. }), "{err}");
}

#[test]
fn archive_errors_leave_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::open(tmp.path().join("store")).unwrap();
    let image = build(&store);
    let file = tmp.path().join("packs.tar");

    let err = write_archive(
        &file,
        &image,
        &annotations(),
        &["Bad/Name"],
        &[&store],
        EPOCH,
    )
    .unwrap_err();
    assert!(err.to_string().contains("Bad/Name"), "{err}");

    // A layer whose bytes changed in the store is refused, and no archive is left behind.
    let layer = &image.layers[0].descriptor;
    let path = store.path(&layer.digest).unwrap();
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::remove_file(&path).unwrap();
    fs::write(&path, &bytes).unwrap();
    let err = write_archive(
        &file,
        &image,
        &annotations(),
        &["packs:1"],
        &[&store],
        EPOCH,
    )
    .unwrap_err();
    assert!(err.to_string().contains(&layer.digest), "{err}");
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        1,
        "only the store is left"
    );

    let err = write_archive(
        &tmp.path().join("no-such-dir/packs.tar"),
        &image,
        &annotations(),
        &["packs:1"],
        &[&store],
        EPOCH,
    )
    .unwrap_err();
    assert!(err.to_string().contains("no-such-dir"), "{err}");
}
