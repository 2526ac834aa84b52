//! `[[elections]]` with their hooks, the default election, and how timers and tasks name the
//! election they are bound to.

use toml::Spanned;

use super::super::diagnostics::Report;
use super::super::load::Entry;
use super::super::model::{Body, DEFAULT_ELECTION, Election};
use super::super::schema::ElectionDef;
use super::bodies::{Bodies, BodyKeys};
use super::names::{Names, check_plain_name};
use crate::script::BodyKind;

/// The app's elections: the default one first, declared or not.
pub(super) struct Elections {
    pub list: Vec<Election>,
    names: Names,
}

impl Elections {
    pub(super) fn exists(&self, name: &str) -> bool {
        name == DEFAULT_ELECTION || self.names.contains(name)
    }
}

pub(super) fn check(
    report: &mut Report<'_>,
    entries: &[Entry<ElectionDef>],
    bodies: &Bodies<'_>,
) -> Elections {
    let mut names = Names::new("election");
    let mut list = Vec::new();
    for entry in entries {
        let def = &entry.def;
        if names.admit(report, &def.name, |n| check_plain_name(n, "election")) {
            list.push(Election {
                name: def.name.get_ref().clone(),
                candidate: def.candidate.unwrap_or(ElectionDef::CANDIDATE),
                declared: true,
                on_elected: hook(report, bodies, entry, Hook::Elected),
                on_revoked: hook(report, bodies, entry, Hook::Revoked),
            });
        }
    }
    match list.iter().position(|e| e.name == DEFAULT_ELECTION) {
        Some(i) => {
            let default = list.remove(i);
            list.insert(0, default);
        }
        None => list.insert(
            0,
            Election {
                name: DEFAULT_ELECTION.into(),
                candidate: ElectionDef::CANDIDATE,
                declared: false,
                on_elected: None,
                on_revoked: None,
            },
        ),
    }
    Elections { list, names }
}

/// The two hooks of an election.
#[derive(Clone, Copy)]
enum Hook {
    Elected,
    Revoked,
}

impl Hook {
    /// The hook's keys: inline and file.
    fn keys(self) -> (&'static str, &'static str) {
        match self {
            Hook::Elected => ("on_elected", "on_elected_file"),
            Hook::Revoked => ("on_revoked", "on_revoked_file"),
        }
    }

    fn values(self, def: &ElectionDef) -> [Option<&Spanned<String>>; 2] {
        match self {
            Hook::Elected => [def.on_elected.as_ref(), def.on_elected_file.as_ref()],
            Hook::Revoked => [def.on_revoked.as_ref(), def.on_revoked_file.as_ref()],
        }
    }
}

/// A hook's body; hooks are optional.
fn hook(
    report: &mut Report<'_>,
    bodies: &Bodies<'_>,
    entry: &Entry<ElectionDef>,
    hook: Hook,
) -> Option<Body> {
    let def = &entry.def;
    let [inline, file] = hook.values(def);
    if inline.is_none() && file.is_none() {
        return None;
    }
    let keys = BodyKeys {
        kind: BodyKind::Hook,
        owner: format!("election `{}` ({})", def.name.get_ref(), hook.keys().0),
        inline,
        file,
        names: hook.keys(),
        anchor: def.name.span(),
        dropped: &entry.dropped,
    };
    bodies.read(report, keys)
}

/// The election a timer or task is bound to, from `on_leader` and `election`.
pub(super) fn bound_election(
    report: &mut Report<'_>,
    on_leader: Option<&Spanned<bool>>,
    election: Option<&Spanned<String>>,
    elections: &Elections,
) -> Option<String> {
    let Some(e) = election else {
        return on_leader
            .is_some_and(|f| *f.get_ref())
            .then(|| DEFAULT_ELECTION.to_owned());
    };
    let name = e.get_ref();
    if !elections.exists(name) {
        report.error(
            e.span(),
            format!(
                "unknown election `{name}`: declare it with [[elections]] name = \"{name}\" \
                 (the default election is `{DEFAULT_ELECTION}`)"
            ),
        );
    }
    if let Some(flag) = on_leader
        && !flag.get_ref()
    {
        report.error(
            flag.span(),
            "`on_leader = false` contradicts `election`: a body bound to an election runs on its leader",
        );
    }
    Some(name.clone())
}
