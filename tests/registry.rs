//! The registry client against a real registry (distribution's `docker-registry`) on 127.0.0.1:
//! plain, TLS with htpasswd logins, and bearer tokens from a token server, read back by the real
//! `skopeo`, with a fault-injecting proxy for the retry paths.

mod common;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::registry::{Fault, FaultProxy, TestRegistry};
use common::token::TokenServer;
use st2pack::image::blobs::BlobStore;
use st2pack::image::model::{
    DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, Descriptor,
    OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, sha256_digest,
};
use st2pack::image::platform::host_architecture;
use st2pack::registry::{
    Credentials, PushOptions, PushReport, Reference, RegistryClient, RegistryError,
    RegistryOptions, RetryPolicy, UploadMode, fetch_manifest_and_config, pull_image, push_image,
};

/// A small image in its own blob store: a config and two gzip layers.
struct TestImage {
    _dir: tempfile::TempDir,
    store: BlobStore,
    config: Vec<u8>,
    config_desc: Descriptor,
    layers: Vec<Descriptor>,
    manifest: Vec<u8>,
}

fn tar_gz(files: &[(&str, &str)]) -> (Vec<u8>, String) {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, path, content.as_bytes())
            .unwrap();
    }
    let tar = tar.into_inner().unwrap();
    let diff_id = sha256_digest(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    (gz.finish().unwrap(), diff_id)
}

fn make_image(name: &str) -> TestImage {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path().join("blobs")).unwrap();
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for (path, content) in [
        (
            format!("opt/stackstorm/packs/{name}/pack.yaml"),
            format!("name: {name}\n"),
        ),
        (
            format!("opt/stackstorm/virtualenvs/{name}/pyvenv.cfg"),
            "home = /usr/bin\n".to_string(),
        ),
    ] {
        let (gz, diff_id) = tar_gz(&[(&path, &content)]);
        layers.push(store.put_bytes(OCI_LAYER_GZIP, &gz).unwrap());
        diff_ids.push(diff_id);
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config_desc = Descriptor {
        media_type: OCI_CONFIG.into(),
        digest: sha256_digest(&config),
        size: config.len() as u64,
        annotations: None,
    };
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc,
        "layers": layers,
    }))
    .unwrap();
    TestImage {
        _dir: dir,
        store,
        config,
        config_desc,
        layers,
        manifest,
    }
}

fn options() -> RegistryOptions {
    RegistryOptions {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(10),
        // Never the machine's own ~/.docker/config.json.
        docker_config_dir: Some(PathBuf::from("/nonexistent/st2pack-test-docker-config")),
        retry: RetryPolicy {
            attempts: 5,
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
        },
        ..RegistryOptions::default()
    }
}

fn client() -> RegistryClient {
    RegistryClient::new(options()).unwrap()
}

