//! Dataframes and their columns (`dataframe`, `categorical`, `nullable-*`, arrays).

use crate::encoding::{detect, Encoding};
use crate::layout::{Purpose, WriteOptions};
use crate::{FormatError, Result};
use adcat_store::{join_path, ArrayData, AttrValue, DType, Store};

/// One dataframe column (or index) in memory.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// Numeric or bool values (`array`).
    Array(ArrayData),
    /// Strings (`string-array`).
    Strings(Vec<String>),
    /// `categorical`: codes (-1 = missing) into categories.
    Categorical {
        /// Signed integer codes.
        codes: ArrayData,
        /// The categories (strings or numbers).
        categories: ArrayData,
        /// Ordered categorical.
        ordered: bool,
    },
    /// `nullable-integer`: values plus a mask (true = missing).
    NullableInteger {
        /// Integer values (0 where missing).
        values: ArrayData,
        /// Missing flags.
        mask: Vec<bool>,
    },
    /// `nullable-boolean`.
    NullableBoolean {
        /// Values (false where missing).
        values: Vec<bool>,
        /// Missing flags.
        mask: Vec<bool>,
    },
    /// `nullable-string-array`, with pandas' missing-value flavour (`"NA"` or `"NaN"`).
    NullableString {
        /// Values ("" where missing).
        values: Vec<String>,
        /// Missing flags.
        mask: Vec<bool>,
        /// The `na-value` attribute, if written.
        na_value: Option<String>,
    },
}

impl Column {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Column::Array(a) => a.shape().first().copied().unwrap_or(0) as usize,
            Column::Strings(v) => v.len(),
            Column::Categorical { codes, .. } => codes.len(),
            Column::NullableInteger { mask, .. } | Column::NullableBoolean { mask, .. } | Column::NullableString { mask, .. } => mask.len(),
        }
    }

    /// True for a zero-length column.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The column as strings, if it is a string-like index (`string-array`,
    /// `nullable-string-array` or a string `categorical`). Missing values become "nan",
    /// as pandas prints them in an index.
    pub fn to_strings(&self) -> Option<Vec<String>> {
        match self {
            Column::Strings(v) => Some(v.clone()),
            Column::NullableString { values, mask, .. } => {
                Some(values.iter().zip(mask).map(|(v, &m)| if m { "nan".to_owned() } else { v.clone() }).collect())
            }
            Column::Categorical { codes, categories, .. } => {
                let cats = categories.as_strings()?;
                let codes = codes.to_i64_vec()?;
                codes.iter().map(|&c| if c < 0 { Some("nan".to_owned()) } else { cats.get(c as usize).cloned() }).collect()
            }
            _ => None,
        }
    }

    /// Write this column as an element at `path`.
    pub fn write(&self, store: &dyn Store, path: &str, opts: &WriteOptions) -> Result<()> {
        match self {
            Column::Array(a) => write_array(store, path, a, opts),
            Column::Strings(v) => write_array(store, path, &ArrayData::from_vec(v.clone()), opts),
            Column::Categorical { codes, categories, ordered } => {
                store.create_group(path)?;
                let mut attrs = Encoding::Categorical.attrs();
                attrs.insert("ordered".into(), AttrValue::Bool(*ordered));
                store.set_attrs(path, &attrs)?;
                write_array(store, &join_path(path, "codes"), codes, opts)?;
                write_array(store, &join_path(path, "categories"), categories, opts)
            }
            Column::NullableInteger { values, mask } => write_masked(store, path, Encoding::NullableInteger, values, mask, None, opts),
            Column::NullableBoolean { values, mask } => {
                write_masked(store, path, Encoding::NullableBoolean, &ArrayData::from_vec(values.clone()), mask, None, opts)
            }
            Column::NullableString { values, mask, na_value } => write_masked(
                store,
                path,
                Encoding::NullableString,
                &ArrayData::from_vec(values.clone()),
                mask,
                na_value.as_deref(),
                opts,
            ),
        }
    }

    /// Read the column element at `path` whole (annotation columns are small).
    pub fn read(store: &dyn Store, path: &str) -> Result<Column> {
        let col = Self::read_unchecked(store, path)?;
        let ok = match &col {
            Column::NullableInteger { values, mask } => values.len() == mask.len(),
            Column::NullableBoolean { values, mask } => values.len() == mask.len(),
            Column::NullableString { values, mask, .. } => values.len() == mask.len(),
            Column::Categorical { codes, categories, .. } => {
                let n = categories.len() as i64;
                codes.to_i64_vec().unwrap_or_default().iter().all(|&c| c >= -1 && c < n)
            }
            _ => true,
        };
        if !ok {
            return Err(FormatError::invalid(path, "inconsistent column: values/mask lengths differ or codes point past the categories"));
        }
        Ok(col)
    }

    fn read_unchecked(store: &dyn Store, path: &str) -> Result<Column> {
        let det = detect(store, path)?;
        let bools = |p: &str| -> Result<Vec<bool>> {
            match store.read_all(p)? {
                ArrayData::Bool(a) => Ok(a.iter().copied().collect()),
                other => Ok(other.to_i64_vec().unwrap_or_default().into_iter().map(|v| v != 0).collect()),
            }
        };
        match det.encoding {
            Encoding::Array | Encoding::StringArray => match store.read_all(path)? {
                ArrayData::String(a) => Ok(Column::Strings(a.iter().cloned().collect())),
                a => Ok(Column::Array(a)),
            },
            Encoding::Categorical => Ok(Column::Categorical {
                codes: store.read_all(&join_path(path, "codes"))?,
                categories: store.read_all(&join_path(path, "categories"))?,
                ordered: store.attr(path, "ordered")?.and_then(|v| v.as_bool()).unwrap_or(false),
            }),
            Encoding::NullableInteger => Ok(Column::NullableInteger {
                values: store.read_all(&join_path(path, "values"))?,
                mask: bools(&join_path(path, "mask"))?,
            }),
            Encoding::NullableBoolean => Ok(Column::NullableBoolean {
                values: bools(&join_path(path, "values"))?,
                mask: bools(&join_path(path, "mask"))?,
            }),
            Encoding::NullableString => {
                let values = match store.read_all(&join_path(path, "values"))? {
                    ArrayData::String(a) => a.iter().cloned().collect(),
                    _ => return Err(FormatError::invalid(path, "nullable-string-array values are not strings")),
                };
                Ok(Column::NullableString {
                    values,
                    mask: bools(&join_path(path, "mask"))?,
                    na_value: store.attr(path, "na-value")?.and_then(|v| v.as_str().map(str::to_owned)),
                })
            }
            other => Err(FormatError::invalid(path, format!("{other} is not a dataframe column encoding"))),
        }
    }
}

