//! Running the real `corral` binary as a child process, for crash, restart and signal tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// A `corral serve` child process on a loopback port.
pub struct NodeProcess {
    child: Child,
    pub port: u16,
    data_dir: PathBuf,
    env: Vec<(String, String)>,
}

/// A free loopback port (bound then released; fine for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl NodeProcess {
    /// Starts `corral serve` with `data_dir` and extra `CORRAL_...` environment, and waits
    /// until `/healthz` answers.
    pub async fn start(data_dir: &Path, env: &[(&str, &str)]) -> NodeProcess {
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        NodeProcess::spawn(data_dir.to_path_buf(), free_port(), env).await
    }

    async fn spawn(data_dir: PathBuf, port: u16, env: Vec<(String, String)>) -> NodeProcess {
        let child = Command::new(env!("CARGO_BIN_EXE_corral"))
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(&data_dir)
            .env("CORRAL_LOG__FILTER", "warn")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn corral");
        let node = NodeProcess {
            child,
            port,
            data_dir,
            env,
        };
        node.wait_healthy().await;
        node
    }

    /// Waits (up to 30 s) for `/healthz`.
    pub async fn wait_healthy(&self) {
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(resp) = client.get(self.url("/healthz")).send().await
                && resp.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("corral on port {} did not become healthy", self.port);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (by name, e.g. "TERM", "KILL") to this child only.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits (up to `limit`) for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// SIGKILLs the process (a crash) and reaps it.
    pub async fn crash(&mut self) {
        self.signal("KILL");
        self.wait_exit(Duration::from_secs(10))
            .await
            .expect("killed");
    }

    /// Starts the same node again (same port, data dir and environment).
    pub async fn restart(&mut self) {
        let fresh = NodeProcess::spawn(self.data_dir.clone(), self.port, self.env.clone()).await;
        let old = std::mem::replace(self, fresh);
        std::mem::forget(old);
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
