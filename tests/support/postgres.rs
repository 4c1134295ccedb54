//! A real PostgreSQL server for the tests that need one: a throw-away cluster made with Debian's
//! PostgreSQL (`initdb`, `pg_ctl`) in a temporary folder, listening on 127.0.0.1 on a free port,
//! started once per test program and stopped and removed when that program exits (a watchdog
//! process waits for it). Run as root, the cluster is made and run by the `postgres` user, since
//! PostgreSQL refuses to run as root.
//!
//! `SLATEFLOW_TEST_POSTGRES=postgres://user@host:port` uses a server of your own instead (the user
//! must be allowed to create databases). When no server can be started, [`database`] says why and
//! the test is skipped, unless `SLATEFLOW_REQUIRE_POSTGRES=1` is set (as CI does): then it fails.
//!
//! Our server speaks TLS (`ssl=on`) with a certificate for `localhost` made at its start by an
//! authority made then too ([`certificates`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// A running server: where to reach it, and the tools to manage it.
pub(crate) struct Server {
    /// `postgres://user@host:port`, without a database.
    pub(crate) base: String,
    host: String,
    port: u16,
    user: String,
    bin: Option<PathBuf>,
    /// The folder of the certificates the server's TLS uses (ours only).
    certificates: Option<PathBuf>,
}

/// The authorities of the test server's TLS, made when it started: `ca.pem` signed its
/// certificate (for the name `localhost`, not for `127.0.0.1`); `other-ca.pem` signed nothing it
/// shows. `None` on a server of the developer's own.
pub(crate) fn certificates() -> Option<(PathBuf, PathBuf)> {
    let Some(Ok(server)) = SERVER.get() else {
        panic!("no test server: call `database` first");
    };
    let dir = server.certificates.as_ref()?;
    Some((dir.join("ca.pem"), dir.join("other-ca.pem")))
}