fn reference(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

async fn push(
    client: &RegistryClient,
    target: &str,
    image: &TestImage,
    opts: &PushOptions,
) -> Result<PushReport, RegistryError> {
    push_image(
        client,
        &reference(target),
        &image.store,
        (&image.config, &image.config_desc),
        &image.layers,
        &image.manifest,
        opts,
    )
    .await
}

fn skopeo(args: &[&str]) -> std::process::Output {
    Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("run skopeo (install the skopeo package)")
}

fn skopeo_inspect(reference: &str) -> serde_json::Value {
    skopeo_inspect_with(reference, &[])
}

/// `skopeo inspect` with more options, such as `--creds USER:PASSWORD`.
fn skopeo_inspect_with(reference: &str, options: &[&str]) -> serde_json::Value {
    let image = format!("docker://{reference}");
    let out = skopeo(
        &[
            &["inspect", "--tls-verify=false"],
            options,
            &[image.as_str()],
        ]
        .concat(),
    );
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn all_digests(image: &TestImage) -> Vec<String> {
    let mut all: Vec<String> = image.layers.iter().map(|l| l.digest.clone()).collect();
    all.push(image.config_desc.digest.clone());
    sorted(all)
}

#[tokio::test(flavor = "multi_thread")]
async fn push_is_readable_by_skopeo_and_a_repush_uploads_nothing() {
    let registry = TestRegistry::start_plain();
    let image = make_image("hello");
    let client = client();
    let target = format!("{}/st2packs:1.0", registry.host());
    let opts = PushOptions {
        extra_tags: vec!["latest".into()],
        ..PushOptions::default()
    };

    let report = push(&client, &target, &image, &opts).await.unwrap();
    assert_eq!(report.digest, sha256_digest(&image.manifest));
    // In image order: the layers, then the config.
    let mut in_order: Vec<String> = image.layers.iter().map(|l| l.digest.clone()).collect();
    in_order.push(image.config_desc.digest.clone());
    assert_eq!(report.uploaded, in_order);
    assert!(report.skipped.is_empty() && report.mounted.is_empty());
    let sizes: u64 = image.layers.iter().map(|l| l.size).sum::<u64>() + image.config_desc.size;
    assert_eq!(report.bytes_uploaded, sizes);
    assert_eq!(
        report.references,
        [
            target.clone(),
            format!("{}/st2packs:latest", registry.host())
        ]
    );
    assert_eq!(registry.upload_count(), 3, "{}", registry.access_log());

    for tag in ["1.0", "latest"] {
        let inspected = skopeo_inspect(&format!("{}/st2packs:{tag}", registry.host()));
        assert_eq!(inspected["Digest"], report.digest.as_str());
        let layers: Vec<&str> = inspected["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect();
        let expected: Vec<&str> = image.layers.iter().map(|l| l.digest.as_str()).collect();
        assert_eq!(layers, expected);
    }

    let layout = tempfile::tempdir().unwrap();
    let out = skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{target}"),
        &format!("oci:{}:copied", layout.path().display()),
    ]);
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let index = std::fs::read_to_string(layout.path().join("index.json")).unwrap();
    assert!(index.contains(&report.digest), "{index}");

    // Again: the registry has every blob, so nothing is uploaded and the tag is rewritten.
    let again = push(&client, &target, &image, &opts).await.unwrap();
    assert_eq!(again.digest, report.digest);
    assert!(
        again.uploaded.is_empty() && again.mounted.is_empty(),
        "{again:?}"
    );
    assert_eq!(sorted(again.skipped), all_digests(&image));
    assert_eq!(again.bytes_uploaded, 0);
    assert_eq!(registry.upload_count(), 3, "{}", registry.access_log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_repository_mounts_instead_of_uploading() {
    let registry = TestRegistry::start_plain();
    let image = make_image("base");
    let client = client();
    let base = format!("{}/base:1", registry.host());
    push(&client, &base, &image, &PushOptions::default())
        .await
        .unwrap();
    assert_eq!(registry.upload_count(), 3);

    let opts = PushOptions {
        mount_from: Some(reference(&base)),
        ..PushOptions::default()
    };
    let report = push(
        &client,
        &format!("{}/team/packs:1", registry.host()),
        &image,
        &opts,
    )
    .await
    .unwrap();
    assert_eq!(sorted(report.mounted), all_digests(&image));
    assert!(report.uploaded.is_empty(), "{:?}", report.uploaded);
    assert_eq!(registry.upload_count(), 3, "{}", registry.access_log());
    assert_eq!(registry.mount_count(), 3, "{}", registry.access_log());
    assert_eq!(registry.upload_count_in("team/packs"), 0);
    skopeo_inspect(&format!("{}/team/packs:1", registry.host()));

    // A mount source on another registry is ignored: the blobs are uploaded.
    let other = TestRegistry::start_plain();
    let opts = PushOptions {
        mount_from: Some(reference(&base)),
        ..PushOptions::default()
    };
    let report = push(&client, &format!("{}/packs:1", other.host()), &image, &opts)
        .await
        .unwrap();
    assert_eq!(report.uploaded.len(), 3);
    assert_eq!(other.mount_count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_into_an_empty_store_gives_back_the_same_blobs() {
    let registry = TestRegistry::start_plain();
    let image = make_image("pulled");
    let client = client();
    let target = format!("{}/base:2", registry.host());
    let pushed = push(&client, &target, &image, &PushOptions::default())
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path().join("blobs")).unwrap();
    let pulled = pull_image(&client, &reference(&target), &store)
        .await
        .unwrap();
    assert_eq!(pulled.config, image.config);
    assert_eq!(pulled.config_descriptor, image.config_desc);
    assert_eq!(pulled.layers, image.layers);
    assert_eq!(pulled.media_type, OCI_MANIFEST);
    assert_eq!(pulled.manifest_digest, pushed.digest);
    for digest in all_digests(&image) {
        assert!(store.contains(&digest), "{digest} not pulled");
        store.verify(&digest).unwrap();
    }
    for layer in &image.layers {
        assert_eq!(
            std::fs::read(store.path(&layer.digest).unwrap()).unwrap(),
            std::fs::read(image.store.path(&layer.digest).unwrap()).unwrap()
        );
    }
    assert_eq!(
        std::fs::read(store.path(&image.config_desc.digest).unwrap()).unwrap(),
        image.config
    );

    // Again: everything is in the store, nothing is downloaded.
    let again = pull_image(&client, &reference(&target), &store)
        .await
        .unwrap();
    assert_eq!(again, pulled);
    assert_eq!(
        registry.count_requests("GET", "/blobs/", "200"),
        3,
        "{}",
        registry.access_log()
    );

    // By digest, and for inspect.
    let by_digest = format!("{}/base@{}", registry.host(), pushed.digest);
    let (manifest, digest, config) = fetch_manifest_and_config(&client, &reference(&by_digest))
        .await
        .unwrap();
    assert_eq!(
        (manifest, digest, config),
        (
            image.manifest.clone(),
            pushed.digest.clone(),
            image.config.clone()
        )
    );

    // A missing tag is NotFound, naming the image.
    let missing = format!("{}/base:nope", registry.host());
    let err = pull_image(&client, &reference(&missing), &store)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("base:nope"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_picks_a_platform_from_a_multi_platform_index() {
    let registry = TestRegistry::start_plain();
    let image = make_image("multi");
    let client = client();
    let platform_ref = format!("{}/multi:amd64", registry.host());
    let pushed = push(&client, &platform_ref, &image, &PushOptions::default())
        .await
        .unwrap();

    // An index with an image for a platform nobody runs, and ours for linux/amd64 (the
    // fallback) and this machine's architecture.
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let entry = |arch: &str| {
        serde_json::json!({
            "mediaType": OCI_MANIFEST,
            "digest": pushed.digest,
            "size": image.manifest.len(),
            "platform": {"os": "linux", "architecture": arch},
        })
    };
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry("s390x-unknown"), entry(arch)],
    }))
    .unwrap();
    let url = format!("http://{}/v2/multi/manifests/latest", registry.host());
    let put = reqwest::Client::new()
        .put(&url)
        .header("Content-Type", "application/vnd.oci.image.index.v1+json")
        .body(index)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 201, "{}", put.text().await.unwrap());

    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path().join("blobs")).unwrap();
    let pulled = pull_image(
        &client,
        &reference(&format!("{}/multi", registry.host())),
        &store,
    )
    .await
    .unwrap();
    assert_eq!(pulled.manifest_digest, pushed.digest);
    assert_eq!(pulled.layers, image.layers);
}

