//! Tests of the engine as the worker uses it: compile a body, run it, look at the outcome.

use std::sync::{Arc, Mutex};

use serde_json::json;

use super::*;
use crate::codec::Datum;

fn engine_with(limits: ScriptLimits) -> ScriptEngine {
    let mut engine = ScriptEngine::new(
        &limits,
        ScriptNames {
            agents: vec!["say".into(), "audit".into()],
            tables: vec![
                TableName {
                    name: "counts".into(),
                    default: Datum::Value(json!(0)),
                },
                TableName {
                    name: "users".into(),
                    default: Datum::NULL,
                },
            ],
        },
    );
    engine.set_print_sink(PrintSink::Discard);
    engine
}

fn engine() -> ScriptEngine {
    engine_with(ScriptLimits::default())
}

fn host() -> Arc<dyn Host> {
    Arc::new(StaticHost {
        worker_id: "w-1".into(),
        app_id: "leader-example".into(),
        is_leader: true,
        leader_epoch: Some(17),
    })
}

fn event(value: serde_json::Value) -> Event {
    Event {
        value: Datum::Value(value),
        key: Datum::Value(json!("k1")),
        topic: "greetings".into(),
        partition: 2,
        offset: 40,
        timestamp: Some(1_700_000_000_123),
        headers: vec![
            ("trace".into(), b"abc".to_vec()),
            (EPOCH_HEADER.into(), encode_epoch(9)),
        ],
    }
}

/// Runs an agent body on `value` and returns its outcome or error.
fn run_agent(source: &str, value: serde_json::Value) -> Result<Outcome, RunError> {
    let engine = engine();
    let script = engine.compile(source).expect("compiles");
    script.run(&engine, &host(), Some(&event(value)))
}

fn run_timer_with(engine: &ScriptEngine, source: &str) -> Result<Outcome, RunError> {
    let script = engine
        .compile_for(BodyKind::Timer, source)
        .expect("compiles");
    script.run(engine, &host(), None)
}

fn run_timer(source: &str) -> Result<Outcome, RunError> {
    run_timer_with(&engine(), source)
}

fn result(source: &str) -> serde_json::Value {
    match run_timer(source).unwrap().result {
        Some(Datum::Value(v)) => v,
        other => panic!("unexpected result {other:?}"),
    }
}

#[test]
fn engine_and_script_can_be_shared_across_tasks() {
    fn shared<T: Send + Sync>() {}
    fn cheap_clone<T: Send + Sync + Clone>() {}
    shared::<ScriptEngine>();
    cheap_clone::<Script>();
}

// ---- compiling ----------------------------------------------------------------------------

#[test]
fn a_misspelt_variable_is_a_compile_error_with_its_position() {
    let error = engine().compile("let x = 1;\nprint(vlaue);").unwrap_err();
    assert_eq!((error.line, error.column), (2, 7), "{error}");
    assert!(error.message.contains("vlaue"), "{error}");
}

#[test]
fn event_variables_are_for_agent_bodies_only() {
    let engine = engine();
    for name in EVENT_VARIABLES {
        assert!(engine.compile(name).is_ok(), "{name}");
    }
    let error = engine
        .compile_for(BodyKind::Timer, "print(\"x\");\nsay.send(value)")
        .unwrap_err();
    assert_eq!((error.line, error.column), (2, 10), "{error}");
    assert!(error.message.contains("value"));
    for kind in [BodyKind::Task, BodyKind::Hook] {
        assert!(engine.compile_for(kind, "epoch").is_err());
        assert!(engine.compile_for(kind, "say.send(1)").is_ok());
    }
}

#[test]
fn eval_import_and_sleep_are_not_available() {
    let engine = engine();
    assert!(engine.compile("eval(\"1\")").is_err());
    assert!(engine.compile("import \"x\" as x;").is_err());
    let error = run_timer("sleep(1)").unwrap_err();
    assert!(error.message.contains("sleep"), "{error}");
    let error = run_timer("sleep(0.5)").unwrap_err();
    assert!(error.message.contains("use a timer"), "{error}");
}

#[test]
fn agent_handles_are_constants() {
    let error = run_timer("say = 1;").unwrap_err();
    assert!(error.message.contains("constant"), "{error}");
}

#[test]
fn too_deep_an_expression_does_not_compile() {
    let engine = engine_with(ScriptLimits {
        max_expr_depth: 8,
        ..ScriptLimits::default()
    });
    let deep = format!("{}1{}", "(".repeat(20), ")".repeat(20));
    assert!(engine.compile(&deep).is_err());
    assert!(engine.compile("((1))").is_ok());
}

// ---- event and result ---------------------------------------------------------------------

