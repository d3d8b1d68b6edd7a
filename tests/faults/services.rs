//! The machine's PostgreSQL and RabbitMQ, which the fault suite stops and restarts, and the
//! processes it runs (the hub, the simulators).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

pub const PG_PORT: u16 = 5432;
pub const AMQP_PORT: u16 = 5672;

/// Marks every inherited descriptor above stderr close-on-exec, so nothing this process starts
/// (the hub, the simulators, and above all a restarted PostgreSQL or RabbitMQ that outlives the
/// run) keeps a lock or pipe the suite was started with.
pub fn close_inherited_fds() {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return };
    let fds: Vec<i32> = entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).filter(|fd| *fd > 2).collect();
    for fd in fds {
        // SAFETY: fcntl on a descriptor number only changes its flags (a closed one fails harmlessly).
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

pub fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)).is_ok()
}

pub async fn wait_port(port: u16, secs: u64) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if port_open(port) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// A free port on loopback (free when asked; nothing else on the machine races for it).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<std::net::TcpListener> = (0..N).map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port")).collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("a bound port").port())
}

async fn command(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program).args(args).stdin(Stdio::null()).output().await.map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{program} {}: {} {}", args.join(" "), out.status, String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn command_blocking(program: &str, args: &[&str]) {
    let _ = std::process::Command::new(program).args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status();
}

fn pg_version() -> String {
    std::fs::read_dir("/etc/postgresql").ok().and_then(|mut d| d.next()).and_then(|e| e.ok()).map(|e| e.file_name().to_string_lossy().to_string()).unwrap_or_else(|| "15".into())
}

/// The shared services. Dropped (at the end, or on a panic), it brings back whichever is down.
pub struct Services {
    pg_version: String,
}

impl Services {
    pub fn new() -> Services {
        Services { pg_version: pg_version() }
    }

    fn pg_ctl(&self, action: &str) -> Vec<String> {
        let mut args: Vec<String> = ["--skip-systemctl-redirect", &self.pg_version, "main", action].iter().map(|s| s.to_string()).collect();
        if action == "stop" {
            args.extend(["-m".into(), "immediate".into()]);
        }
        args
    }

    /// PostgreSQL stops in immediate mode (no checkpoint: a crash for its clients), stays down
    /// for `down`, then starts and recovers.
    pub async fn postgres_outage(&self, down: Duration) -> Result<(), String> {
        let stop = self.pg_ctl("stop");
        command("pg_ctlcluster", &stop.iter().map(String::as_str).collect::<Vec<_>>()).await?;
        tokio::time::sleep(down).await;
        let start = self.pg_ctl("start");
        command("pg_ctlcluster", &start.iter().map(String::as_str).collect::<Vec<_>>()).await?;
        if wait_port(PG_PORT, 60).await {
            Ok(())
        } else {
            Err("PostgreSQL did not come back".into())
        }
    }

    /// RabbitMQ closes every client connection.
    pub async fn broker_cut(&self) -> Result<(), String> {
        command("rabbitmqctl", &["close_all_connections", "fault suite"]).await
    }

    /// The RabbitMQ application stops (connections refused, queues offline) and starts again.
    pub async fn broker_restart(&self, down: Duration) -> Result<(), String> {
        command("rabbitmqctl", &["stop_app"]).await?;
        tokio::time::sleep(down).await;
        command("rabbitmqctl", &["start_app"]).await?;
        if wait_port(AMQP_PORT, 60).await {
            Ok(())
        } else {
            Err("RabbitMQ did not come back".into())
        }
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        if !port_open(PG_PORT) {
            eprintln!("fault suite: starting PostgreSQL again");
            let start = self.pg_ctl("start");
            command_blocking("pg_ctlcluster", &start.iter().map(String::as_str).collect::<Vec<_>>());
        }
        if !port_open(AMQP_PORT) {
            eprintln!("fault suite: starting RabbitMQ again");
            command_blocking("rabbitmqctl", &["start_app"]);
            if !port_open(AMQP_PORT) {
                command_blocking("rabbitmq-server", &["-detached"]);
                command_blocking("timeout", &["120", "rabbitmqctl", "await_startup"]);
            }
        }
    }
}

/// Variables that would override the configuration file the suite gives its processes.
const SETTINGS_ENV: [&str; 5] = ["SIAM_CONFIG", "SIAM_DATABASE_URL", "SIAM_AMQP_URL", "SIAM_LISTEN", "SIAM_PUBLIC_URL"];

/// A `siam-hub` process with its output appended to a log file; killed when dropped.
pub struct Proc {
    child: Child,
}

impl Proc {
    pub fn spawn(bin: &Path, args: &[&str], env: &[(String, String)], log: &Path) -> Result<Proc, String> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(bin);
        cmd.args(args).stdin(Stdio::null()).stdout(file).stderr(err).kill_on_drop(true);
        for var in SETTINGS_ENV {
            cmd.env_remove(var);
        }
        cmd.env("RUST_LOG", std::env::var("SIAM_FAULTS_LOG").unwrap_or_else(|_| "warn,lapin=error".into()));
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        let child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        Ok(Proc { child })
    }

    /// `kill -9`: no shutdown, no flush, whatever was in flight is cut.
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// SIGTERM, then waits (up to `wait`) for the process to finish on its own.
    pub async fn terminate(mut self, wait: Duration) {
        if let Some(pid) = self.child.id() {
            // SAFETY: signalling our own child by its pid.
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM);
            }
        }
        if tokio::time::timeout(wait, self.child.wait()).await.is_err() {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }

    /// Whether the process has ended (and how), without waiting.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

/// Runs a `siam-hub` command to its end and returns what it printed.
pub async fn siam_hub(bin: &Path, args: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new(bin);
    cmd.args(args).stdin(Stdio::null());
    for var in SETTINGS_ENV {
        cmd.env_remove(var);
    }
    let out = cmd.output().await.map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!("siam-hub {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}
