//! Reading a parquet file (as the Hugging Face Hub ships data sets) into JSON-like rows, one
//! `serde_json` object per row with the file's column names: strings, integers, booleans,
//! floats, lists and structs (`{"choices": {"text": [...], "label": [...]}}`). It must not know
//! any set's columns (each set maps its own, see `sets`).

use super::Record;
use anyhow::{Context, Result};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::{Number, Value};
use std::path::Path;

/// Every row of the parquet file at `path`, in file order.
pub fn read_rows(path: &Path) -> Result<Vec<Record>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let reader = SerializedFileReader::new(file)
        .with_context(|| format!("{} is not a readable parquet file", path.display()))?;
    let n = usize::try_from(reader.metadata().file_metadata().num_rows()).unwrap_or(0);
    let mut out = Vec::with_capacity(n);
    for (i, row) in reader
        .get_row_iter(None)
        .with_context(|| format!("reading rows of {}", path.display()))?
        .enumerate()
    {
        let row = row.with_context(|| format!("{}: reading row {i}", path.display()))?;
        out.push(
            row.get_column_iter()
                .map(|(name, f)| (name.clone(), to_json(f)))
                .collect(),
        );
    }
    Ok(out)
}

fn to_json(f: &Field) -> Value {
    let num = |x: f64| Number::from_f64(x).map_or(Value::Null, Value::Number);
    match f {
        Field::Null => Value::Null,
        Field::Bool(b) => Value::Bool(*b),
        Field::Byte(x) => Value::from(*x),
        Field::Short(x) => Value::from(*x),
        Field::Int(x) => Value::from(*x),
        Field::Long(x) => Value::from(*x),
        Field::UByte(x) => Value::from(*x),
        Field::UShort(x) => Value::from(*x),
        Field::UInt(x) => Value::from(*x),
        Field::ULong(x) => Value::from(*x),
        Field::Float16(x) => num(f64::from(*x)),
        Field::Float(x) => num(f64::from(*x)),
        Field::Double(x) => num(*x),
        Field::Str(s) => Value::String(s.clone()),
        Field::Bytes(b) => Value::String(String::from_utf8_lossy(b.data()).into_owned()),
        Field::Group(row) => Value::Object(
            row.get_column_iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect(),
        ),
        Field::ListInternal(list) => Value::Array(list.elements().iter().map(to_json).collect()),
        Field::MapInternal(map) => Value::Array(
            map.entries()
                .iter()
                .map(|(k, v)| Value::Array(vec![to_json(k), to_json(v)]))
                .collect(),
        ),
        // Dates, times and decimals do not occur in the standard sets; keep their text form.
        other => Value::String(other.to_string()),
    }
}