#[test]
fn the_event_is_in_the_agent_bodys_variables() {
    let outcome = run_agent(
        "#{ value: value, key: key, topic: topic, partition: partition, offset: offset, \
           timestamp: timestamp, trace: headers.trace, epoch: epoch }",
        json!({"n": 1}),
    )
    .unwrap();
    assert_eq!(
        outcome.result,
        Some(Datum::Value(json!({
            "value": {"n": 1}, "key": "k1", "topic": "greetings", "partition": 2,
            "offset": 40, "timestamp": 1_700_000_000_123_i64, "trace": "abc", "epoch": 9
        })))
    );
}

#[test]
fn missing_timestamp_and_epoch_are_unit() {
    let engine = engine();
    let script = engine
        .compile("timestamp == () && epoch == () && value == ()")
        .unwrap();
    let mut event = event(json!(null));
    event.timestamp = None;
    event.headers.clear();
    let outcome = script.run(&engine, &host(), Some(&event)).unwrap();
    assert_eq!(outcome.result, Some(Datum::Value(json!(true))));
    // Without an event at all, every event variable is ().
    let outcome = script.run(&engine, &host(), None).unwrap();
    assert_eq!(outcome.result, Some(Datum::Value(json!(true))));
}

#[test]
fn the_final_expression_is_the_result_and_unit_is_none() {
    let outcome = run_agent(
        "#{ id: value.id, n: value.n * 2 }",
        json!({"id": "a", "n": 21}),
    );
    assert_eq!(
        outcome.unwrap().result,
        Some(Datum::Value(json!({"id": "a", "n": 42})))
    );
    assert_eq!(run_agent("let x = 1;", json!(1)).unwrap().result, None);
    assert_eq!(
        run_agent("value.n = 2.0; value", json!({"n": 1}))
            .unwrap()
            .result,
        Some(Datum::Value(json!({"n": 2.0})))
    );
    let blob = run_timer("let b = blob(2, 7); b").unwrap().result;
    assert_eq!(blob, Some(Datum::Bytes(vec![7, 7])));
}

#[test]
fn bytes_arrive_as_a_blob() {
    let engine = engine();
    let script = engine
        .compile("type_of(value) + \":\" + value.len()")
        .unwrap();
    let mut event = event(json!(null));
    event.value = Datum::Bytes(vec![1, 2, 3]);
    let outcome = script.run(&engine, &host(), Some(&event)).unwrap();
    assert_eq!(outcome.result, Some(Datum::Value(json!("blob:3"))));
}

#[test]
fn a_result_without_a_json_form_is_an_error_not_a_panic() {
    let error = run_timer("say").unwrap_err();
    assert_eq!(error.kind, RunErrorKind::Script);
    assert!(error.message.contains("agent handle 'say'"), "{error}");
    let error = run_timer("Fn(\"random\")").unwrap_err();
    assert!(error.message.contains("function pointer"), "{error}");
}

// ---- sending ------------------------------------------------------------------------------

