//! The Hub's parquet rows, column by column: owns the getters the sets use to read one row
//! (a string, an integer — also from a numeric string —, a list of strings, an index into the
//! choices), each failing with a message that names the column. It must not know any set.

use super::Record;
use serde_json::Value;

pub(super) fn get<'r>(r: &'r Record, key: &str) -> std::result::Result<&'r Value, String> {
    r.get(key).ok_or_else(|| format!("missing column `{key}`"))
}

pub(super) fn get_str<'r>(r: &'r Record, key: &str) -> std::result::Result<&'r str, String> {
    get(r, key)?
        .as_str()
        .ok_or_else(|| format!("column `{key}` must be a string"))
}

pub(super) fn get_int(r: &Record, key: &str) -> std::result::Result<i64, String> {
    let v = get(r, key)?;
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .ok_or_else(|| format!("column `{key}` must be an integer, found {v}"))
}

pub(super) fn get_strs(v: &Value, what: &str) -> std::result::Result<Vec<String>, String> {
    v.as_array()
        .and_then(|a| {
            a.iter()
                .map(|x| x.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| format!("`{what}` must be a list of strings"))
}

pub(super) fn index(i: i64, n: usize, what: &str) -> std::result::Result<usize, String> {
    usize::try_from(i)
        .ok()
        .filter(|i| *i < n)
        .ok_or_else(|| format!("`{what}` {i} is not an index into {n} choices"))
}
