//! Running the real `corral` binary as a child process, for crash, restart, signal and log
//! tests: the one way the suite starts, signals, kills and restarts a server process
//! ([`NodeProcess`]; [`Launch`] for more than a data directory and environment). One-shot
//! commands (`migrate`, `admin`, a start that must fail) run [`corral`] directly.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use super::wait::wait_until;

/// How long a starting node may take to answer `/readyz` (migrations on a loaded host).
const BOOT: Duration = Duration::from_secs(60);

/// How long a node may take to drain and exit after SIGTERM.
const STOP: Duration = Duration::from_secs(30);

/// A `corral serve` child process on a loopback port. Dropping it kills it.
pub struct NodeProcess {
    child: Child,
    pub port: u16,
    data_dir: PathBuf,
    launch: Launch,
    /// With [`Output::Captured`]: the threads reading the process's stdout and stderr.
    readers: Option<(JoinHandle<String>, JoinHandle<String>)>,
}

/// How a node process starts, beyond its data directory: its environment and where its
/// output goes. [`NodeProcess::start`] takes the defaults with extra environment.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// Extra environment (`CORRAL_...`), over the quiet log filter [`corral`] sets.
    pub env: Vec<(String, String)>,
    /// Variables removed from the environment the test runs in.
    pub env_remove: Vec<String>,
    /// Where the process's standard output and error go.
    pub output: Output,
}

/// Where a node process's standard output and error go.
#[derive(Debug, Clone, Default)]
pub enum Output {
    /// Output dropped, errors on the test's own stderr.
    #[default]
    Quiet,
    /// Both kept, for [`NodeProcess::captured`] once the process has exited.
    Captured,
    /// Both appended to this file (created if missing), across restarts.
    File(PathBuf),
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
        NodeProcess::start_with(
            data_dir,
            Launch {
                env,
                ..Launch::default()
            },
        )
        .await
    }

    /// Starts `corral serve` on a free port with `data_dir` as `launch` says, and waits until
    /// `/readyz` answers. The port was free when picked, but [`free_port`] releases it and
    /// another process (an outgoing connection, another test) may take it first: a node that
    /// exits while starting is started again on another port, twice at most.
    pub async fn start_with(data_dir: &Path, launch: Launch) -> NodeProcess {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let port = free_port();
            let (child, readers) = spawn(data_dir, port, &launch);
            let mut node = NodeProcess {
                child,
                port,
                data_dir: data_dir.to_path_buf(),
                launch: launch.clone(),
                readers,
            };
            match node.ready_or_exit().await {
                None => return node,
                Some(status) if attempts < 3 => {
                    eprintln!("corral exited while starting on port {port} ({status}); again");
                }
                Some(status) => panic!("corral exited while starting: {status}"),
            }
        }
    }

    /// Waits until `/readyz` answers 200; fails at once if the process exits meanwhile.
    pub async fn wait_ready(&mut self) {
        if let Some(status) = self.ready_or_exit().await {
            panic!("corral exited while starting: {status}");
        }
    }

    /// Waits until `/readyz` answers 200 (`None`) or the process exits (its status).
    async fn ready_or_exit(&mut self) -> Option<ExitStatus> {
        let http = reqwest::Client::new();
        let url = self.url("/readyz");
        let child = &mut self.child;
        wait_until("the node answers /readyz", BOOT, async || {
            if let Ok(Some(status)) = child.try_wait() {
                return Ok(Some(status));
            }
            match http.get(&url).send().await {
                Ok(resp) if resp.status().is_success() => Ok(None),
                Ok(resp) => Err(format!("status {}", resp.status())),
                Err(err) => Err(err.to_string()),
            }
        })
        .await
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

    /// SIGTERMs the process (a clean stop: drain, flush) and waits for it to exit.
    pub async fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit(STOP)
            .await
            .unwrap_or_else(|| panic!("corral did not exit within {STOP:?} of SIGTERM"))
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
        let (child, readers) = spawn(&self.data_dir, self.port, &self.launch);
        self.child = child;
        self.readers = readers;
        self.wait_ready().await;
    }

    /// With [`Output::Captured`], after the process exited: its standard output, then its
    /// standard error.
    pub fn captured(&mut self) -> String {
        let (stdout, stderr) = self
            .readers
            .take()
            .expect("a node started with Output::Captured");
        let mut text = stdout.join().expect("stdout reader");
        text.push_str(&stderr.join().expect("stderr reader"));
        text
    }
}

/// The `corral` binary built for these tests, quiet but for warnings.
pub fn corral() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_corral"));
    command.env("CORRAL_LOG__FILTER", "warn");
    command
}

type Readers = Option<(JoinHandle<String>, JoinHandle<String>)>;

fn spawn(data_dir: &Path, port: u16, launch: &Launch) -> (Child, Readers) {
    let mut command = corral();
    command
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(data_dir)
        .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    for name in &launch.env_remove {
        command.env_remove(name);
    }
    match &launch.output {
        Output::Quiet => command.stdout(Stdio::null()).stderr(Stdio::inherit()),
        Output::Captured => command.stdout(Stdio::piped()).stderr(Stdio::piped()),
        Output::File(path) => {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("log file");
            command.stdout(log.try_clone().expect("log")).stderr(log)
        }
    };
    let mut child = command.spawn().expect("spawn the corral binary");
    // Read while the process runs, so a full pipe never blocks it.
    let readers = match (child.stdout.take(), child.stderr.take()) {
        (Some(stdout), Some(stderr)) => Some((read_all(stdout), read_all(stderr))),
        _ => None,
    };
    (child, readers)
}

fn read_all(mut from: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.crash();
    }
}