/// Docker Hub serves busybox as a docker manifest list of docker v2 manifests: both are read,
/// the list's arm64 entry spelt without a variant and ours for this machine.
#[tokio::test(flavor = "multi_thread")]
async fn pull_reads_docker_manifest_lists_and_manifests() {
    let registry = TestRegistry::start_plain();
    let mut image = make_image("docker");
    for layer in &mut image.layers {
        layer.media_type = DOCKER_LAYER_GZIP.into();
    }
    image.config_desc.media_type = DOCKER_CONFIG.into();
    image.manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": image.config_desc,
        "layers": image.layers,
    }))
    .unwrap();
    let client = client();
    let pushed = push(
        &client,
        &format!("{}/docker:amd64", registry.host()),
        &image,
        &PushOptions::default(),
    )
    .await
    .unwrap();
    let entry = |arch: &str| {
        serde_json::json!({
            "mediaType": DOCKER_MANIFEST,
            "digest": pushed.digest,
            "size": image.manifest.len(),
            "platform": {"os": "linux", "architecture": arch},
        })
    };
    let list = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_LIST,
        "manifests": [entry("s390x-unknown"), entry(host_architecture())],
    }))
    .unwrap();
    let put = reqwest::Client::new()
        .put(format!(
            "http://{}/v2/docker/manifests/latest",
            registry.host()
        ))
        .header("Content-Type", DOCKER_MANIFEST_LIST)
        .body(list)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 201, "{}", put.text().await.unwrap());

    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path().join("blobs")).unwrap();
    let pulled = pull_image(
        &client,
        &reference(&format!("{}/docker", registry.host())),
        &store,
    )
    .await
    .unwrap();
    assert_eq!(pulled.manifest_digest, pushed.digest);
    assert_eq!(pulled.media_type, DOCKER_MANIFEST);
    assert_eq!(pulled.layers, image.layers);
    assert_eq!(pulled.config_descriptor, image.config_desc);
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_uploads_work_with_distribution_too() {
    let registry = TestRegistry::start_plain();
    let image = make_image("chunked");
    let client = RegistryClient::new(RegistryOptions {
        upload_mode: UploadMode::Chunked,
        ..options()
    })
    .unwrap();
    let target = format!("{}/chunked:1", registry.host());
    let report = push(&client, &target, &image, &PushOptions::default())
        .await
        .unwrap();
    assert_eq!(report.uploaded.len(), 3);
    assert_eq!(skopeo_inspect(&target)["Digest"], report.digest.as_str());
    assert!(
        registry.count_requests("PATCH", "/blobs/uploads/", "202") >= 3,
        "{}",
        registry.access_log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_registry_with_a_login() {
    let registry = TestRegistry::start_tls_htpasswd("ci", "right-pass-7");
    let image = make_image("secure");
    let target = format!("{}/secure:1", registry.host());
    let with_ca = || RegistryOptions {
        ca_file: Some(registry.ca_file().to_path_buf()),
        ..options()
    };

    // The right password, with the registry's CA.
    let mut client = RegistryClient::new(with_ca()).unwrap();
    client.set_credentials(
        &registry.host(),
        Credentials::from_cli("ci", "right-pass-7"),
    );
    let report = push(&client, &target, &image, &PushOptions::default())
        .await
        .unwrap();
    assert_eq!(report.uploaded.len(), 3);
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let pulled = pull_image(&client, &reference(&target), &store)
        .await
        .unwrap();
    assert_eq!(pulled.manifest_digest, report.digest);

    // A wrong password: Unauthorized, naming the registry and user, never the password.
    let mut wrong = RegistryClient::new(with_ca()).unwrap();
    wrong.set_credentials(
        &registry.host(),
        Credentials::from_cli("ci", "wrong-pass-3"),
    );
    let uploads = registry.upload_count();
    let err = push(
        &wrong,
        &format!("{}/secure:2", registry.host()),
        &image,
        &PushOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(err.is_unauthorized(), "{err:?}");
    assert!(matches!(err, RegistryError::Unauthorized { .. }));
    assert_eq!(err.exit_code(), 1);
    let message = err.to_string();
    assert!(
        message.contains(&registry.host()) && message.contains("`ci`"),
        "{message}"
    );
    assert!(
        !message.contains("wrong-pass-3") && !format!("{err:?}").contains("wrong-pass-3"),
        "{message}"
    );
    assert_eq!(
        registry.upload_count(),
        uploads,
        "nothing is uploaded with a wrong password"
    );

    // No credentials at all.
    let anonymous = RegistryClient::new(with_ca()).unwrap();
    let err = pull_image(&anonymous, &reference(&target), &store)
        .await
        .unwrap_err();
    assert!(err.is_unauthorized(), "{err}");
    assert!(err.to_string().contains("requires a login"), "{err}");

    // Credentials from a docker config.json (`auths`, base64 user:password), dir passed explicitly.
    let docker = tempfile::tempdir().unwrap();
    let auth = STANDARD.encode(b"ci:right-pass-7");
    std::fs::write(
        docker.path().join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
            registry.host()
        ),
    )
    .unwrap();
    let from_config = RegistryClient::new(RegistryOptions {
        docker_config_dir: Some(docker.path().to_path_buf()),
        ..with_ca()
    })
    .unwrap();
    let report = push(
        &from_config,
        &format!("{}/secure:3", registry.host()),
        &image,
        &PushOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.skipped.len(), 3, "{report:?}");

    // Without the CA the certificate is not trusted, and the message says what to pass.
    let no_ca = RegistryClient::new(options()).unwrap();
    let err = pull_image(&no_ca, &reference(&target), &store)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("--ca-file"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_token_registry_with_a_login() {
    let tokens = TokenServer::start("ci", "token-pass-5");
    let registry = TestRegistry::start_with_tokens(&tokens);
    let image = make_image("tokened");
    let target = format!("{}/st2/tokened:1", registry.host());
    let logged_in = |password: &str| {
        let mut client = RegistryClient::new(options()).unwrap();
        client.set_credentials(&registry.host(), Credentials::from_cli("ci", password));
        client
    };

    // The right login: the client trades it for tokens at the realm; push and pull go through.
    let client = logged_in("token-pass-5");
    let report = push(&client, &target, &image, &PushOptions::default())
        .await
        .unwrap();
    assert_eq!(report.uploaded.len(), 3);
    assert!(tokens.issued() > 0, "no token was asked for");
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let pulled = pull_image(&client, &reference(&target), &store)
        .await
        .unwrap();
    assert_eq!(pulled.manifest_digest, report.digest);
    let inspected = skopeo_inspect_with(&target, &["--creds", "ci:token-pass-5"]);
    assert_eq!(inspected["Digest"], report.digest.as_str());

    // Another repository, mounting from the first: the token covers both repositories.
    let opts = PushOptions {
        mount_from: Some(reference(&target)),
        ..PushOptions::default()
    };
    let other = format!("{}/team/tokened:1", registry.host());
    let report = push(&client, &other, &image, &opts).await.unwrap();
    assert_eq!(sorted(report.mounted), all_digests(&image));
    assert_eq!(registry.mount_count(), 3, "{}", registry.access_log());

    // A wrong password: the token server refuses it, and the error names the registry and the
    // user, never the password; nothing is uploaded.
    let uploads = registry.upload_count();
    let refused = tokens.refused();
    let err = push(
        &logged_in("wrong-pass-8"),
        &format!("{}/st2/tokened:2", registry.host()),
        &image,
        &PushOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(err.is_unauthorized(), "{err:?}");
    assert_eq!(err.exit_code(), 1);
    let message = err.to_string();
    assert!(
        message.contains(&registry.host()) && message.contains("`ci`"),
        "{message}"
    );
    assert!(!format!("{message} {err:?}").contains("wrong-pass-8"));
    assert!(tokens.refused() > refused);
    assert_eq!(registry.upload_count(), uploads);

    // No login at all.
    let anonymous = RegistryClient::new(options()).unwrap();
    let err = pull_image(&anonymous, &reference(&target), &store)
        .await
        .unwrap_err();
    assert!(err.is_unauthorized(), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_registry_fails_fast_naming_it() {
    // A closed port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let image = make_image("nowhere");
    let client = client();
    let started = Instant::now();
    let err = push(
        &client,
        &format!("127.0.0.1:{port}/x:1"),
        &image,
        &PushOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );

    // A port that accepts connections and never answers: bounded by the timeouts.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let client = RegistryClient::new(RegistryOptions {
        connect_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(1),
        ..options()
    })
    .unwrap();
    let started = Instant::now();
    let err = pull_image(
        &client,
        &reference(&format!("127.0.0.1:{port}/x:1")),
        &image.store,
    )
    .await
    .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    drop(silent);
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_upload_failures_are_retried() {
    let registry = TestRegistry::start_plain();
    let image = make_image("flaky");
    let client = client();
    for (fault, repo) in [
        (Fault::Reply503, "flaky503"),
        (Fault::DropMidUpload, "flakydrop"),
    ] {
        let proxy = FaultProxy::start(registry.port(), fault, 2);
        let target = format!("{}/{repo}:1", proxy.host());
        let report = push(&client, &target, &image, &PushOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert_eq!(proxy.faults(), 2, "{fault:?}");
        assert_eq!(sorted(report.uploaded), all_digests(&image), "{fault:?}");
        assert_eq!(
            registry.upload_count_in(repo),
            3,
            "{fault:?}: {}",
            registry.access_log()
        );
        let inspected = skopeo_inspect(&format!("{}/{repo}:1", registry.host()));
        assert_eq!(inspected["Digest"], report.digest.as_str());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_the_registry_never_answers_times_out_and_is_retried() {
    let registry = TestRegistry::start_plain();
    let image = make_image("stalled");
    let client = RegistryClient::new(RegistryOptions {
        read_timeout: Duration::from_secs(1),
        ..options()
    })
    .unwrap();
    let proxy = FaultProxy::start(registry.port(), Fault::Stall, 1);
    let started = Instant::now();
    let report = push(
        &client,
        &format!("{}/stalled:1", proxy.host()),
        &image,
        &PushOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(proxy.faults(), 1);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(sorted(report.uploaded), all_digests(&image));
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_that_always_fail_leave_no_tag() {
    let registry = TestRegistry::start_plain();
    let image = make_image("doomed");
    let client = client();
    let proxy = FaultProxy::start(registry.port(), Fault::Reply503, usize::MAX);
    let err = push(
        &client,
        &format!("{}/doomed:1", proxy.host()),
        &image,
        &PushOptions::default(),
    )
    .await
    .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, RegistryError::GaveUp { attempts: 5, .. }),
        "{err:?}"
    );
    assert!(
        message.contains("503") && message.contains("after 5 attempts"),
        "{message}"
    );
    assert!(message.contains(&proxy.host()), "{message}");

    // The manifest was never written: the tag does not exist.
    let err = fetch_manifest_and_config(
        &client,
        &reference(&format!("{}/doomed:1", registry.host())),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");
    assert_eq!(registry.count_requests("PUT", "/manifests/", "201"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_that_does_not_match_the_blobs_is_refused_before_any_upload() {
    let registry = TestRegistry::start_plain();
    let image = make_image("mismatch");
    let client = client();
    let err = push_image(
        &client,
        &reference(&format!("{}/mismatch:1", registry.host())),
        &image.store,
        (&image.config, &image.config_desc),
        &image.layers[..1],
        &image.manifest,
        &PushOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RegistryError::InvalidImage { .. }), "{err:?}");
    assert_eq!(registry.upload_count(), 0);
}