/// Makes two authorities and a certificate for `localhost` signed by the first, in `dir`, with
/// the `openssl` program (which Debian's `postgresql` brings, through `ssl-cert`).
fn make_certificates(dir: &Path) -> Result<(), String> {
    let openssl = |args: &[&str]| {
        run(
            Command::new("openssl").current_dir(dir).args(args),
            &format!("openssl {}", args[0]),
        )
    };
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for ca in ["ca", "other-ca"] {
        let (key_file, pem, subject) = (
            format!("{ca}.key"),
            format!("{ca}.pem"),
            format!("/CN=slateflow test {ca}"),
        );
        let mut args = vec!["req", "-x509"];
        args.extend(key);
        args.extend([
            "-keyout", &key_file, "-out", &pem, "-days", "2", "-subj", &subject,
        ]);
        openssl(&args)?;
    }
    let mut args = vec!["req"];
    args.extend(key);
    args.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(&args)?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n\
         extendedKeyUsage=serverAuth\n",
    )
    .map_err(|error| format!("server.ext: {error}"))?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ])?;
    // PostgreSQL refuses a key others can read.
    std::fs::set_permissions(
        dir.join("server.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .map_err(|error| format!("server.key: {error}"))
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();

/// A new, empty database named `name` (dropped first if an earlier run left it), and its URL;
/// `None`, after saying why, when no server can be started and CI does not require one. The
/// server does not flush to disk (`fsync=off`): the tests kill workers, never the server.
pub(crate) fn database(name: &str) -> Option<String> {
    open(name, false)
}

/// As [`database`], on a server that flushes every commit to disk, as in production: for
/// benchmarks. Whichever of the two is called first starts the server.
pub(crate) fn durable_database(name: &str) -> Option<String> {
    open(name, true)
}

fn open(name: &str, fsync: bool) -> Option<String> {
    let server = match SERVER.get_or_init(|| start(fsync)) {
        Ok(server) => server,
        Err(reason) => {
            assert!(
                std::env::var_os("SLATEFLOW_REQUIRE_POSTGRES").is_none(),
                "PostgreSQL is required (SLATEFLOW_REQUIRE_POSTGRES is set) but could not start: \
                 {reason}"
            );
            eprintln!("skipped: this test needs PostgreSQL, which could not start: {reason}");
            return None;
        }
    };
    server.sql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
    );
    server.sql("postgres", &format!("CREATE DATABASE \"{name}\""));
    Some(format!("{}/{name}", server.base))
}

/// Runs `sql` in the database `name` of the test server, as another program would; returns what
/// `psql` printed.
pub(crate) fn sql(name: &str, sql: &str) -> String {
    let Some(Ok(server)) = SERVER.get() else {
        panic!("no test server: call `database` first");
    };
    server.sql(name, sql)
}

/// A runtime with the I/O and timers a PostgreSQL store needs.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

impl Server {
    fn sql(&self, database: &str, sql: &str) -> String {
        let psql = self
            .bin
            .as_ref()
            .map_or_else(|| PathBuf::from("psql"), |bin| bin.join("psql"));
        let output = Command::new(psql)
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", &self.host, "-p", &self.port.to_string()])
            .args(["-U", &self.user, "-d", database, "-c", sql])
            .output()
            .expect("psql runs");
        assert!(
            output.status.success(),
            "psql failed on `{sql}`: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }
}

fn start(fsync: bool) -> Result<Server, String> {
    if let Ok(url) = std::env::var("SLATEFLOW_TEST_POSTGRES") {
        return own_server(&url);
    }
    let bin = bin_dir().ok_or(
        "no `initdb` in /usr/lib/postgresql/*/bin or on PATH: install \
                               Debian's `postgresql` package",
    )?;
    // In the system's temporary folder, which the `postgres` user can reach.
    let root = std::env::temp_dir().join(format!("slateflow-postgres-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).map_err(|error| format!("{}: {error}", root.display()))?;
    let data = root.join("data");
    let certificates = root.join("certificates");
    std::fs::create_dir_all(&certificates)
        .map_err(|error| format!("{}: {error}", certificates.display()))?;
    make_certificates(&certificates)?;
    let as_postgres = is_root();
    if as_postgres {
        run(
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&root),
            "chown",
        )?;
    }
    let tool = |name: &str| {
        let path = bin.join(name);
        if as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    };
    let user = "slateflow";
    run(
        tool("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                user,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "-D",
            ])
            .arg(&data),
        "initdb",
    )?;
    let port = free_port()?;
    let options = format!(
        "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync={} -c max_connections=200 \
         -c ssl=on -c ssl_cert_file={cert} -c ssl_key_file={key}",
        root.display(),
        if fsync { "on" } else { "off" },
        cert = certificates.join("server.pem").display(),
        key = certificates.join("server.key").display(),
    );
    run(
        tool("pg_ctl")
            .args(["-w", "-t", "60", "-o", &options, "-l"])
            .arg(root.join("server.log"))
            .arg("-D")
            .arg(&data)
            .arg("start"),
        "pg_ctl start",
    )?;
    watch(&tool("pg_ctl"), &data, &root);
    Ok(Server {
        base: format!("postgres://{user}@127.0.0.1:{port}"),
        host: "127.0.0.1".into(),
        port,
        user: user.into(),
        bin: Some(bin),
        certificates: Some(certificates),
    })
}

/// A server of the developer's own.
fn own_server(url: &str) -> Result<Server, String> {
    let rest = url
        .strip_prefix("postgres://")
        .ok_or_else(|| format!("SLATEFLOW_TEST_POSTGRES `{url}` is not a postgres:// URL"))?;
    let (user, address) = rest.split_once('@').unwrap_or(("postgres", rest));
    let (host, port) = address.split_once(':').unwrap_or((address, "5432"));
    Ok(Server {
        base: url.trim_end_matches('/').to_string(),
        host: host.to_string(),
        port: port
            .trim_end_matches('/')
            .parse()
            .map_err(|_| format!("SLATEFLOW_TEST_POSTGRES `{url}` has no valid port"))?,
        user: user.to_string(),
        bin: None,
        certificates: None,
    })
}

/// Stops the server and removes its folder once this test program has exited.
fn watch(pg_ctl: &Command, data: &Path, root: &Path) {
    let stop = std::iter::once(pg_ctl.get_program())
        .chain(pg_ctl.get_args())
        .map(|part| format!("'{}'", part.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    let script = format!(
        "while [ -d /proc/{pid} ]; do sleep 0.5; done; {stop} -D '{data}' -m immediate stop; \
         rm -rf '{root}'",
        pid = std::process::id(),
        data = data.display(),
        root = root.display(),
    );
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("{what} did not start: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin`, or the folder of `initdb` on PATH.
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|error| format!("no free port on 127.0.0.1: {error}"))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|error| error.to_string())
}
