//! Unit tests of loading: parsing, validation and positions.

use std::time::Duration;

use super::*;

fn load_text(text: &str) -> Result<Loaded, LoadErrors> {
    load_str(Path::new("app.toml"), text)
}

fn errors(text: &str) -> Vec<String> {
    match load_text(text) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.errors.iter().map(|d| d.to_string()).collect(),
    }
}

#[test]
fn the_leader_tutorial_loads_with_defaults() {
    let loaded = load_text(
        "[app]\nid = \"leader-example\"\nvalue_serializer = \"raw\"\n\n[[agents]]\nname = \"say\"\nbody = '''\nprint(value)\n'''\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let app = &loaded.app;
    assert_eq!(app.brokers, ["localhost:9092"]);
    assert_eq!(app.agents[0].topic, "leader-example-say");
    assert_eq!(app.topic_partitions, 8);
    assert!(errors("").iter().any(|e| e.contains("missing [app]")));
}

fn only_error(text: &str) -> String {
    let all = errors(text);
    assert_eq!(all.len(), 1, "{all:#?}");
    all.into_iter().next().unwrap()
}

const HEAD: &str = "[app]\nid = \"t\"\n";

#[test]
fn inline_body_positions_skip_the_newline_after_the_opening_quotes() {
    // Line 5 holds `'''`, the script's line 1 is file line 6, its line 2 is line 7.
    let text = format!("{HEAD}[[agents]]\nname = \"a\"\nbody = '''\nprint(1);\nlet x = ;\n'''\n");
    let e = only_error(&text);
    assert!(e.starts_with("app.toml:7:9: error: in agent `a`"), "{e}");
}

#[test]
fn inline_body_positions_on_the_opening_line() {
    // The script starts right after `'''` on line 5 (column 11).
    let text = format!("{HEAD}[[agents]]\nname = \"a\"\nbody = '''let x = ;\nprint(1)'''\n");
    let e = only_error(&text);
    assert!(e.starts_with("app.toml:5:19: error:"), "{e}");
    // A one-line basic string: content starts after the quote.
    let text = format!("{HEAD}[[agents]]\nname = \"a\"\nbody = \"let x = ;\"\n");
    let e = only_error(&text);
    assert!(e.starts_with("app.toml:5:17: error:"), "{e}");
}

#[test]
fn inline_body_positions_with_crlf_line_ends() {
    let text =
        format!("{HEAD}[[agents]]\nname = \"a\"\nbody = '''\r\nprint(1);\r\nlet x = ;\r\n'''\r\n");
    let e = only_error(&text);
    assert!(e.starts_with("app.toml:7:9: error:"), "{e}");
}

#[test]
fn map_inline_handles_unknown_positions() {
    assert_eq!(validate::bodies::map_inline((4, 11), 0, 0), (4, 11));
    assert_eq!(validate::bodies::map_inline((4, 11), 1, 3), (4, 13));
    assert_eq!(validate::bodies::map_inline((4, 11), 3, 2), (6, 2));
}

#[test]
fn every_bad_entry_and_every_bad_key_is_reported() {
    let text = format!(
        "{HEAD}[[agents]]\nname = \"a\"\nconcurency = 2\nbody = \"1\"\n\n[[agents]]\nname = \"b\"\non_error = \"explode\"\nsink = [\"nowhere\"]\nbody = \"1\"\n"
    );
    let all = errors(&text);
    assert_eq!(all.len(), 3, "{all:#?}");
    assert!(all[0].starts_with("app.toml:5:1: error: unknown field `concurency`"));
    assert!(all[1].starts_with("app.toml:10:12: error: unknown variant `explode`"));
    assert!(all[2].starts_with("app.toml:11:9: error: unknown sink `nowhere`"));
}

#[test]
fn a_bad_value_of_a_required_key_is_not_also_reported_missing() {
    let all = errors("[app]\nid = 5\n");
    assert_eq!(all.len(), 1, "{all:#?}");
    assert!(all[0].starts_with("app.toml:2:6: error: invalid type: integer `5`"));
}

#[test]
fn duplicates_name_the_first_declaration() {
    let text = format!(
        "{HEAD}[[topics]]\nname = \"x\"\n[[topics]]\nname = \"x\"\n[[timers]]\nname = \"t\"\ninterval = 1\nbody = \"1\"\n[[timers]]\nname = \"t\"\ninterval = 1\nbody = \"1\"\n"
    );
    let all = errors(&text);
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(all[0].contains("app.toml:6:8: error: duplicate topic `x` (first declared on line 4)"));
    assert!(
        all[1].contains("app.toml:12:8: error: duplicate timer `t` (first declared on line 8)")
    );
}

#[test]
fn sinks_resolve_to_agents_and_declared_topics() {
    let text = format!(
        "{HEAD}[[topics]]\nname = \"out\"\ncreate = false\n[[agents]]\nname = \"a\"\nsink = [\"b\", \"out\"]\non_error = \"dead-letter\"\nbody = \"value\"\n[[agents]]\nname = \"b\"\ntopic = \"in\"\nconcurrency = 3\nbody = \"1\"\n"
    );
    let app = load_text(&text).unwrap_or_else(|e| panic!("{e}")).app;
    let a = app.agent("a").unwrap();
    assert_eq!(
        a.sinks,
        [Sink::Agent("b".into()), Sink::Topic("out".into())]
    );
    assert_eq!(
        a.on_error,
        ErrorPolicy::DeadLetter {
            topic: "t-a-dead-letter".into()
        }
    );
    assert_eq!(app.agent("b").unwrap().concurrency, 3);
    let names: Vec<&str> = app.topics.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["out", "t-a", "t-a-dead-letter", "in"]);
    assert!(!app.topic("out").unwrap().create);
}

