//! Runs `faust-rs -A FILE check` on every broken app under `tests/bad-apps/` and checks that it
//! fails the way the file's header says, and that every `configs/*.toml` passes.
//!
//! A broken app declares what must be reported with header lines:
//!
//! ```toml
//! # expect: 12:9 unknown field `concurency`
//! # expect: other.rhai:3:5 in agent `a`
//! ```
//!
//! Each names a position (in the app file, or in a file next to it) and a text: the binary's
//! standard error must hold `PATH:LINE:COL: error: ` followed by a message containing the text.
//! A file without expectations (e.g. an empty one) must still be refused at 1:1. Every file
//! must exit with status 2 and nothing may panic.

use std::path::{Path, PathBuf};
use std::process::Command;

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_faust-rs")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `(path, line, column, text)` for each `# expect:` line.
fn expectations(app: &Path, bytes: &[u8]) -> Vec<(PathBuf, String, String)> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# expect: ") else {
            continue;
        };
        let (position, message) = rest
            .split_once(' ')
            .unwrap_or_else(|| panic!("{}: bad expect line {line:?}", app.display()));
        // `file.rhai:L:C` names a file next to the app; `L:C` the app itself.
        let parts: Vec<&str> = position.rsplitn(3, ':').collect();
        let (path, line_col) = match parts.as_slice() {
            [col, line, file] => (app.with_file_name(file), format!("{line}:{col}")),
            [col, line] => (app.to_path_buf(), format!("{line}:{col}")),
            _ => panic!("{}: bad position in {line:?}", app.display()),
        };
        out.push((path, line_col, message.to_string()));
    }
    out
}

