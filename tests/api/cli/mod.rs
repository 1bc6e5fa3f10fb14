//! The `corral` binary as a user runs it: the shared helpers, and a module per group of commands.

use crate::helpers::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod admin;
mod backup;
mod code;
mod conventions;
mod evaluate;
mod generate;
mod history;
mod import;
mod manual;
mod segment;
mod serve;

const BIN: &str = env!("CARGO_BIN_EXE_corral");

pub(crate) struct Cli {
    pub(crate) dir: tempfile::TempDir,
    database: String,
}

impl Cli {
    pub(crate) fn new() -> Self {
        if !on_postgres() {
            return Self::sqlite();
        }
        let dir = tempfile::tempdir().unwrap();
        let database = fresh_database_blocking(dir.path());
        Self { dir, database }
    }

    /// On a SQLite file, whichever backend the other tests run on: for what
    /// only the embedded backend has (files beside the database).
    pub(crate) fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database = format!("sqlite://{}", dir.path().join("cli.db").display());
        Self { dir, database }
    }

    pub(crate) fn on(database: &str) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            database: database.to_owned(),
        }
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .args(["--database", &self.database])
            .current_dir(self.dir.path())
            .env_remove("CORRAL_DATABASE_URL")
            .env_remove("CORRAL_CONFIG")
            .env_remove("CORRAL_LOG");
        if !self.database.starts_with("sqlite:") {
            // Where checkpoints go beside a SQLite file; a server on
            // PostgreSQL writes them only where it is told.
            command.env(
                "CORRAL_CHECKPOINT_DIR",
                self.dir.path().join("cli.db-checkpoints"),
            );
        }
        command
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A command that refuses its input may end before reading it all.
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        child.wait_with_output().unwrap()
    }

    /// Runs a command that must succeed and returns its stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    pub(crate) fn new_site(&self) -> Value {
        self.json(&["site", "create", "Shop", "--json"])
    }
}

/// Asserts a failure: non-zero exit, one line on stderr containing `needle`.
fn assert_fails(output: &Output, needle: &str) {
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(needle), "{stderr}");
}

/// A `corral serve --demo` child process on a free port.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
    pub(crate) curl: String,
    /// The demo banner, up to its last line (the curl line).
    pub(crate) banner: Vec<String>,
}

impl Server {
    /// The banner's `export SITE=… PK=… SK=… BASE=…` line.
    pub(crate) fn export_line(&self) -> &str {
        self.banner
            .iter()
            .map(|line| line.trim())
            .find(|line| line.starts_with("export SITE="))
            .expect("the demo banner has an export line")
    }

    /// (site_uuid, publishable_key, secret_key) as the banner shows them.
    fn banner_credentials(&self) -> [String; 3] {
        ["site_uuid:", "publishable_key:", "secret_key:"].map(|label| {
            self.banner
                .iter()
                .find_map(|line| line.trim().strip_prefix(label))
                .unwrap_or_else(|| panic!("no {label} in {:?}", self.banner))
                .trim()
                .to_owned()
        })
    }
}

/// Reads the demo banner of a `serve --demo` child up to its curl line,
/// which names the port it bound, and waits until it answers.
pub(crate) fn read_banner(mut child: Child) -> Server {
    let reader = BufReader::new(child.stdout.take().unwrap());
    let mut banner = Vec::new();
    for line in reader.lines() {
        let line = line.unwrap();
        let last = line.trim_start().starts_with("curl ");
        banner.push(line);
        if last {
            break;
        }
    }
    let curl = banner
        .last()
        .filter(|line| line.trim_start().starts_with("curl "))
        .unwrap_or_else(|| panic!("the demo banner has no curl line: {banner:?}"))
        .trim()
        .to_owned();
    let host = curl
        .split("'http://")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    let base = format!("http://{host}");
    wait_healthy(&base);
    Server {
        child,
        base,
        curl,
        banner,
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the server and reads its demo banner.
pub(crate) fn start_server(cli: &Cli) -> Server {
    start_demo(
        cli,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--rate-limit-per-minute",
            "0",
            "--demo",
        ],
    )
}

/// Starts `corral ARGS` (a `serve --demo`) and reads its banner.
pub(crate) fn start_demo(cli: &Cli, args: &[&str]) -> Server {
    let child = cli
        .command(args)
        .env("CORRAL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    read_banner(child)
}

fn wait_healthy(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(mut stream) = std::net::TcpStream::connect(base.trim_start_matches("http://")) {
            let _ =
                stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut reply = String::new();
            let _ = std::io::Read::read_to_string(&mut stream, &mut reply);
            if reply.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("server at {base} never became healthy");
}