#[test]
fn brokers_follow_faust_syntax() {
    let parse = validate::brokers::parse_brokers;
    assert_eq!(
        parse("kafka://a:9093;b, kafka://[::1]:9094").unwrap(),
        ["a:9093", "b:9092", "[::1]:9094"]
    );
    assert_eq!(parse("KAFKA://h/").unwrap(), ["h:9092"]);
    for bad in [
        "http://a:9092",
        "kafka://a:99999",
        "kafka://",
        "a;;b",
        "kafka://u@h:1",
        "::1:9092",
        "kafka://h:0",
    ] {
        assert!(parse(bad).is_err(), "{bad} accepted");
    }
}

#[test]
fn cron_schedules_compute_the_next_fire_time_in_their_time_zone() {
    let text = format!(
        "{HEAD}[[timers]]\nname = \"daily\"\ncron = \"30 9 * * *\"\ntimezone = \"Europe/Paris\"\nbody = \"1\"\n"
    );
    let app = load_text(&text).unwrap_or_else(|e| panic!("{e}")).app;
    let now = chrono::DateTime::parse_from_rfc3339("2024-01-15T12:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let next = app.timers[0].schedule.next_after(now).unwrap();
    // 09:30 in Paris in winter is 08:30 UTC, on the next day.
    assert_eq!(next.to_rfc3339(), "2024-01-16T08:30:00+00:00");
    let every = Schedule::Interval(std::time::Duration::from_millis(2500));
    assert_eq!(
        every.next_after(now).unwrap().to_rfc3339(),
        "2024-01-15T12:00:02.500+00:00"
    );
}

#[test]
fn cron_is_strictly_five_fields() {
    assert!(validate::timers::parse_cron("*/5 * * * *").is_ok());
    assert!(validate::timers::parse_cron("0 9 * * MON-FRI").is_ok());
    for bad in [
        "* * * *",
        "0 * * * * *",
        "@daily",
        "61 * * * *",
        "* * 32 * *",
        "x * * * *",
        "",
    ] {
        assert!(validate::timers::parse_cron(bad).is_err(), "{bad} accepted");
    }
}

#[test]
fn on_master_is_an_alias_that_warns() {
    let text = format!(
        "{HEAD}[[agents]]\nname = \"say\"\nbody = \"print(value)\"\n[[timers]]\nname = \"p\"\ninterval = 2.0\non_master = true\nbody = \"say.send(1)\"\n"
    );
    let loaded = load_text(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        loaded.app.timers[0].election.as_deref(),
        Some(DEFAULT_ELECTION)
    );
    assert_eq!(loaded.warnings.len(), 1);
    let warning = loaded.warnings[0].to_string();
    assert!(
        warning.starts_with("app.toml:9:13: warning: `on_master` is deprecated"),
        "{warning}"
    );
}

#[test]
fn elections_are_checked_and_the_default_one_always_exists() {
    let text = format!(
        "{HEAD}[[elections]]\nname = \"crawler\"\ncandidate = false\non_elected = \"print(1)\"\n[[tasks]]\nname = \"boot\"\nbody = \"1\"\n[[tasks]]\nname = \"lead\"\nelection = \"crawler\"\nbody = \"1\"\n[[timers]]\nname = \"t\"\ninterval = 1\nelection = \"nope\"\nbody = \"1\"\n"
    );
    let e = only_error(&text);
    assert!(
        e.starts_with("app.toml:17:12: error: unknown election `nope`"),
        "{e}"
    );
    let ok = text.replace("\"nope\"", "\"leader\"");
    let app = load_text(&ok).unwrap_or_else(|e| panic!("{e}")).app;
    assert_eq!(app.elections[0].name, DEFAULT_ELECTION);
    assert!(!app.elections[0].declared);
    let crawler = app.election("crawler").unwrap();
    assert!(!crawler.candidate && crawler.on_elected.is_some() && crawler.on_revoked.is_none());
    assert_eq!(app.tasks[0].election, None);
    assert_eq!(app.tasks[1].election.as_deref(), Some("crawler"));
}

#[test]
fn file_bodies_report_the_script_files_own_position() {
    let dir = std::env::temp_dir().join(format!("faust-rs-app-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ok.rhai"), "// From a file.\nprint(value)\n").unwrap();
    std::fs::write(dir.join("bad.rhai"), "print(1);\n\nlet = 3;\n").unwrap();
    let app_path = dir.join("app.toml");
    let text = "[app]\nid = \"t\"\n[[agents]]\nname = \"a\"\nfile = \"ok.rhai\"\n[[agents]]\nname = \"b\"\nfile = \"bad.rhai\"\n[[agents]]\nname = \"c\"\nfile = \"missing.rhai\"\n";
    let err = load_str(&app_path, text).err().expect("errors");
    let lines: Vec<String> = err.errors.iter().map(|d| d.to_string()).collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines[0].contains("app.toml:11:8: error: cannot read script file"));
    assert!(lines[1].starts_with(&format!(
        "{}:3:5: error: in agent `b`",
        dir.join("bad.rhai").display()
    )));
    let text = text
        .replace("bad.rhai", "ok.rhai")
        .replace("missing.rhai", "ok.rhai");
    let app = load_str(&app_path, &text)
        .unwrap_or_else(|e| panic!("{e}"))
        .app;
    assert_eq!(app.agents[0].help, "From a file.");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn kafka_properties_become_strings_and_managed_ones_are_refused() {
    let text = format!(
        "{HEAD}[kafka]\n\"client.rack\" = \"r1\"\n\"fetch.max.bytes\" = 1048576\n\"enable.idempotence\" = true\n\"linger.ms\" = 0.5\n"
    );
    let app = load_text(&text).unwrap_or_else(|e| panic!("{e}")).app;
    assert_eq!(app.kafka.get("client.rack").unwrap(), "r1");
    assert_eq!(app.kafka.get("fetch.max.bytes").unwrap(), "1048576");
    assert_eq!(app.kafka.get("enable.idempotence").unwrap(), "true");
    assert_eq!(app.kafka.get("linger.ms").unwrap(), "0.5");
    let all = errors(&format!(
        "{HEAD}[kafka]\n\"group.id\" = \"g\"\nsasl.mechanism = \"PLAIN\"\n"
    ));
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(all[0].starts_with("app.toml:4:1: error: `group.id` is managed by faust-rs"));
    assert!(all[1].contains("quote keys with dots"), "{}", all[1]);
}

#[test]
fn group_timing_is_checked() {
    let all = errors(
        "[app]\nid = \"t\"\nsession_timeout = 6\nheartbeat_interval = 6\nmax_poll_interval = 2\n",
    );
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(all[0].starts_with("app.toml:4:22: error: `heartbeat_interval` (6s) must be less"));
    assert!(all[1].starts_with("app.toml:5:21: error: `max_poll_interval` (2s) must be at least"));
    let loaded = load_text("[app]\nid = \"t\"\nheartbeat_interval = 3\n").unwrap();
    assert_eq!(loaded.warnings.len(), 1);
    assert_eq!(
        loaded.app.session_timeout,
        std::time::Duration::from_secs(6)
    );
}

#[test]
fn help_comes_from_the_key_or_the_first_comment_line() {
    let text = format!(
        "{HEAD}[[agents]]\nname = \"a\"\nbody = '''\n  /// Doubles values.\nvalue * 2\n'''\n[[agents]]\nname = \"b\"\nhelp = \"Explicit.\"\nbody = \"// not this\\n1\"\n[[agents]]\nname = \"c\"\nbody = \"1 // trailing\"\n"
    );
    let app = load_text(&text).unwrap_or_else(|e| panic!("{e}")).app;
    let helps: Vec<&str> = app.agents.iter().map(|a| a.help.as_str()).collect();
    assert_eq!(helps, ["Doubles values.", "Explicit.", ""]);
}

#[test]
fn a_syntax_error_is_reported_alone_with_its_position() {
    let e = only_error("[app]\nid = \"t\"\n[[agents]]\nname = \n");
    assert!(e.starts_with("app.toml:4:"), "{e}");
    assert!(e.contains("TOML syntax"), "{e}");
}

#[test]
fn garbage_never_panics() {
    let deep = format!("a = {}{}", "[".repeat(100_000), "]".repeat(100_000));
    for text in [
        "",
        "\u{0}\u{1}",
        "[app",
        "app = 1",
        "[[app]]\nid = \"x\"",
        "[app]\nid = \"t\"\nagents = 3",
        "[app]\nid = \"t\"\n[[agents]]\nname = \"a\"\nconcurrency = 99999999999999999999\nbody = \"1\"",
        "[app]\nid = \"t\"\ntopic_partitions = 1e400",
        deep.as_str(),
    ] {
        assert!(load_text(text).is_err(), "{text:?} accepted");
    }
    assert!(load_bytes(Path::new("x.toml"), &[b'a', b'\n', 0xff, 0xfe]).is_err());
}

/// The README's tables of keys state each default again, for users: they must be the values in
/// force, which are defined once, next to their keys (schema.rs, and script::ScriptLimits).
#[test]
fn the_readme_states_the_defaults_in_force() {
    use super::schema::{AgentDef, AppSection, ElectionDef, TableDef, TimerDef, TopicDef};
    use crate::script::ScriptLimits;
    let readme = include_str!("../../README.md");
    // The default column of the first row about `key`, without quotes.
    let stated = |key: &str| -> String {
        let row = format!("| `{key}` | ");
        let line = readme
            .lines()
            .find(|l| l.starts_with(&row))
            .unwrap_or_else(|| panic!("no README row for `{key}`"));
        let cell = line.split(" | ").nth(2).unwrap_or_default();
        cell.trim_matches(|c| c == '`' || c == '"').to_owned()
    };
    let number = |key: &str| -> f64 {
        let text = stated(key);
        text.parse()
            .unwrap_or_else(|_| panic!("`{key}`: {text:?} is not a number"))
    };
    let limits = ScriptLimits::default();
    let numbers = [
        ("topic_partitions", AppSection::TOPIC_PARTITIONS.into()),
        (
            "topic_replication_factor",
            AppSection::TOPIC_REPLICATION_FACTOR.into(),
        ),
        ("commit_every", AppSection::COMMIT_EVERY as f64),
        ("concurrency", AgentDef::CONCURRENCY.into()),
        ("max_operations", limits.max_operations as f64),
        ("max_call_depth", limits.max_call_depth as f64),
        ("max_string_size", limits.max_string_size as f64),
        ("max_array_size", limits.max_array_size as f64),
        ("max_map_size", limits.max_map_size as f64),
        ("max_expr_depth", limits.max_expr_depth as f64),
        ("max_sends", limits.max_sends as f64),
        ("max_table_changes", limits.max_table_changes as f64),
    ];
    let durations = [
        AppSection::SESSION_TIMEOUT,
        AppSection::HEARTBEAT_INTERVAL,
        AppSection::ELECTION_SESSION_TIMEOUT,
        AppSection::ELECTION_HEARTBEAT_INTERVAL,
        AppSection::MAX_POLL_INTERVAL,
        AppSection::COMMIT_INTERVAL,
    ];
    let numbers = numbers
        .into_iter()
        .chain(durations.iter().map(|d| (d.key, d.default)));
    for (key, value) in numbers {
        assert_eq!(number(key), value, "README default of `{key}`");
    }
    let words = [
        ("broker", AppSection::BROKER.to_owned()),
        (
            "value_serializer",
            AppSection::VALUE_SERIALIZER.name().into(),
        ),
        ("key_serializer", AppSection::KEY_SERIALIZER.name().into()),
        ("group_protocol", AppSection::GROUP_PROTOCOL.name().into()),
        (
            "processing_guarantee",
            AppSection::PROCESSING_GUARANTEE.name().into(),
        ),
        ("compacted", TopicDef::COMPACTED.to_string()),
        ("create", TopicDef::CREATE.to_string()),
        ("drop_stale_epochs", AgentDef::DROP_STALE_EPOCHS.to_string()),
        ("timezone", TimerDef::TIMEZONE.name().into()),
        ("candidate", ElectionDef::CANDIDATE.to_string()),
        ("global", TableDef::GLOBAL.to_string()),
        (
            "evict_dead_leaders",
            AppSection::EVICT_DEAD_LEADERS.to_string(),
        ),
    ];
    for (key, value) in words {
        assert_eq!(stated(key), value, "README default of `{key}`");
    }
}

#[test]
fn an_app_name_without_extension_finds_its_toml_file_as_faust_finds_its_module() {
    let dir = std::env::temp_dir().join(format!("faust-rs-locate-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("leader")).unwrap();
    std::fs::write(dir.join("leader.toml"), "").unwrap();
    std::fs::write(dir.join("explicit.conf"), "").unwrap();
    // A folder named like the app (Faust's project package) does not get in the way.
    assert_eq!(locate(&dir.join("leader")), Ok(dir.join("leader.toml")));
    assert_eq!(
        locate(&dir.join("leader.toml")),
        Ok(dir.join("leader.toml"))
    );
    assert_eq!(
        locate(&dir.join("explicit.conf")),
        Ok(dir.join("explicit.conf"))
    );
    let missing = locate(&dir.join("nothing")).unwrap_err();
    assert!(
        missing.contains("nothing nor ") && missing.ends_with("nothing.toml"),
        "{missing}"
    );
    // With an extension, the file is loaded as named: loading reports it missing.
    assert_eq!(
        locate(&dir.join("nothing.toml")),
        Ok(dir.join("nothing.toml"))
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn exactly_once_commits_every_tenth_of_a_second_unless_told_otherwise() {
    let app = |extra: &str| {
        load_text(&format!("{HEAD}{extra}"))
            .unwrap_or_else(|e| panic!("{e}"))
            .app
    };
    let default = app("");
    assert_eq!(
        default.processing_guarantee,
        crate::kafka::ProcessingGuarantee::AtLeastOnce
    );
    assert_eq!(
        (default.commit_interval, default.commit_every),
        (Duration::from_millis(2800), 10_000)
    );
    let eos = app("processing_guarantee = \"exactly_once\"\n");
    assert_eq!(
        (eos.commit_interval, eos.commit_every),
        (Duration::from_millis(100), 100_000)
    );
    let told =
        app("processing_guarantee = \"exactly_once\"\ncommit_interval = 1.5\ncommit_every = 7\n");
    assert_eq!(
        (told.commit_interval, told.commit_every),
        (Duration::from_millis(1500), 7)
    );
    let error = only_error(&format!("{HEAD}processing_guarantee = \"exactly-once\"\n"));
    assert!(
        error.starts_with("app.toml:3:") && error.contains("at_least_once"),
        "{error}"
    );
}

/// Two tables: one co-partitioned with its agent's topic, one global; the changelogs are
/// implied topics, compacted, with the tables' partitions.
const TABLES: &str = r#"[app]
id = "t"
[[topics]]
name = "in"
partitions = 3
[[agents]]
name = "count"
topic = "in"
body = '''
let names = "counts, totals";
1
'''
[[agents]]
name = "other"
body = "let countsx = 1; 1"
[[tables]]
name = "counts"
default = 0
[[tables]]
name = "totals"
default = { n = 0, tags = ["a"] }
key_serializer = "json"
partitions = 2
global = true
"#;

#[test]
fn tables_take_their_defaults_and_their_agents_partitions() {
    use crate::codec::Datum;
    let loaded = load_text(TABLES).unwrap_or_else(|e| panic!("{e}"));
    let app = &loaded.app;
    let names: Vec<&str> = app.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["counts", "totals"]);
    let counts = app.table("counts").unwrap();
    assert_eq!(counts.default, Datum::Value(serde_json::json!(0)));
    assert_eq!((counts.partitions, counts.global), (3, false));
    assert_eq!(
        (counts.key_serializer, counts.value_serializer),
        (app.key_serializer, app.value_serializer)
    );
    assert_eq!(counts.changelog, "t-counts-changelog");
    let totals = app.table("totals").unwrap();
    let default = serde_json::json!({ "n": 0, "tags": ["a"] });
    assert_eq!(totals.default, Datum::Value(default));
    assert_eq!((totals.partitions, totals.global), (2, true));
    assert_eq!(totals.key_serializer, crate::codec::Serializer::Json);
    let changelog = app.topic("t-counts-changelog").unwrap();
    assert!(changelog.compacted && changelog.create && !changelog.declared);
    assert_eq!((changelog.partitions, changelog.replicas), (3, 1));
    let topics: Vec<&str> = app.topics.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        topics,
        ["in", "t-other", "t-counts-changelog", "t-totals-changelog"]
    );
    assert_eq!(app.agent("count").unwrap().tables, [0, 1]);
    // `countsx` is another identifier: `other` uses no table.
    assert!(app.agent("other").unwrap().tables.is_empty());
    let script_tables = &loaded.engine.names().tables;
    let script_names: Vec<&str> = script_tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(script_names, ["counts", "totals"]);
    assert_eq!(script_tables[0].default, counts.default);
}

#[test]
fn a_table_no_agent_uses_has_the_apps_partitions_and_a_null_default() {
    let text = format!("{HEAD}topic_partitions = 5\n[[tables]]\nname = \"idle\"\n");
    let app = load_text(&text).unwrap_or_else(|e| panic!("{e}")).app;
    let idle = app.table("idle").unwrap();
    assert_eq!(idle.partitions, 5);
    assert_eq!(idle.default, crate::codec::Datum::NULL);
    assert_eq!(app.topic("t-idle-changelog").unwrap().partitions, 5);
}

#[test]
fn bad_table_declarations_are_reported_at_their_keys() {
    let text = format!(
        "{HEAD}[[agents]]\nname = \"a\"\nbody = \"1\"\n[[tables]]\nname = \"my-table\"\n[[tables]]\nname = \"x\"\n[[tables]]\nname = \"x\"\n[[tables]]\nname = \"a\"\n[[tables]]\nname = \"y\"\nsize = 3\ndefault = 1979-05-27\n"
    );
    let all = errors(&text);
    // Reported in the order of their positions.
    let expected = [
        "app.toml:7:8: error: table name `my-table` must be an identifier",
        "app.toml:11:8: error: duplicate table `x` (first declared on line 9)",
        "app.toml:13:8: error: table `a` has the same name as agent `a` (line 4)",
        "app.toml:16:1: error: unknown field `size`",
        "app.toml:17:11: error: `default` holds the date-time 1979-05-27",
    ];
    assert_eq!(all.len(), expected.len(), "{all:#?}");
    for (error, start) in all.iter().zip(expected) {
        assert!(error.starts_with(start), "{error}");
    }
}

#[test]
fn a_table_must_have_the_partitions_of_its_agents_topics() {
    let given = TABLES.replace(
        "name = \"counts\"\ndefault = 0\n",
        "name = \"counts\"\npartitions = 4\n",
    );
    let e = only_error(&given);
    assert!(
        e.starts_with(
            "app.toml:18:14: error: table `counts` has 4 partitions but agent `count`, which \
             uses it, consumes `in`, which has 3"
        ),
        "{e}"
    );
    // Two agents with topics of 3 and 8 partitions share `counts`.
    let shared = TABLES.replace("let countsx = 1; 1", "// counts\\n1");
    let e = only_error(&shared);
    assert!(
        e.starts_with(
            "app.toml:17:8: error: agents `count` and `other` use table `counts` but their \
             topics have different partitions (`in`: 3, `t-other`: 8)"
        ),
        "{e}"
    );
    // The global table is exempt; so is a topic whose partitions only the broker knows.
    let external = shared.replace("partitions = 3\n", "partitions = 3\ncreate = false\n");
    let app = load_text(&external).unwrap_or_else(|e| panic!("{e}")).app;
    assert_eq!(app.table("counts").unwrap().partitions, 8);
}

#[test]
fn a_changelog_topic_is_the_tables_own() {
    let text = TABLES.replace("name = \"in\"\n", "name = \"t-counts-changelog\"\n");
    let text = text.replace("topic = \"in\"", "topic = \"t-counts-changelog\"");
    let e = only_error(&text);
    assert!(
        e.starts_with(
            "app.toml:17:8: error: the changelog topic `t-counts-changelog` of table `counts` \
             is already a topic of the app"
        ),
        "{e}"
    );
}
