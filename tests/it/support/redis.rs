//! A `redis-server` of one test alone ([`PrivateRedis`]), on a free loopback port, that the
//! test may kill, start again empty, or pause; the shared Redis of the other tests is never
//! touched.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::node::free_port;
use super::{WAIT, unique, wait_until};

/// A `redis-server` of this test alone, on its own port, keeping nothing on disk: stopping
/// it and starting it again is Redis restarting empty.
pub struct PrivateRedis {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateRedis {
    pub async fn start() -> PrivateRedis {
        let dir = std::env::temp_dir().join(unique("corral-redis"));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut redis = PrivateRedis {
            port: free_port(),
            dir,
            child: None,
        };
        redis.run().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn run(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (CI installs it)");
        self.child = Some(child);
        wait_until("redis-server answers", WAIT, async || self.ping().await).await;
    }

    pub async fn ping(&self) -> redis::RedisResult<()> {
        let client = redis::Client::open(self.url())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        Ok(())
    }

    /// Kills the server: everything it held is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again, empty, on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        self.run().await;
    }

    /// `CLIENT PAUSE ms ALL`: Redis accepts commands and answers none for `ms`.
    pub async fn pause(&self, ms: u64) {
        let client = redis::Client::open(self.url()).expect("url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis");
        redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(ms)
            .arg("ALL")
            .query_async::<()>(&mut conn)
            .await
            .expect("client pause");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
