//! The studio over 10,000 threads and a 10,000-step thread: how long its API takes to list a page
//! of threads and to open the long thread (its view, the last page of its timeline, its state
//! half-way), against reading the same from the store directly, in the same run.
//!
//! `cargo bench -p slateflow --features studio --bench studio`. The store is the memory store, so
//! the figures are the studio's own work (reading, rebuilding, JSON, HTTP on 127.0.0.1) over the
//! store's: a file or SQLite store adds its read of the records to both sides. Figures are medians
//! in milliseconds, with the ratio to the direct read.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use slateflow::checkpoint::{CheckpointStore, MemoryStore, RecordKind, Records, StepRecord};
use slateflow::flow;
use slateflow::studio::Studio;
use support::{Ticks, median, tick};

const THREADS: usize = 10_000;
const STEPS: u64 = 10_000;

/// A plain HTTP/1.1 GET; the body's length, after checking the status.
fn get(address: SocketAddr, path: &str) -> usize {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    assert!(response.starts_with(b"HTTP/1.1 200"), "{path}");
    response.len()
}

fn report(name: &str, studio: Duration, direct: Duration) {
    let ms = |time: Duration| time.as_secs_f64() * 1e3;
    println!(
        "{name:<44} studio {:>8.2} ms   store read {:>8.2} ms   ratio {:>6.1}x",
        ms(studio),
        ms(direct),
        studio.as_secs_f64() / direct.as_secs_f64()
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = MemoryStore::new();
    runtime.block_on(async {
        for index in 0..THREADS {
            let start = StepRecord::new(0, RecordKind::Start)
                .with_snapshot(serde_json::json!({ "ticks": 0, "until": 1 }));
            let claim = store
                .create(&format!("thread-{index:05}"), "Other", &[start])
                .await
                .unwrap();
            drop(claim);
        }
    });
    // The long thread, run for real; the flow lives as long as the program, as the studio does.
    let ticking: &'static _ = Box::leak(Box::new(
        flow! {
            tick;
            tick - "again" >> tick;
        }
        .with_max_steps(STEPS + 1),
    ));
    let durable = ticking.durable(store.clone()).named("ticks");
    let mut ticks = Ticks {
        until: STEPS,
        ..Ticks::default()
    };
    runtime.block_on(durable.start("long", &mut ticks)).unwrap();
    assert_eq!(ticks.ticks, STEPS);
    let (ready, address) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let server = Studio::of(durable).bind("127.0.0.1:0").await.unwrap();
            ready.send(server.local_addr()).unwrap();
            server.run().await.unwrap();
        });
    });
    let address = address.recv().unwrap();
    let samples = 15;

    let list = median(samples, || {
        get(address, "/api/threads?limit=50");
    });
    let threads = median(samples, || {
        assert_eq!(
            runtime.block_on(store.threads()).unwrap().len(),
            THREADS + 1
        );
    });
    report("a page of 50 of 10,001 threads", list, threads);

    let read_long = median(samples, || {
        let log = runtime.block_on(store.load("long", Records::All)).unwrap();
        assert_eq!(log.last_step, STEPS);
    });
    let view = median(samples, || {
        get(address, "/api/threads/long");
    });
    report("a 10,000-step thread's view", view, read_long);
    let last_page = median(samples, || {
        get(
            address,
            &format!("/api/threads/long/history?offset={}&limit=100", STEPS - 99),
        );
    });
    report("  the last page of its timeline", last_page, read_long);
    let state = median(samples, || {
        get(address, "/api/threads/long/state?step=5000");
    });
    report("  its state after step 5,000 (rebuilt)", state, read_long);
    let open = median(samples, || {
        get(address, "/api/threads/long");
        get(
            address,
            &format!("/api/threads/long/history?offset={}&limit=100", STEPS - 99),
        );
        get(address, "/api/threads/long/state");
    });
    report(
        "opening it in the page (the three together)",
        open,
        read_long,
    );
}
