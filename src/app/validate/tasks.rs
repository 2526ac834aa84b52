//! `[[tasks]]`: bodies run once at start, or each time the worker becomes a leader.

use super::super::diagnostics::Report;
use super::super::load::Entry;
use super::super::model::Task;
use super::super::schema::TaskDef;
use super::bodies::{Bodies, BodyKeys, help};
use super::elections::{Elections, bound_election};
use super::names::{Names, check_plain_name};
use crate::script::BodyKind;

/// Each task, resolved; those with errors are left out (after reporting them).
pub(super) fn check(
    report: &mut Report<'_>,
    entries: &[Entry<TaskDef>],
    elections: &Elections,
    bodies: &Bodies<'_>,
) -> Vec<Task> {
    let mut names = Names::new("task");
    let mut tasks = Vec::new();
    for entry in entries {
        let def = &entry.def;
        let name = def.name.get_ref();
        if !names.admit(report, &def.name, |n| check_plain_name(n, "task")) {
            continue;
        }
        let election = bound_election(
            report,
            def.on_leader.as_ref(),
            def.election.as_ref(),
            elections,
        );
        let body = bodies.read(
            report,
            BodyKeys::body_or_file(
                BodyKind::Task,
                &def.name,
                def.body.as_ref(),
                def.file.as_ref(),
                &entry.dropped,
            ),
        );
        if let Some(body) = body {
            tasks.push(Task {
                name: name.clone(),
                election,
                help: help(def.help.as_ref(), Some(&body)),
                body,
            });
        }
    }
    tasks
}