#[test]
fn sends_are_collected_in_order_with_their_targets_and_keys() {
    let outcome = run_timer(
        r#"
        say.send("hello");
        send("audit-log", "k", #{ n: 1 });
        audit.send(42, [1, 2]);
        send("plain", 2.5);
        say.send((), "no key")
        "#,
    )
    .unwrap();
    let v = |j| Datum::Value(j);
    let expected = vec![
        OutgoingRecord {
            target: SendTarget::Agent("say".into()),
            key: None,
            value: v(json!("hello")),
        },
        OutgoingRecord {
            target: SendTarget::Topic("audit-log".into()),
            key: Some(v(json!("k"))),
            value: v(json!({"n": 1})),
        },
        OutgoingRecord {
            target: SendTarget::Agent("audit".into()),
            key: Some(v(json!(42))),
            value: v(json!([1, 2])),
        },
        OutgoingRecord {
            target: SendTarget::Topic("plain".into()),
            key: None,
            value: v(json!(2.5)),
        },
        OutgoingRecord {
            target: SendTarget::Agent("say".into()),
            key: None,
            value: v(json!("no key")),
        },
    ];
    assert_eq!(outcome.sends, expected);
    // `send` returns (), so a body ending in a send has no result.
    assert_eq!(outcome.result, None);
}

#[test]
fn the_tutorials_timer_body_sends_a_random_greeting() {
    let outcome = run_timer(r#"print("PUBLISHING ON LEADER!"); say.send(str(random()))"#).unwrap();
    assert_eq!(outcome.sends.len(), 1);
    let Datum::Value(serde_json::Value::String(greeting)) = &outcome.sends[0].value else {
        panic!("not a string: {:?}", outcome.sends[0]);
    };
    let number: f64 = greeting.parse().unwrap();
    assert!((0.0..1.0).contains(&number));
}

#[test]
fn unsendable_values_and_empty_topics_are_errors_at_the_send() {
    let error = run_timer("let x = 1;\nsay.send(audit)").unwrap_err();
    assert_eq!(error.kind, RunErrorKind::Script);
    assert_eq!((error.line, error.column), (2, 5), "{error}");
    assert!(error.message.contains("cannot be sent"), "{error}");
    assert!(
        run_timer("send(\"\", 1)")
            .unwrap_err()
            .message
            .contains("empty")
    );
}

#[test]
fn a_failed_evaluation_returns_no_sends() {
    let error = run_timer("say.send(1); throw \"boom\"").unwrap_err();
    assert_eq!(error.message, "boom");
    assert_eq!((error.line, error.column), (1, 14));
}

#[test]
fn sends_are_bounded() {
    let engine = engine_with(ScriptLimits {
        max_sends: 3,
        ..ScriptLimits::default()
    });
    assert_eq!(
        run_timer_with(&engine, "for i in 0..3 { say.send(i) }")
            .unwrap()
            .sends
            .len(),
        3
    );
    let error = run_timer_with(&engine, "for i in 0..4 { say.send(i) }").unwrap_err();
    assert_eq!(error.kind, RunErrorKind::SizeLimit);
    assert!(error.message.contains("max_sends = 3"), "{error}");
}

#[test]
fn concurrent_evaluations_keep_their_own_outboxes_and_hosts() {
    let engine = Arc::new(engine());
    let script = engine
        .compile_for(
            BodyKind::Timer,
            "for i in 0..200 { say.send(worker_id() + i) }",
        )
        .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (engine, script) = (engine.clone(), script.clone());
            std::thread::spawn(move || {
                let host: Arc<dyn Host> = Arc::new(StaticHost {
                    worker_id: format!("w{t}-"),
                    ..StaticHost::default()
                });
                let outcome = script.run(&engine, &host, None).unwrap();
                assert_eq!(outcome.sends.len(), 200);
                for (i, record) in outcome.sends.iter().enumerate() {
                    assert_eq!(record.value, Datum::Value(json!(format!("w{t}-{i}"))));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

// ---- limits -------------------------------------------------------------------------------

#[test]
fn an_endless_loop_stops_at_the_operation_limit() {
    let engine = engine_with(ScriptLimits {
        max_operations: 10_000,
        ..ScriptLimits::default()
    });
    let error = run_timer_with(&engine, "let n = 0;\nloop { n += 1; }").unwrap_err();
    assert_eq!(error.kind, RunErrorKind::OperationLimit);
    assert!(error.message.contains("max_operations = 10000"), "{error}");
    assert_eq!(error.line, 2, "{error}");
    assert!(
        error
            .to_string()
            .starts_with("over the operation limit at 2:")
    );
}

#[test]
fn an_endless_loop_with_unbounded_operations_stops_at_the_time_limit() {
    let engine = engine_with(ScriptLimits {
        max_operations: 0,
        max_duration: std::time::Duration::from_secs_f64(0.2),
        ..ScriptLimits::default()
    });
    let error = run_timer_with(&engine, "let n = 0;\nloop { n += 1; }").unwrap_err();
    assert_eq!(error.kind, RunErrorKind::TimeLimit, "{error}");
    assert!(error.message.contains("max_duration = 0.2 s"), "{error}");
    assert_eq!(error.line, 2, "{error}");
    assert!(error.to_string().starts_with("over the time limit at 2:"));
}

#[test]
fn a_long_body_within_the_other_limits_stops_at_the_time_limit() {
    // Within max_operations, max_array_size and max_string_size, but slow: rhai re-measures
    // the array after each push, so the body takes quadratic time (seconds).
    let body = r#"let a = []; for i in 0..100000 { a.push("x" + i); } a.len()"#;
    let engine = engine_with(ScriptLimits {
        max_duration: std::time::Duration::from_millis(1),
        ..ScriptLimits::default()
    });
    let error = run_timer_with(&engine, body).unwrap_err();
    assert_eq!(error.kind, RunErrorKind::TimeLimit, "{error}");
    assert!(error.message.contains("max_duration = 0.001 s"), "{error}");
}

#[test]
fn max_duration_must_be_a_positive_finite_number_of_seconds() {
    let parse = |text: &str| toml::from_str::<ScriptLimits>(text);
    assert_eq!(
        parse("max_duration = 0.5").unwrap().max_duration,
        std::time::Duration::from_millis(500)
    );
    assert_eq!(
        parse("max_duration = 2").unwrap().max_duration,
        std::time::Duration::from_secs(2)
    );
    assert_eq!(
        parse("").unwrap().max_duration,
        std::time::Duration::from_secs(10)
    );
    for bad in [
        "0", "0.0", "-1", "-0.5", "inf", "nan", "1e300", "1e-12", "\"1s\"",
    ] {
        let error = parse(&format!("max_duration = {bad}")).unwrap_err();
        assert!(error.to_string().contains("max_duration"), "{bad}: {error}");
    }
}

#[test]
fn a_huge_string_array_or_map_stops_at_its_limit() {
    let engine = engine_with(ScriptLimits {
        max_string_size: 100,
        max_array_size: 50,
        max_map_size: 10,
        ..ScriptLimits::default()
    });
    let cases = [
        ("let s = \"x\"; loop { s += s; }", "max_string_size = 100"),
        ("let a = []; loop { a.push(1); }", "max_array_size = 50"),
        (
            "let m = #{}; for i in 0..20 { m += #{}; m[`k${i}`] = i; }",
            "max_map_size = 10",
        ),
        (
            "parse_json(to_json(\"y\".pad(200, 'y')))",
            "max_string_size = 100",
        ),
    ];
    for (source, limit) in cases {
        let error = run_timer_with(&engine, source).unwrap_err();
        assert_eq!(error.kind, RunErrorKind::SizeLimit, "{source}: {error}");
        assert!(error.message.contains(limit), "{source}: {error}");
    }
}

#[test]
fn what_the_engine_lets_grow_is_caught_when_sent_or_returned() {
    // rhai does not check a map that grows by `m[new_key] = v`: the conversion does.
    let engine = engine_with(ScriptLimits {
        max_map_size: 10,
        ..ScriptLimits::default()
    });
    let grow = "let m = #{}; for i in 0..20 { m[`k${i}`] = i; }";
    let error = run_timer_with(&engine, &format!("{grow}\nsay.send(m)")).unwrap_err();
    assert_eq!(error.kind, RunErrorKind::SizeLimit, "{error}");
    assert!(error.message.contains("max_map_size = 10"), "{error}");
    assert_eq!((error.line, error.column), (2, 5), "{error}");
    let error = run_timer_with(&engine, &format!("{grow}\nm")).unwrap_err();
    assert_eq!(error.kind, RunErrorKind::SizeLimit, "{error}");
}

#[test]
fn an_oversized_event_is_refused_before_the_body_runs() {
    let engine = engine_with(ScriptLimits {
        max_string_size: 3,
        ..ScriptLimits::default()
    });
    let script = engine.compile("say.send(value)").unwrap();
    let error = script
        .run(&engine, &host(), Some(&event(json!("four"))))
        .unwrap_err();
    assert_eq!(error.kind, RunErrorKind::SizeLimit);
    assert!(error.message.contains("the event's value"), "{error}");
    assert!(error.message.contains("max_string_size = 3"), "{error}");
    // A body that never mentions `value` is not given it, so it is not refused for it.
    let script = engine.compile("say.send(offset)").unwrap();
    let outcome = script.run(&engine, &host(), Some(&event(json!("four"))));
    assert_eq!(outcome.unwrap().sends.len(), 1);
}

#[test]
fn deep_recursion_stops_at_the_call_depth_limit() {
    let engine = engine_with(ScriptLimits {
        max_call_depth: 16,
        ..ScriptLimits::default()
    });
    let error =
        run_timer_with(&engine, "fn down(n) { down(n + 1) }\nlet x = 1;\ndown(0)").unwrap_err();
    assert_eq!(error.kind, RunErrorKind::CallDepthLimit, "{error}");
    assert!(error.message.contains("max_call_depth = 16"), "{error}");
    assert_eq!((error.line, error.column), (3, 1), "{error}");
    assert!(error.message.len() < 200, "{error}");
    // A bounded recursion is fine.
    assert_eq!(
        run_timer_with(
            &engine,
            "fn f(n) { if n == 0 { 0 } else { 1 + f(n - 1) } }\nf(10)"
        )
        .unwrap()
        .result,
        Some(Datum::Value(json!(10)))
    );
}

#[test]
fn a_script_error_names_its_line_and_column() {
    let error = run_timer("let a = 1;\n  let b = a + \"x\" * 2;").unwrap_err();
    assert_eq!(error.kind, RunErrorKind::Script);
    assert_eq!(error.line, 2, "{error}");
    assert!(!error.message.contains("(line"), "{error}");
}

// ---- functions ----------------------------------------------------------------------------

#[test]
fn print_goes_to_the_sink_one_call_per_line_and_shows_containers_as_json() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let mut engine = engine();
    let sink = lines.clone();
    engine.set_print_sink(PrintSink::Custom(Arc::new(move |text: &str| {
        sink.lock().unwrap().push(text.to_owned())
    })));
    let script = engine
        .compile(
            "print(value); print(#{a: [1, 2.0]}); print(`n=${value}`); \
             print(\"got\", value, [1]); print(1, 2); print(1, 2, 3, 4)",
        )
        .unwrap();
    script
        .run(&engine, &host(), Some(&event(json!("0.25"))))
        .unwrap();
    assert_eq!(
        *lines.lock().unwrap(),
        vec![
            "0.25".to_owned(),
            r#"{"a":[1,2.0]}"#.to_owned(),
            "n=0.25".to_owned(),
            "got 0.25 [1]".to_owned(),
            "1 2".to_owned(),
            "1 2 3 4".to_owned(),
        ]
    );
}

#[test]
fn a_printed_line_is_written_whole_with_its_line_end() {
    let mut out = Vec::new();
    write_print_line(&mut out, "PUBLISHING ON LEADER!").unwrap();
    write_print_line(&mut out, "").unwrap();
    assert_eq!(out, b"PUBLISHING ON LEADER!\n\n");

    /// Records each write, to check that a line is never split across writes.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>, usize);
    impl std::io::Write for Writes {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.1 += 1;
            Ok(())
        }
    }
    let mut writes = Writes::default();
    write_print_line(&mut writes, "a b c").unwrap();
    assert_eq!(writes.0, vec![b"a b c\n".to_vec()]);
    assert_eq!(writes.1, 1, "flushed once per line");
}

#[test]
fn str_works_like_pythons_and_to_string_too() {
    assert_eq!(
        result("str(1) + str(2.5) + str(true) + str(\"s\")"),
        json!("12.5trues")
    );
    assert_eq!(result("str([1, \"a\"])"), json!(r#"[1,"a"]"#));
    assert_eq!(result("(3).to_string()"), json!("3"));
}

#[test]
fn random_functions_stay_in_range() {
    assert_eq!(
        result(
            "let ok = true; for i in 0..500 { let r = random(); ok = ok && r >= 0.0 && r < 1.0; } ok"
        ),
        json!(true)
    );
    let seen = result("let s = #{}; for i in 0..500 { s[str(random_int(1, 3))] = true; } s.keys()");
    let mut seen: Vec<_> = seen
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    seen.sort();
    assert_eq!(seen, ["1", "2", "3"], "both ends are included");
    assert_eq!(result("random_int(5, 5)"), json!(5));
    assert!(
        run_timer("random_int(2, 1)")
            .unwrap_err()
            .message
            .contains("greater")
    );
    assert!(["a", "b"].contains(&result("random_choice([\"a\", \"b\"])").as_str().unwrap()));
    assert!(
        run_timer("random_choice([])")
            .unwrap_err()
            .message
            .contains("empty")
    );
}

#[test]
fn uuids_are_version_4_and_differ() {
    let a = uuid_v4();
    let b = result("uuid()");
    assert_ne!(json!(a), b);
    for id in [a.as_str(), b.as_str().unwrap()] {
        let groups: Vec<_> = id.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
        assert_eq!(&id[14..15], "4", "{id}");
        assert!("89ab".contains(&id[19..20]), "{id}");
        assert!(
            id.chars()
                .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)),
            "{id}"
        );
    }
}

#[test]
fn time_functions_agree_with_the_clock() {
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let times = result("[now(), now_ms(), now_iso()]");
    let (now, now_ms) = (times[0].as_f64().unwrap(), times[1].as_i64().unwrap());
    assert!(now_ms >= before && now_ms < before + 5_000);
    assert!((now * 1000.0 - now_ms as f64).abs() < 5_000.0);
    let iso = times[2].as_str().unwrap();
    assert!(iso.ends_with('Z') && iso.len() == 24, "{iso}");
}

#[test]
fn identity_and_election_come_from_the_host() {
    assert_eq!(
        result("[worker_id(), app_id(), is_leader(), leader_epoch()]"),
        json!(["w-1", "leader-example", true, 17])
    );
    let engine = engine();
    let script = engine
        .compile_for(BodyKind::Hook, "[is_leader(), leader_epoch()]")
        .unwrap();
    let outcome = script
        .run(
            &engine,
            &(Arc::new(StaticHost::default()) as Arc<dyn Host>),
            None,
        )
        .unwrap();
    assert_eq!(outcome.result, Some(Datum::Value(json!([false, null]))));
}

#[test]
fn json_helpers_round_trip() {
    assert_eq!(
        result(
            r#"let v = parse_json("{\"a\": [1, 2.0, null, \"x\"]}"); v.a[1] += 1.0; to_json(v)"#
        ),
        json!(r#"{"a":[1,3.0,null,"x"]}"#)
    );
    assert_eq!(result("parse_json(\"7\") + 1"), json!(8));
    let error = run_timer("parse_json(\"{nope\")").unwrap_err();
    assert!(error.message.contains("invalid JSON"), "{error}");
    assert!(
        run_timer("to_json(say)")
            .unwrap_err()
            .message
            .contains("no JSON form")
    );
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn log_functions_name_the_script_and_accept_any_value() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let engine = engine();
    let script = engine
        .compile_for(
            BodyKind::Timer,
            "log_debug(1); log_info(\"hello\"); log_warn(#{a: 1}); log_error([]); 5",
        )
        .unwrap()
        .with_name("publish_greetings");
    let outcome = tracing::subscriber::with_default(subscriber, || {
        script.run(&engine, &host(), None).unwrap()
    });
    assert_eq!(outcome.result, Some(Datum::Value(json!(5))));
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    for (line, (level, message)) in lines.iter().zip([
        ("DEBUG", "1"),
        ("INFO", "hello"),
        ("WARN", r#"{"a":1}"#),
        ("ERROR", "[]"),
    ]) {
        assert!(line.contains(level), "{line}");
        let fields = format!(": {message} script=\"publish_greetings\"");
        assert!(line.ends_with(&fields), "{line}");
    }
}

#[test]
fn script_names_are_kept_and_changed() {
    let script = engine().compile_for(BodyKind::Timer, "1").unwrap();
    assert_eq!((script.name(), script.kind()), ("timer", BodyKind::Timer));
    assert_eq!(
        script.with_name("publish_greetings").name(),
        "publish_greetings"
    );
}

#[test]
fn host_functions_fail_outside_an_evaluation() {
    // A frame-less call (as the optimizer would make) is an error, not a panic.
    assert!(context::with_host(|h| h.is_leader()).is_none());
}

/// A host that runs another evaluation whenever it is asked for the worker id.
struct NestingHost {
    engine: Arc<ScriptEngine>,
    inner: Script,
}

impl Host for NestingHost {
    fn worker_id(&self) -> String {
        let outcome = self.inner.run(&self.engine, &host(), None).unwrap();
        assert_eq!(
            outcome.sends.len(),
            1,
            "the inner evaluation has its own outbox"
        );
        "outer".into()
    }
    fn app_id(&self) -> String {
        String::new()
    }
    fn is_leader(&self) -> bool {
        false
    }
    fn leader_epoch(&self) -> Option<i64> {
        None
    }
}

#[test]
fn a_nested_evaluation_gets_its_own_frame_and_restores_the_outer_one() {
    let engine = Arc::new(engine());
    let inner = engine
        .compile_for(BodyKind::Task, "audit.send(worker_id())")
        .unwrap();
    let outer = engine
        .compile_for(
            BodyKind::Task,
            "say.send(1); let w = worker_id(); say.send(w); is_leader()",
        )
        .unwrap();
    let nesting: Arc<dyn Host> = Arc::new(NestingHost {
        engine: engine.clone(),
        inner,
    });
    let outcome = outer.run(&engine, &nesting, None).unwrap();
    let values: Vec<_> = outcome.sends.iter().map(|r| r.value.clone()).collect();
    assert_eq!(
        values,
        [Datum::Value(json!(1)), Datum::Value(json!("outer"))]
    );
    assert_eq!(outcome.result, Some(Datum::Value(json!(false))));
    assert!(
        context::with_frame(|_| ()).is_none(),
        "no frame is left behind"
    );
}

// ---- tables -------------------------------------------------------------------------------

/// Tables with fixed contents (one list of rows per table of the test engine: `counts`,
/// `users`), writable unless `refuse` says why not.
#[derive(Default)]
struct FixedTables {
    rows: [Vec<(Datum, Datum)>; 2],
    refuse: Option<&'static str>,
}

impl FixedTables {
    fn with_counts(rows: &[(&str, i64)]) -> Self {
        let counts = rows
            .iter()
            .map(|&(key, n)| (Datum::Value(json!(key)), Datum::Value(json!(n))))
            .collect();
        FixedTables {
            rows: [counts, Vec::new()],
            refuse: None,
        }
    }
}

impl TableAccess for FixedTables {
    fn get(&self, table: usize, key: &Datum) -> Result<Option<Datum>, String> {
        let row = self.rows[table].iter().find(|(k, _)| k == key);
        Ok(row.map(|(_, value)| value.clone()))
    }
    fn len(&self, table: usize) -> Result<usize, String> {
        Ok(self.rows[table].len())
    }
    fn keys(&self, table: usize) -> Result<Vec<Datum>, String> {
        Ok(self.rows[table].iter().map(|(k, _)| k.clone()).collect())
    }
    fn check_write(&self, _table: usize) -> Result<(), String> {
        self.refuse.map_or(Ok(()), |why| Err(why.to_owned()))
    }
}

fn run_tables(kind: BodyKind, source: &str, tables: FixedTables) -> Result<Outcome, RunError> {
    let engine = engine();
    let script = engine.compile_for(kind, source).expect("compiles");
    let event = event(json!("hello"));
    script.run_with_tables(&engine, &host(), Some(&event), Arc::new(tables))
}

fn table_result(source: &str, tables: FixedTables) -> serde_json::Value {
    match run_tables(BodyKind::Agent, source, tables).unwrap().result {
        Some(Datum::Value(v)) => v,
        other => panic!("unexpected result {other:?}"),
    }
}

fn change(table: usize, key: serde_json::Value, value: Option<serde_json::Value>) -> TableChange {
    TableChange {
        table,
        key: Datum::Value(key),
        value: value.map(Datum::Value),
    }
}

#[test]
fn a_key_incremented_twice_is_one_change_from_the_default() {
    let source = "counts[key] += 1; counts[key] += 1; counts[key]";
    let outcome = run_tables(BodyKind::Agent, source, FixedTables::default()).unwrap();
    assert_eq!(outcome.result, Some(Datum::Value(json!(2))));
    assert_eq!(outcome.changes, [change(0, json!("k1"), Some(json!(2)))]);
    let outcome = run_tables(
        BodyKind::Agent,
        source,
        FixedTables::with_counts(&[("k1", 5)]),
    );
    assert_eq!(
        outcome.unwrap().changes,
        [change(0, json!("k1"), Some(json!(7)))]
    );
}

#[test]
fn missing_keys_read_the_default_or_unit_or_the_fallback() {
    let source = r#"[counts["a"], counts["x"], users["x"], counts.get("x"), counts.get("x", 5),
                     counts.get("a", 5), counts.contains("x"), counts.contains("a")]"#;
    let tables = FixedTables::with_counts(&[("a", 3)]);
    assert_eq!(
        table_result(source, tables),
        json!([3, 0, null, null, 5, 3, false, true])
    );
}

#[test]
fn reads_see_the_evaluations_own_sets_and_removes() {
    let source = r#"
        counts["c"] = 3;
        counts["d"] = 4;
        counts.remove("e");
        let old = counts.remove("a");
        let again = counts.remove("a");
        counts.set("b", 20);
        [old, again, "a" in counts, counts.contains("c"), counts.len(), counts.keys(),
         counts.get("b"), counts["a"], counts.get("a")]
    "#;
    let outcome = run_tables(
        BodyKind::Agent,
        source,
        FixedTables::with_counts(&[("a", 1), ("b", 2)]),
    )
    .unwrap();
    assert_eq!(
        outcome.result,
        Some(Datum::Value(json!([
            1,
            null,
            false,
            true,
            3,
            ["b", "c", "d"],
            20,
            0,
            null
        ])))
    );
    assert_eq!(
        outcome.changes,
        [
            change(0, json!("c"), Some(json!(3))),
            change(0, json!("d"), Some(json!(4))),
            change(0, json!("e"), None),
            change(0, json!("a"), None),
            change(0, json!("b"), Some(json!(20))),
        ]
    );
}

#[test]
fn setting_unit_records_a_removal() {
    let source = r#"counts["a"] = (); counts.set("b", ()); users[1] = #{n: 1}; users[1] = ();"#;
    let outcome = run_tables(BodyKind::Agent, source, FixedTables::default()).unwrap();
    assert_eq!(
        outcome.changes,
        [
            change(0, json!("a"), None),
            change(0, json!("b"), None),
            change(1, json!(1), None),
        ]
    );
}

#[test]
fn a_field_of_a_map_value_is_changed_through_the_indexers() {
    let source = r#"users["u"] = #{n: 1}; users["u"].n = 5; users["u"].n += 1; users["u"]"#;
    let outcome = run_tables(BodyKind::Agent, source, FixedTables::default()).unwrap();
    assert_eq!(outcome.result, Some(Datum::Value(json!({"n": 6}))));
    assert_eq!(
        outcome.changes,
        [change(1, json!("u"), Some(json!({"n": 6})))]
    );
}

#[test]
fn a_refused_write_fails_the_evaluation_at_the_write() {
    let tables = FixedTables {
        refuse: Some("not this partition"),
        ..FixedTables::with_counts(&[("a", 1)])
    };
    let error = run_tables(
        BodyKind::Agent,
        "let n = counts[\"a\"];\ncounts[\"a\"] = n + 1;",
        tables,
    )
    .unwrap_err();
    assert_eq!(error.kind, RunErrorKind::Script);
    assert_eq!(error.message, "table `counts`: not this partition");
    assert_eq!(error.line, 2, "{error}");
    // `Script::run` gives no tables: reads miss, writes are refused.
    assert_eq!(result("counts[\"a\"]"), json!(0));
    let error = run_timer("counts.remove(\"a\")").unwrap_err();
    assert!(error.message.contains("written by agents only"), "{error}");
    assert_eq!((error.line, error.column), (1, 8), "{error}");
}

#[test]
fn a_failed_evaluation_returns_no_changes() {
    let error = run_tables(
        BodyKind::Agent,
        "counts[\"a\"] = 1; throw \"boom\"",
        FixedTables::default(),
    )
    .unwrap_err();
    assert_eq!(error.message, "boom");
    // Nothing is left for the next evaluation on this thread either.
    let outcome = run_tables(
        BodyKind::Agent,
        "counts.contains(\"a\")",
        FixedTables::default(),
    );
    let outcome = outcome.unwrap();
    assert_eq!(outcome.result, Some(Datum::Value(json!(false))));
    assert!(outcome.changes.is_empty());
}

#[test]
fn only_the_tables_a_body_mentions_are_bound() {
    let defined = |source: &str| table_result(source, FixedTables::default());
    assert_eq!(defined(r#"is_def_var("coun" + "ts")"#), json!(false));
    assert_eq!(
        defined(r#"counts.len(); is_def_var("coun" + "ts")"#),
        json!(true)
    );
}

#[test]
fn timers_read_and_write_tables_too() {
    let source = "counts[\"b\"] = counts[\"a\"] * 10; counts.keys()";
    let outcome = run_tables(
        BodyKind::Timer,
        source,
        FixedTables::with_counts(&[("a", 4)]),
    );
    let outcome = outcome.unwrap();
    assert_eq!(outcome.result, Some(Datum::Value(json!(["a", "b"]))));
    assert_eq!(outcome.changes, [change(0, json!("b"), Some(json!(40)))]);
}

#[test]
fn keys_and_values_without_a_json_form_are_errors_naming_the_table() {
    let error = |source: &str| {
        run_tables(BodyKind::Agent, source, FixedTables::default())
            .unwrap_err()
            .message
    };
    assert_eq!(
        error("counts[Fn(\"f\")] = 1"),
        "table `counts`: the key cannot be stored: a function pointer has no JSON form"
    );
    assert_eq!(
        error("counts.get(())"),
        "table `counts`: a key cannot be ()"
    );
    assert!(
        error("users.set(1, say)")
            .contains("table `users`: the value cannot be stored: the agent handle 'say'")
    );
    assert!(error("say.send(users)").contains("the table handle 'users'"));
}

#[test]
fn table_changes_are_bounded_by_keys_changed() {
    let engine = engine_with(ScriptLimits {
        max_table_changes: 2,
        ..ScriptLimits::default()
    });
    let run = |source: &str| {
        let script = engine.compile_for(BodyKind::Timer, source).unwrap();
        let tables: Arc<dyn TableAccess> = Arc::new(FixedTables::default());
        script.run_with_tables(&engine, &host(), None, tables)
    };
    assert_eq!(
        run("for i in 0..100 { counts[i % 2] = i }")
            .unwrap()
            .changes
            .len(),
        2
    );
    let error = run("for i in 0..3 { counts[i] = i }").unwrap_err();
    assert_eq!(error.kind, RunErrorKind::SizeLimit);
    assert!(error.message.contains("max_table_changes = 2"), "{error}");
}

#[test]
fn a_table_passed_to_a_function_is_the_same_table() {
    let source = "fn bump(t, k) { t[k] += 1 }
                  bump(counts, 1); bump(counts, 1.0); bump(counts, 1);
                  [counts[1], counts[1.0], counts.name, `${counts}`]";
    let outcome = run_tables(BodyKind::Agent, source, FixedTables::default()).unwrap();
    // Integers and floats are different keys, as in JSON.
    assert_eq!(
        outcome.result,
        Some(Datum::Value(json!([2, 1, "counts", "Table(counts)"])))
    );
    assert_eq!(
        outcome.changes,
        [
            change(0, json!(1), Some(json!(2))),
            change(0, json!(1.0), Some(json!(1)))
        ]
    );
}
