//! What scripts may do with a table handle ([`Table`]), and the evaluation's view of tables:
//! the runtime's [`TableAccess`] under the evaluation's own pending changes, so that a body
//! reads what it wrote (read-your-writes) although nothing is applied before it succeeds.
//!
//! | Operation | What it does |
//! |---|---|
//! | `t[k]` | the value of `k`, or the table's default when missing (`()` for a `null` default) |
//! | `t[k] = v`, `t.set(k, v)` | set `k` to `v`; `v = ()` removes `k` |
//! | `t.get(k)`, `t.get(k, fallback)` | the value of `k`, or `()` / `fallback` when missing |
//! | `t.contains(k)`, `k in t` | whether `k` is set |
//! | `t.remove(k)` | remove `k`; its old value, or `()` |
//! | `t.len()`, `t.keys()` | how many keys, and which (an array) |
//!
//! Rhai runs `t[k] += 1` as a get then a set through the indexers, and `t[k].field = x` as a
//! get, the change of the copy, then a set. Keys and values convert like sent records
//! (`convert.rs`, within the limits); a key cannot be `()`. Writes first ask the access
//! whether this evaluation may write ([`TableAccess::check_write`]). The access is always
//! called with the frame released (see `context::with_host`).

use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, EvalAltResult, INT};

use super::context::{table_access, with_frame};
use super::convert::{from_dynamic, to_dynamic};
use super::errors::TOO_MANY_TABLE_CHANGES;
use super::functions::{Result, convert_failure, fail, func, outside, runtime, too_large};
use super::tables::{Table, TableAccess, TableChange};
use crate::codec::Datum;

pub(super) fn register(engine: &mut Engine) {
    engine.register_type_with_name::<Table>("Table");
    engine.register_indexer_get(|t: &mut Table, key: Dynamic| -> Result<Dynamic> {
        let value = read(t, &key_of(t, &key)?)?;
        to_value(t, value.as_ref().unwrap_or(t.default()))
    });
    engine.register_indexer_set(set);
    func("set").register_into_engine(engine, set);
    func("get").register_into_engine(engine, |t: &mut Table, key: Dynamic| {
        get_or(t, key, Dynamic::UNIT)
    });
    func("get").register_into_engine(engine, get_or);
    func("contains").register_into_engine(engine, contains);
    func("remove").register_into_engine(engine, remove);
    func("len").register_into_engine(engine, len);
    func("keys").register_into_engine(engine, keys);
    engine.register_get("name", |t: &mut Table| t.name().to_owned());
    engine.register_fn("to_string", |t: &mut Table| format!("Table({})", t.name()));
}

// ---- conversion ---------------------------------------------------------------------------

fn key_of(t: &Table, key: &Dynamic) -> Result<Datum> {
    if key.is_unit() {
        return fail(format!("table `{}`: a key cannot be ()", t.name()));
    }
    to_datum(t, key, "key")
}

fn to_datum(t: &Table, value: &Dynamic, what: &str) -> Result<Datum> {
    with_frame(|frame| {
        from_dynamic(value, Some(&frame.limits)).map_err(|e| {
            convert_failure(e, || {
                format!("table `{}`: the {what} cannot be stored", t.name())
            })
        })
    })
    .ok_or_else(outside)?
}

fn to_value(t: &Table, datum: &Datum) -> Result<Dynamic> {
    with_frame(|frame| {
        to_dynamic(datum, &frame.limits)
            .map_err(|e| convert_failure(e, || format!("table `{}`: a stored value", t.name())))
    })
    .ok_or_else(outside)?
}

// ---- the evaluation's view ----------------------------------------------------------------

fn access() -> Result<Arc<dyn TableAccess>> {
    table_access().ok_or_else(outside)
}

/// An error of the access, as the script's error.
fn refused(t: &Table) -> impl FnOnce(String) -> Box<EvalAltResult> + '_ {
    move |message| runtime(format!("table `{}`: {message}", t.name()))
}

/// The value of `key`: this evaluation's change of it if any, else the access's.
fn read(t: &Table, key: &Datum) -> Result<Option<Datum>> {
    let pending = with_frame(|frame| frame.changes.lookup(t.index(), key).map(|v| v.cloned()))
        .ok_or_else(outside)?;
    match pending {
        Some(value) => Ok(value),
        None => access()?.get(t.index(), key).map_err(refused(t)),
    }
}

/// Records that `key` is now `value` (`None`: removed), if the access lets this evaluation
/// write to the table.
fn write(t: &Table, key: Datum, value: Option<Datum>) -> Result<()> {
    access()?.check_write(t.index()).map_err(refused(t))?;
    let change = TableChange {
        table: t.index(),
        key,
        value,
    };
    with_frame(|frame| frame.changes.record(change, frame.limits.max_table_changes))
        .ok_or_else(outside)?
        .map_err(|_| too_large(TOO_MANY_TABLE_CHANGES))
}

fn set(t: &mut Table, key: Dynamic, value: Dynamic) -> Result<()> {
    let key = key_of(t, &key)?;
    let value = if value.is_unit() {
        None
    } else {
        Some(to_datum(t, &value, "value")?)
    };
    write(t, key, value)
}

fn get_or(t: &mut Table, key: Dynamic, fallback: Dynamic) -> Result<Dynamic> {
    match read(t, &key_of(t, &key)?)? {
        Some(value) => to_value(t, &value),
        None => Ok(fallback),
    }
}

fn contains(t: &mut Table, key: Dynamic) -> Result<bool> {
    Ok(read(t, &key_of(t, &key)?)?.is_some())
}

fn remove(t: &mut Table, key: Dynamic) -> Result<Dynamic> {
    let key = key_of(t, &key)?;
    let old = read(t, &key)?;
    write(t, key, None)?;
    old.map_or(Ok(Dynamic::UNIT), |old| to_value(t, &old))
}

/// The keys this evaluation changed in `t`, each with whether it is now set.
fn pending_keys(t: &Table) -> Result<Vec<(Datum, bool)>> {
    with_frame(|frame| frame.changes.keys_of(t.index())).ok_or_else(outside)
}

/// The access's count, corrected by the keys this evaluation set or removed (one `get` per
/// key changed, rather than listing the whole table).
fn len(t: &mut Table) -> Result<INT> {
    let access = access()?;
    let mut len = access.len(t.index()).map_err(refused(t))? as INT;
    for (key, set) in pending_keys(t)? {
        let was = access.get(t.index(), &key).map_err(refused(t))?.is_some();
        len += INT::from(set) - INT::from(was);
    }
    Ok(len)
}

/// The access's keys, plus the keys this evaluation set, minus those it removed.
fn keys(t: &mut Table) -> Result<Array> {
    let mut keys = access()?.keys(t.index()).map_err(refused(t))?;
    for (key, set) in pending_keys(t)? {
        match (set, keys.iter().position(|k| *k == key)) {
            (true, None) => keys.push(key),
            (false, Some(at)) => {
                keys.remove(at);
            }
            _ => {}
        }
    }
    keys.iter().map(|key| to_value(t, key)).collect()
}
