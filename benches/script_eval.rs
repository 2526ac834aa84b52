//! How long one evaluation of a compiled body takes: the tutorial's agent and timer bodies and
//! a JSON transform. Not a test: run it with `cargo bench --bench script_eval` and read the
//! figures (median and best of several runs, in nanoseconds per evaluation).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use faust_rs::codec::Datum;
use faust_rs::script::{
    BodyKind, Event, Host, PrintSink, Script, ScriptEngine, ScriptLimits, ScriptNames, StaticHost,
};
use serde_json::json;

const RUNS: usize = 9;
const TARGET_RUN: std::time::Duration = std::time::Duration::from_millis(200);

fn event(value: serde_json::Value) -> Event {
    Event {
        value: Datum::Value(value),
        key: Datum::NULL,
        topic: "leader-example-say".into(),
        partition: 0,
        offset: 42,
        timestamp: Some(1_700_000_000_000),
        headers: Vec::new(),
    }
}

/// Evaluates `script` repeatedly and prints the median and best ns per evaluation.
fn bench(label: &str, engine: &ScriptEngine, script: &Script, event: Option<&Event>) {
    let host: Arc<dyn Host> = Arc::new(StaticHost {
        worker_id: "bench".into(),
        app_id: "leader-example".into(),
        is_leader: true,
        leader_epoch: Some(1),
    });
    let once = || {
        let outcome = script.run(engine, &host, event).expect("the body runs");
        black_box(outcome);
    };
    // Warm up, and size a run to about TARGET_RUN.
    let start = Instant::now();
    let mut calibration = 0u32;
    while start.elapsed() < TARGET_RUN / 4 {
        once();
        calibration += 1;
    }
    let iterations = (calibration * 4).max(100);
    let mut per_eval: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                once();
            }
            start.elapsed().as_nanos() as f64 / f64::from(iterations)
        })
        .collect();
    per_eval.sort_by(f64::total_cmp);
    println!(
        "{label:<44} median {:>8.0} ns/eval   best {:>8.0} ns/eval   ({RUNS} runs x {iterations})",
        per_eval[RUNS / 2],
        per_eval[0],
    );
}

fn main() {
    let mut engine = ScriptEngine::new(
        &ScriptLimits::default(),
        ScriptNames {
            agents: vec!["say".into()],
            tables: Vec::new(),
        },
    );
    engine.set_print_sink(PrintSink::Discard);

    let agent = engine.compile("print(value)").unwrap();
    let greeting = event(json!("0.8444218515250481"));
    bench("agent `print(value)`", &engine, &agent, Some(&greeting));

    let timer = engine
        .compile_for(
            BodyKind::Timer,
            r#"print("PUBLISHING ON LEADER!"); say.send(str(random()))"#,
        )
        .unwrap();
    bench(
        "timer `print(..); say.send(str(random()))`",
        &engine,
        &timer,
        None,
    );

    let transform = engine.compile("#{ id: value.id, n: value.n * 2 }").unwrap();
    let record = event(json!({"id": "order-17", "n": 21}));
    bench(
        "agent `#{ id: value.id, n: value.n * 2 }`",
        &engine,
        &transform,
        Some(&record),
    );

    let empty = engine.compile("()").unwrap();
    bench(
        "agent `()` (the fixed cost)",
        &engine,
        &empty,
        Some(&greeting),
    );

    // How long a runaway body holds its thread before the operation limit stops it.
    let endless = engine.compile("let n = 0; loop { n += 1; }").unwrap();
    let host: Arc<dyn Host> = Arc::new(StaticHost::default());
    let mut took: Vec<_> = (0..5)
        .map(|_| {
            let start = Instant::now();
            let error = endless.run(&engine, &host, Some(&greeting)).unwrap_err();
            black_box(error);
            start.elapsed()
        })
        .collect();
    took.sort();
    println!(
        "{:<44} median {:>8.1} ms until stopped (max_operations = {})",
        "agent `let n = 0; loop { n += 1; }`",
        took[2].as_secs_f64() * 1e3,
        engine.limits().max_operations
    );
}