fn write_masked(
    store: &dyn Store,
    path: &str,
    enc: Encoding,
    values: &ArrayData,
    mask: &[bool],
    na_value: Option<&str>,
    opts: &WriteOptions,
) -> Result<()> {
    store.create_group(path)?;
    let mut attrs = enc.attrs();
    if let Some(na) = na_value {
        attrs.insert("na-value".into(), AttrValue::String(na.to_owned()));
    }
    store.set_attrs(path, &attrs)?;
    write_array(store, &join_path(path, "values"), values, opts)?;
    write_array(store, &join_path(path, "mask"), &ArrayData::from_vec(mask.to_vec()), opts)
}

/// Write a dense `array` / `string-array` element (any rank >= 1; 0-d goes to scalars).
pub fn write_array(store: &dyn Store, path: &str, data: &ArrayData, opts: &WriteOptions) -> Result<()> {
    let shape = data.shape();
    if shape.is_empty() {
        return write_scalar(store, path, data);
    }
    let spec = opts.spec(store.kind(), data.dtype(), &shape, Purpose::Dense);
    store.create_array(path, &spec)?;
    store.write_rows(path, 0, data)?;
    let enc = if data.dtype() == DType::String { Encoding::StringArray } else { Encoding::Array };
    store.set_attrs(path, &enc.attrs())?;
    Ok(())
}

/// Write a 0-d `numeric-scalar` or `string` element.
pub fn write_scalar(store: &dyn Store, path: &str, value: &ArrayData) -> Result<()> {
    let spec = WriteOptions::default().spec(store.kind(), value.dtype(), &[], Purpose::Dense);
    store.create_array(path, &spec)?;
    store.write(path, &[], value)?;
    let enc = if value.dtype() == DType::String { Encoding::String } else { Encoding::NumericScalar };
    store.set_attrs(path, &enc.attrs())?;
    Ok(())
}

