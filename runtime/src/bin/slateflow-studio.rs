//! `slateflow-studio`: the studio over any store, from the command line (feature `studio`).
//!
//! ```text
//! slateflow-studio --store <file:DIR | sqlite:FILE | postgres://...> [--address HOST:PORT] [--token TOKEN]
//! ```
//!
//! It lists the store's threads, shows each one's history, pauses and state (at the steps that
//! saved a snapshot), draws the flows of named threads from what the store kept of them, and
//! cancels and branches threads. It hosts no flow, so it runs none: to run, answer or rebuild
//! any step, serve a `slateflow::studio::Studio` from the application that has the flows.
//! `cargo install slateflow --features studio` installs it (add `sqlite` or `postgres` for those
//! stores).

use std::io::Write as _;
use std::process::ExitCode;

use slateflow::checkpoint::{CheckpointStore, FileStore};
use slateflow::studio::Studio;

const USAGE: &str = "usage: slateflow-studio --store <file:DIR | sqlite:FILE | postgres://...> \
                     [--address HOST:PORT] [--token TOKEN]

  --store     the store to show: a file store's folder, a SQLite file, or a PostgreSQL URL
  --address   where to listen (127.0.0.1:7878); another address than a loopback one needs a token
  --token     the token a change needs from a script (also SLATEFLOW_STUDIO_TOKEN); made at
              random when not given";

/// What the command line asks for.
struct Options {
    store: String,
    address: String,
    token: Option<String>,
}

fn main() -> ExitCode {
    let options = match options(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("slateflow-studio: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("slateflow-studio: cannot start a runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(open_and_serve(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("slateflow-studio: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the arguments; `None` for `--help`.
fn options(mut arguments: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let (mut store, mut address, mut token) = (None, None, None);
    while let Some(argument) = arguments.next() {
        let (name, inline) = match argument.split_once('=') {
            Some((name, value)) => (name.to_string(), Some(value.to_string())),
            None => (argument, None),
        };
        let slot = match name.as_str() {
            "--help" | "-h" => return Ok(None),
            "--store" => &mut store,
            "--address" => &mut address,
            "--token" => &mut token,
            other => return Err(format!("unknown argument `{other}`")),
        };
        let value = inline
            .or_else(|| arguments.next())
            .ok_or_else(|| format!("`{name}` needs a value"))?;
        *slot = Some(value);
    }
    Ok(Some(Options {
        store: store.ok_or("`--store` is needed: which store to show")?,
        address: address.unwrap_or_else(|| "127.0.0.1:7878".into()),
        token: token.or_else(|| std::env::var("SLATEFLOW_STUDIO_TOKEN").ok()),
    }))
}

/// Opens the store the options name and serves the studio over it.
async fn open_and_serve(options: Options) -> Result<(), String> {
    let spec = options.store.clone();
    if let Some(folder) = spec.strip_prefix("file:") {
        // A store to show exists already: opening one would make an empty folder.
        if !std::path::Path::new(folder).is_dir() {
            return Err(format!(
                "no folder `{folder}`: a file store is a folder of threads"
            ));
        }
        let store = FileStore::open(folder).map_err(|error| error.to_string())?;
        return serve(store, options).await;
    }
    if let Some(file) = spec.strip_prefix("sqlite:") {
        return sqlite(file, options).await;
    }
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        return postgres(options).await;
    }
    Err(format!(
        "`{spec}` names no store: give `file:DIR`, `sqlite:FILE` or `postgres://...`"
    ))
}

#[cfg(feature = "sqlite")]
async fn sqlite(file: &str, options: Options) -> Result<(), String> {
    if !std::path::Path::new(file).is_file() {
        return Err(format!(
            "no file `{file}`: a SQLite store is one database file"
        ));
    }
    let store =
        slateflow::checkpoint::SqliteStore::open(file).map_err(|error| error.to_string())?;
    serve(store, options).await
}

#[cfg(not(feature = "sqlite"))]
#[allow(clippy::unused_async)] // the same signature as the one with the store
async fn sqlite(_: &str, _: Options) -> Result<(), String> {
    Err(
        "this slateflow-studio was built without the SQLite store: install it with \
         `cargo install slateflow --features studio,sqlite`"
            .into(),
    )
}

#[cfg(feature = "postgres")]
async fn postgres(options: Options) -> Result<(), String> {
    let store = slateflow::checkpoint::PostgresStore::connect(&options.store)
        .await
        .map_err(|error| error.to_string())?;
    serve(store, options).await
}

#[cfg(not(feature = "postgres"))]
#[allow(clippy::unused_async)] // the same signature as the one with the store
async fn postgres(_: Options) -> Result<(), String> {
    Err(
        "this slateflow-studio was built without the PostgreSQL store: install it with \
         `cargo install slateflow --features studio,postgres`"
            .into(),
    )
}

async fn serve<St: CheckpointStore + 'static>(store: St, options: Options) -> Result<(), String> {
    let mut studio = Studio::new(store);
    if let Some(token) = options.token {
        studio = studio.token(token);
    }
    let server = studio
        .bind(options.address.as_str())
        .await
        .map_err(|error| error.to_string())?;
    // Said, not required: a studio whose output was closed serves on.
    let mut out = std::io::stdout();
    let _ = writeln!(out, "the studio is at {}", server.url());
    let _ = writeln!(
        out,
        "scripts change threads with the header `Authorization: Bearer {}`",
        server.token()
    );
    let _ = out.flush();
    server.run().await.map_err(|error| error.to_string())
}
