//! Running the real `corral` binary as a child process, for crash, restart and signal tests:
//! the one way the suite starts, signals, kills and restarts a server process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::wait::wait_until;

/// How long a starting node may take to answer `/readyz` (migrations on a loaded host).
const BOOT: Duration = Duration::from_secs(60);

/// A `corral serve` child process on a loopback port. Dropping it kills it.
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
    /// Starts `corral serve` on a free port with `data_dir` and extra `CORRAL_...`
    /// environment, and waits until `/readyz` answers.
    pub async fn start(data_dir: &Path, env: &[(&str, &str)]) -> NodeProcess {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let port = free_port();
        let mut node = NodeProcess {
            child: spawn(data_dir, port, &env),
            port,
            data_dir: data_dir.to_path_buf(),
            env,
        };
        node.wait_ready().await;
        node
    }

    /// Waits until `/readyz` answers 200; fails at once if the process exits meanwhile.
    pub async fn wait_ready(&mut self) {
        let http = reqwest::Client::new();
        let url = self.url("/readyz");
        let child = &mut self.child;
        wait_until("the node answers /readyz", BOOT, async || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("corral exited while starting: {status}");
            }
            match http.get(&url).send().await {
                Ok(resp) if resp.status().is_success() => Ok(()),
                Ok(resp) => Err(format!("status {}", resp.status())),
                Err(err) => Err(err.to_string()),
            }
        })
        .await;
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

    /// Sends a signal (by name, e.g. "TERM") to this child only.
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
        let child = &mut self.child;
        let waited = tokio::time::timeout(limit, async {
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    return status;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        waited.await.ok()
    }

    /// SIGKILLs the process (a crash: no drain, no flush) and reaps it.
    pub fn crash(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the node again after a crash or exit: same port, data directory and
    /// environment; waits until it is ready.
    pub async fn restart(&mut self) {
        self.crash();
        self.child = spawn(&self.data_dir, self.port, &self.env);
        self.wait_ready().await;
    }
}

/// The `corral` binary built for these tests, quiet but for warnings.
pub fn corral() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_corral"));
    command.env("CORRAL_LOG__FILTER", "warn");
    command
}

fn spawn(data_dir: &Path, port: u16, env: &[(String, String)]) -> Child {
    corral()
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(data_dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the corral binary")
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.crash();
    }
}