/// An in-memory dataframe (annotations: obs, var, or a DataFrame in obsm).
#[derive(Debug, Clone, PartialEq)]
pub struct DataFrame {
    /// Name of the index element (`_index` attribute), usually `"_index"`.
    pub index_key: String,
    /// The index (row names).
    pub index: Column,
    /// Columns in order.
    pub columns: Vec<(String, Column)>,
}

impl DataFrame {
    /// A dataframe with a string index and no columns.
    pub fn with_index(index: Vec<String>) -> Self {
        DataFrame { index_key: "_index".into(), index: Column::Strings(index), columns: vec![] }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Write as a `dataframe` 0.2.0 element.
    pub fn write(&self, store: &dyn Store, path: &str, opts: &WriteOptions) -> Result<()> {
        for (name, col) in &self.columns {
            if col.len() != self.len() {
                return Err(FormatError::invalid(&join_path(path, name), format!("column has {} rows, index has {}", col.len(), self.len())));
            }
            if name == &self.index_key || name.contains('/') {
                return Err(FormatError::invalid(path, format!("invalid column name {name:?}")));
            }
        }
        store.create_group(path)?;
        let mut attrs = Encoding::DataFrame.attrs();
        attrs.insert("_index".into(), AttrValue::String(self.index_key.clone()));
        attrs.insert("column-order".into(), AttrValue::Strings(self.columns.iter().map(|(n, _)| n.clone()).collect()));
        store.set_attrs(path, &attrs)?;
        self.index.write(store, &join_path(path, &self.index_key), opts)?;
        for (name, col) in &self.columns {
            col.write(store, &join_path(path, name), opts)?;
        }
        Ok(())
    }

    /// Read a `dataframe` element whole.
    pub fn read(store: &dyn Store, path: &str) -> Result<DataFrame> {
        let index_key = store
            .attr(path, "_index")?
            .and_then(|v| v.as_str().map(str::to_owned))
            .ok_or_else(|| FormatError::invalid(path, "dataframe without an `_index` attribute"))?;
        let order = store.attr(path, "column-order")?.and_then(|v| v.as_strings()).unwrap_or_default();
        let index = Column::read(store, &join_path(path, &index_key))?;
        let mut columns = vec![];
        for name in order {
            let col = Column::read(store, &join_path(path, &name))?;
            if col.len() != index.len() {
                return Err(FormatError::invalid(&join_path(path, &name), format!("column has {} rows, index has {}", col.len(), index.len())));
            }
            columns.push((name, col));
        }
        Ok(DataFrame { index_key, index, columns })
    }
}

/// Read just the index (names) of the dataframe at `path`.
pub fn read_index(store: &dyn Store, path: &str) -> Result<Vec<String>> {
    let key = store
        .attr(path, "_index")?
        .and_then(|v| v.as_str().map(str::to_owned))
        .ok_or_else(|| FormatError::invalid(path, "dataframe without an `_index` attribute"))?;
    let p = join_path(path, &key);
    Column::read(store, &p)?.to_strings().ok_or_else(|| FormatError::invalid(&p, "index is not made of strings"))
}

/// The names a dataframe's string column gives its rows, to match rows by instead of
/// the index (`--var-key`). Refused: a missing column, one that is not strings or
/// string categories, and missing values (a row without a name cannot be matched).
pub fn read_key(store: &dyn Store, frame: &str, column: &str) -> Result<Vec<String>> {
    let p = join_path(frame, column);
    if !store.exists(&p)? {
        return Err(FormatError::invalid(frame, format!("has no column `{column}` to match by")));
    }
    let col = Column::read(store, &p)?;
    let missing = match &col {
        Column::NullableString { mask, .. } => mask.iter().position(|&m| m),
        Column::Categorical { codes, .. } => codes.to_i64_vec().and_then(|c| c.iter().position(|&c| c < 0)),
        _ => None,
    };
    if let Some(row) = missing {
        return Err(FormatError::invalid(&p, format!("row {row} has no value; every row needs a name to be matched by")));
    }
    col.to_strings().ok_or_else(|| FormatError::invalid(&p, "is not a column of strings (or string categories); names are matched as text"))
}

/// Create a `dict` group.
pub fn write_dict(store: &dyn Store, path: &str) -> Result<()> {
    store.create_group(path)?;
    store.set_attrs(path, &Encoding::Dict.attrs())?;
    Ok(())
}
