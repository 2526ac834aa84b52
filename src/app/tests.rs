//! Unit tests of loading: parsing, validation and positions.

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