#[test]
fn every_broken_app_is_refused_with_positions() {
    let dir = Path::new("tests/bad-apps");
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .expect("tests/bad-apps")
        .map(|e| dir.join(e.expect("dir entry").file_name()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 30, "only {} broken apps", files.len());
    let mut failures = Vec::new();
    for app in &files {
        let bytes = std::fs::read(root().join(app)).expect("read app");
        let output = Command::new(binary())
            .current_dir(root())
            .arg("-A")
            .arg(app)
            .arg("check")
            .output()
            .expect("run faust-rs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let mut problems = Vec::new();
        if output.status.code() != Some(2) {
            problems.push(format!(
                "exit status {:?}, expected 2",
                output.status.code()
            ));
        }
        if stderr.contains("panicked") {
            problems.push("panicked".into());
        }
        if !output.stdout.is_empty() {
            problems.push("wrote to standard output".into());
        }
        let mut expected = expectations(app, &bytes);
        if expected.is_empty() {
            expected.push((app.clone(), "1:1".into(), String::new()));
        }
        for (path, position, message) in &expected {
            let prefix = format!("{}:{position}: error: ", path.display());
            let found = stderr
                .lines()
                .any(|l| l.starts_with(&prefix) && l[prefix.len()..].contains(message.as_str()));
            if !found {
                problems.push(format!("missing `{prefix}...{message}...`"));
            }
        }
        let summary = format!("faust-rs: {} error", expected.len());
        if !stderr
            .lines()
            .any(|l| l.starts_with("faust-rs: ") && l.contains(" in "))
        {
            problems.push(format!("no summary line like `{summary}s in ...`"));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}:\n  {}\n  stderr:\n{stderr}",
                app.display(),
                problems.join("\n  ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_example_config_checks() {
    let mut configs: Vec<PathBuf> = std::fs::read_dir(root().join("configs"))
        .expect("configs/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    configs.sort();
    assert!(configs.len() >= 3, "{configs:?}");
    for config in configs {
        let output = Command::new(binary())
            .arg("-A")
            .arg(&config)
            .arg("check")
            .output()
            .expect("run faust-rs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}: {stderr}",
            config.display()
        );
        assert!(!stderr.contains("error"), "{}: {stderr}", config.display());
        for word in [
            "topics (",
            "agents (",
            "timers (",
            "tasks (",
            "elections (",
            "tables (",
        ] {
            assert!(stdout.contains(word), "{}: {stdout}", config.display());
        }
    }
}

#[test]
fn the_leader_tutorial_summary_names_what_the_tutorial_defines() {
    let output = Command::new(binary())
        .current_dir(root())
        .args(["-A", "configs/leader.toml", "check"])
        .output()
        .expect("run faust-rs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("app leader-example"), "{stdout}");
    assert!(stdout.contains("brokers: localhost:9092"), "{stdout}");
    assert!(
        stdout.contains("say: topic leader-example-say, concurrency 1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("publish_greetings: every 2s, on the leader of `leader`"),
        "{stdout}"
    );
}

#[test]
fn master_tutorial_warns_that_on_master_is_deprecated() {
    let output = Command::new(binary())
        .current_dir(root())
        .args(["-A", "configs/master.toml", "check"])
        .output()
        .expect("run faust-rs");
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.lines().any(|l| l.starts_with("configs/master.toml:")
            && l.contains(": warning: `on_master` is deprecated")),
        "{stderr}"
    );
}

#[test]
fn check_without_an_app_is_a_usage_error() {
    let output = Command::new(binary())
        .arg("check")
        .env_remove("FAUST_RS_APP")
        .output()
        .expect("run faust-rs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("-A/--app"));
}

#[test]
fn a_missing_app_file_is_a_configuration_error() {
    let output = Command::new(binary())
        .args(["-A", "no/such/app.toml", "check"])
        .output()
        .expect("run faust-rs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("no/such/app.toml:1:1: error: cannot read the app file"),
        "{stderr}"
    );
}

#[test]
fn agents_lists_names_topics_and_help_as_a_table_and_as_json() {
    let run = |extra: &[&str]| {
        let output = Command::new(binary())
            .current_dir(root())
            .args(["-A", "configs/leader.toml", "agents"])
            .args(extra)
            .output()
            .expect("run faust-rs");
        assert_eq!(output.status.code(), Some(0));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let table = run(&[]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["name", "topic", "help"]
    );
    assert!(
        lines[1].starts_with("@say  leader-example-say  Prints each greeting"),
        "{table}"
    );
    let json: serde_json::Value = serde_json::from_str(&run(&["--json-output"])).expect("JSON");
    assert_eq!(json[0]["name"], "say");
    assert_eq!(json[0]["topic"], "leader-example-say");
    assert!(
        json[0]["help"]
            .as_str()
            .unwrap()
            .starts_with("Prints each greeting")
    );
}

/// A secret read from the environment or a file is used, and `check` never shows it: not in its
/// summary, not in its JSON, not in the error of a value librdkafka refuses. A secret written
/// in the file itself is accepted with a warning.
#[test]
fn values_from_the_environment_and_files_are_read_and_never_shown() {
    let dir = std::env::temp_dir().join(format!("faust-rs-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let from_env = "env-secret-7f3a9c";
    let from_file = "file-secret-2b8e41";
    let written = "written-secret-c0ffee";
    std::fs::write(dir.join("key-password"), format!("{from_file}\n")).unwrap();
    let app = dir.join("app.toml");
    let write_app = |codec: &str| {
        let text = format!(
            "[app]\nid = \"t\"\n\n[kafka]\n\
             \"security.protocol\" = \"SASL_SSL\"\n\
             \"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\
             \"sasl.username\" = \"faust\"\n\
             \"sasl.password\" = {{ env = \"FAUST_RS_TEST_PASSWORD\" }}\n\
             \"ssl.key.password\" = {{ file = \"key-password\" }}\n\
             \"ssl.keystore.password\" = \"{written}\"\n\
             \"compression.type\" = {codec}\n"
        );
        std::fs::write(&app, text).unwrap();
    };
    let check = |extra: &[&str]| {
        Command::new(binary())
            .arg("-A")
            .arg(&app)
            .args(extra)
            .arg("check")
            .env("FAUST_RS_TEST_PASSWORD", from_env)
            .env("FAUST_RS_TEST_CODEC", format!("zip-{from_env}"))
            .output()
            .expect("run faust-rs")
    };
    let never_shown = |output: &std::process::Output| {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        for secret in [from_env, from_file, written] {
            assert!(!all.contains(secret), "{secret} shown:\n{all}");
        }
        all
    };

    write_app("\"lz4\"");
    for extra in [&[][..], &["--json"][..]] {
        let output = check(extra);
        let all = never_shown(&output);
        assert_eq!(output.status.code(), Some(0), "{all}");
        assert!(all.contains("sasl.password"), "the keys are listed: {all}");
    }
    let stderr = String::from_utf8_lossy(&check(&[]).stderr).into_owned();
    assert!(
        stderr.lines().any(|l| l.contains(":10:")
            && l.contains("warning: `ssl.keystore.password` is written in the app file")),
        "{stderr}"
    );

    // A value from the environment that librdkafka refuses is named, never repeated.
    write_app("{ env = \"FAUST_RS_TEST_CODEC\" }");
    let output = check(&[]);
    let all = never_shown(&output);
    assert_eq!(output.status.code(), Some(2), "{all}");
    assert!(
        all.contains(
            ":11:22: error: librdkafka refuses `compression.type`: Invalid value \"(hidden)\""
        ),
        "{all}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `check --json-output` is one JSON document naming every entry of the app, with defaults
/// applied, for scripts (`scripts/lib/cluster.sh` reads it).
#[test]
fn check_json_output_names_every_entry() {
    let dir = std::env::temp_dir().join(format!("faust-rs-check-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let app = dir.join("app.toml");
    std::fs::write(
        &app,
        r#"
[app]
id = "everything"
election_session_timeout = 9

[[topics]]
name = "out"
partitions = 2

[[agents]]
name = "a"
sink = ["out"]
body = 'value'

[[timers]]
name = "every"
interval = 1.5
on_leader = true
body = '()'

[[timers]]
name = "nightly"
cron = "0 3 * * *"
body = '()'

[[tasks]]
name = "once"
body = '()'

[[elections]]
name = "crawl"
candidate = false
"#,
    )
    .unwrap();
    let output = Command::new(binary())
        .arg("-A")
        .arg(&app)
        .args(["check", "--json-output"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let resolved: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let names = |list: &str| -> Vec<String> {
        resolved[list]
            .as_array()
            .unwrap_or_else(|| panic!("no {list}: {resolved}"))
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(resolved["id"], "everything");
    assert_eq!(resolved["election_session_timeout"], 9.0);
    assert_eq!(resolved["session_timeout"], 6.0);
    assert_eq!(names("agents"), ["a"]);
    assert_eq!(names("timers"), ["every", "nightly"]);
    assert_eq!(names("tasks"), ["once"]);
    assert_eq!(names("elections"), ["leader", "crawl"]);
    assert!(names("topics").contains(&"out".to_string()));
    assert_eq!(resolved["timers"][0]["election"], "leader");
    assert_eq!(resolved["elections"][1]["candidate"], false);
    assert_eq!(resolved["agents"][0]["sinks"][0]["topic"], "out");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--version` names the version, the git commit the binary was built from, and librdkafka's
/// version with its built-in features (TLS, SASL and every codec).
#[test]
fn version_names_the_commit_and_librdkafka() {
    let output = Command::new(binary()).arg("--version").output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root())
        .output()
        .unwrap();
    let commit = String::from_utf8(head.stdout).unwrap();
    assert!(
        text.starts_with(&format!(
            "faust-rs {} (commit {})\n",
            env!("CARGO_PKG_VERSION"),
            commit.trim()
        )),
        "{text}"
    );
    let librdkafka = text.lines().nth(1).unwrap_or_default();
    assert!(librdkafka.starts_with("librdkafka 2."), "{text}");
    for feature in ["ssl", "sasl_scram", "zstd", "lz4", "snappy", "oidc"] {
        assert!(librdkafka.contains(feature), "{feature} missing: {text}");
    }
}
