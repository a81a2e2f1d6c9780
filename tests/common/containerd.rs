//! A real containerd on a private socket under a temporary directory, to do what
//! `kind load image-archive` does on a node: `ctr images import` into the `k8s.io` namespace,
//! which unpacks every layer into a snapshotter and checks it against the config's diff ids.
//! Only content and snapshots are used, so no container runtime, cgroups or network are needed.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const CONTAINERD_BIN: &str = "/usr/bin/containerd";

pub struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Containerd {
    pub fn start() -> Containerd {
        assert!(
            Path::new(CONTAINERD_BIN).exists(),
            "{CONTAINERD_BIN} is missing: install the containerd package (see .ci/run)"
        );
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // The CRI plugin would want a runtime and CNI; nothing here uses it.
        let config = format!(
            "version = 2\n\
             root = \"{root}/root\"\n\
             state = \"{root}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{root}/containerd.sock\"\n\
             [ttrpc]\n  address = \"{root}/containerd-ttrpc.sock\"\n\
             [debug]\n  address = \"\"\n\
             [metrics]\n  address = \"\"\n",
            root = root.display()
        );
        std::fs::write(root.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(root.join("containerd.log")).unwrap();
        let child = Command::new(CONTAINERD_BIN)
            .arg("--config")
            .arg(root.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("run containerd");
        let mut containerd = Containerd { child, dir };
        containerd.wait_until_serving();
        containerd
    }

    fn wait_until_serving(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("containerd exited with {status}: {}", self.log());
            }
            if self.ctr(&["version"]).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("containerd did not serve within 20 s: {}", self.log());
    }

    /// `ctr` against this containerd, in the namespace kubelet (and `kind load`) uses.
    pub fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.dir.path().join("containerd.sock"))
            .args(["--namespace", "k8s.io"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ctr (part of the containerd package)")
    }

    /// containerd's own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
