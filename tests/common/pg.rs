//! A real PostgreSQL server for one test: `initdb` into a temporary directory and `pg_ctl`
//! on a free local port (as the `postgres` user when the tests run as root, which initdb
//! refuses), stopped when dropped. The binaries come from `$ESTD_PG_BIN`, `pg_config
//! --bindir`, or the newest `/usr/lib/postgresql/*/bin`.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Pg {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    as_postgres: bool,
    /// The server's options (`pg_ctl -o`), to start it again the same way.
    opts: String,
}

fn bindir() -> PathBuf {
    if let Ok(dir) = std::env::var("ESTD_PG_BIN") {
        return PathBuf::from(dir);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .filter(|p| p.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().expect(
        "PostgreSQL is not installed (initdb not found): apt-get install postgresql, or set ESTD_PG_BIN",
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Pg {
    /// Starts a fresh server; `fsync` off unless `durable` (tests, not benchmarks).
    pub fn start() -> Pg {
        Self::start_with(false)
    }

    pub fn start_with(durable: bool) -> Pg {
        let bin = bindir();
        let dir = tempfile::Builder::new()
            .prefix("estd-pg")
            .tempdir()
            .unwrap();
        let as_postgres = is_root();
        if as_postgres {
            chown_postgres(dir.path());
        }
        let data = dir.path().join("data");
        let log = dir.path().join("log");
        run(
            as_postgres,
            &bin.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "estd",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        let port = free_port();
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200{}",
            dir.path().display(),
            if durable {
                ""
            } else {
                " -c fsync=off -c synchronous_commit=off"
            }
        );
        run(
            as_postgres,
            &bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        let pg = Pg {
            dir,
            bin,
            port,
            as_postgres,
            opts,
        };
        pg.psql("postgres", "CREATE DATABASE estd");
        pg
    }

    /// Stops the server (`-m fast`: its connections are cut), the first half of a restart.
    pub fn stop(&self) {
        let data = self.dir.path().join("data");
        run(
            self.as_postgres,
            &self.bin.join("pg_ctl"),
            &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"],
        );
    }

    /// Starts it again after `stop`, on the same port.
    pub fn start_again(&self) {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("log");
        run(
            self.as_postgres,
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &self.opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// The URL of a database on this server.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://estd@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs SQL with psql (creating databases, checking rows from outside estd).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "estd",
                "-d",
                db,
                "-tAq",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A new, empty database; its URL.
    pub fn create_db(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(name)
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = command(
            self.as_postgres,
            &self.bin.join("pg_ctl"),
            &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"],
        )
        .output();
    }
}

fn is_root() -> bool {
    // `id -u` rather than libc: no unsafe code in the tests
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn chown_postgres(dir: &Path) {
    let ok = Command::new("chown")
        .args(["-R", "postgres:postgres", dir.to_str().unwrap()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "chown postgres {}", dir.display());
}

fn command(as_postgres: bool, prog: &Path, args: &[&str]) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(prog).args(args);
        c
    } else {
        let mut c = Command::new(prog);
        c.args(args);
        c
    }
}

fn run(as_postgres: bool, prog: &Path, args: &[&str]) {
    let out = command(as_postgres, prog, args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", prog.display()));
    assert!(
        out.status.success(),
        "{} {args:?}: {}{}",
        prog.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
