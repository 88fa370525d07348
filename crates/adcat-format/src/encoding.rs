//! Detection and validation of `encoding-type` / `encoding-version`.

use crate::{FormatError, Result};
use adcat_store::{Attrs, AttrValue, NodeKind, Store};
use std::fmt;

/// Every AnnData element encoding adcat understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Root `anndata` group.
    AnnData,
    /// `raw` group (X, var, varm).
    Raw,
    /// `dataframe` 0.2.0.
    DataFrame,
    /// Legacy `dataframe` 0.1.0 (categories under `__categories`).
    DataFrameLegacy,
    /// `categorical` group (codes + categories).
    Categorical,
    /// `nullable-integer` group (values + mask).
    NullableInteger,
    /// `nullable-boolean` group (values + mask).
    NullableBoolean,
    /// `nullable-string-array` group (values + mask, `na-value`).
    NullableString,
    /// `string-array` dataset.
    StringArray,
    /// Dense `array` dataset.
    Array,
    /// `csr_matrix` group.
    Csr,
    /// `csc_matrix` group.
    Csc,
    /// `dict` group (uns and mappings).
    Dict,
    /// 0-d `numeric-scalar`.
    NumericScalar,
    /// 0-d `string`.
    String,
    /// `null` (None).
    Null,
    /// `rec-array` (structured dtype).
    RecArray,
    /// `awkward-array` group.
    Awkward,
    /// Read-only legacy `bytes` scalar.
    Bytes,
}

impl Encoding {
    /// `(encoding-type, encoding-version)` as written.
    pub fn type_version(self) -> (&'static str, &'static str) {
        match self {
            Encoding::AnnData => ("anndata", "0.1.0"),
            Encoding::Raw => ("raw", "0.1.0"),
            Encoding::DataFrame => ("dataframe", "0.2.0"),
            Encoding::DataFrameLegacy => ("dataframe", "0.1.0"),
            Encoding::Categorical => ("categorical", "0.2.0"),
            Encoding::NullableInteger => ("nullable-integer", "0.1.0"),
            Encoding::NullableBoolean => ("nullable-boolean", "0.1.0"),
            Encoding::NullableString => ("nullable-string-array", "0.1.0"),
            Encoding::StringArray => ("string-array", "0.2.0"),
            Encoding::Array => ("array", "0.2.0"),
            Encoding::Csr => ("csr_matrix", "0.1.0"),
            Encoding::Csc => ("csc_matrix", "0.1.0"),
            Encoding::Dict => ("dict", "0.1.0"),
            Encoding::NumericScalar => ("numeric-scalar", "0.2.0"),
            Encoding::String => ("string", "0.2.0"),
            Encoding::Null => ("null", "0.1.0"),
            Encoding::RecArray => ("rec-array", "0.2.0"),
            Encoding::Awkward => ("awkward-array", "0.1.0"),
            Encoding::Bytes => ("bytes", "0.2.0"),
        }
    }

    /// The two encoding attributes.
    pub fn attrs(self) -> Attrs {
        let (t, v) = self.type_version();
        let mut a = Attrs::new();
        a.insert("encoding-type".into(), AttrValue::String(t.into()));
        a.insert("encoding-version".into(), AttrValue::String(v.into()));
        a
    }

    /// Whether the element is stored as a group.
    pub fn is_group(self) -> bool {
        matches!(
            self,
            Encoding::AnnData
                | Encoding::Raw
                | Encoding::DataFrame
                | Encoding::DataFrameLegacy
                | Encoding::Categorical
                | Encoding::NullableInteger
                | Encoding::NullableBoolean
                | Encoding::NullableString
                | Encoding::Csr
                | Encoding::Csc
                | Encoding::Dict
                | Encoding::Awkward
        )
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (t, v) = self.type_version();
        write!(f, "{t} {v}")
    }
}

/// How an element was identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// The encoding.
    pub encoding: Encoding,
    /// True when the element had no encoding attributes and the encoding was inferred
    /// (files from anndata < 0.8, or sub-arrays such as `X/data`).
    pub inferred: bool,
}

fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let mut it = v.split('.').map(|x| x.parse::<u64>().ok());
    Some((it.next()??, it.next().flatten().unwrap_or(0), it.next().flatten().unwrap_or(0)))
}

/// Identify the element at `path` from its attributes (or its shape, for legacy data).
pub fn detect(store: &dyn Store, path: &str) -> Result<Detected> {
    let kind = store.node_kind(path)?.ok_or_else(|| FormatError::invalid(path, "no such element"))?;
    let attrs = store.attrs(path)?;
    let etype = attrs.get("encoding-type").and_then(AttrValue::as_str).map(str::to_owned);
    let Some(etype) = etype else {
        // No attributes: infer like anndata's legacy readers.
        let encoding = match kind {
            NodeKind::Group => {
                if attrs.contains_key("h5sparse_format") {
                    match attrs.get("h5sparse_format").and_then(AttrValue::as_str) {
                        Some("csc") => Encoding::Csc,
                        _ => Encoding::Csr,
                    }
                } else if path.is_empty() {
                    Encoding::AnnData
                } else {
                    Encoding::Dict
                }
            }
            // Compound arrays without attributes: rec-arrays of anndata < 0.8.
            NodeKind::Array if store.is_record(path)? => Encoding::RecArray,
            NodeKind::Array => {
                let meta = store.array_meta(path)?;
                match (meta.dtype == adcat_store::DType::String, meta.shape.is_empty()) {
                    (true, true) => Encoding::String,
                    (false, true) => Encoding::NumericScalar,
                    (true, false) => Encoding::StringArray,
                    (false, false) => Encoding::Array,
                }
            }
        };
        return Ok(Detected { encoding, inferred: true });
    };
    let version = attrs.get("encoding-version").and_then(AttrValue::as_str).unwrap_or("").to_owned();
    let supported: &[(&str, Encoding)] = match etype.as_str() {
        "anndata" => &[("0.1.0", Encoding::AnnData)],
        "raw" => &[("0.1.0", Encoding::Raw)],
        "dataframe" => &[("0.2.0", Encoding::DataFrame), ("0.1.0", Encoding::DataFrameLegacy)],
        "categorical" => &[("0.2.0", Encoding::Categorical)],
        "nullable-integer" => &[("0.1.0", Encoding::NullableInteger)],
        "nullable-boolean" => &[("0.1.0", Encoding::NullableBoolean)],
        "nullable-string-array" => &[("0.1.0", Encoding::NullableString)],
        "string-array" => &[("0.2.0", Encoding::StringArray)],
        "array" => &[("0.2.0", Encoding::Array)],
        "csr_matrix" => &[("0.1.0", Encoding::Csr)],
        "csc_matrix" => &[("0.1.0", Encoding::Csc)],
        "dict" => &[("0.1.0", Encoding::Dict)],
        "numeric-scalar" => &[("0.2.0", Encoding::NumericScalar)],
        "string" => &[("0.2.0", Encoding::String)],
        "null" => &[("0.1.0", Encoding::Null)],
        "rec-array" => &[("0.2.0", Encoding::RecArray)],
        "awkward-array" => &[("0.1.0", Encoding::Awkward)],
        "bytes" => &[("0.2.0", Encoding::Bytes)],
        _ => return Err(FormatError::UnknownEncoding { path: path.to_owned(), encoding: etype }),
    };
    let unsupported = || FormatError::UnsupportedVersion {
        path: path.to_owned(),
        encoding: etype.clone(),
        version: version.clone(),
        supported: supported.iter().map(|(v, _)| *v).collect::<Vec<_>>().join(", "),
    };
    let found = parse_version(&version).ok_or_else(unsupported)?;
    // Same major.minor as a supported version: patch releases are compatible.
    let encoding = supported
        .iter()
        .find(|(v, _)| parse_version(v).is_some_and(|s| (s.0, s.1) == (found.0, found.1)))
        .map(|(_, e)| *e)
        .ok_or_else(unsupported)?;
    let want_group = encoding.is_group();
    if want_group != (kind == NodeKind::Group) {
        return Err(FormatError::invalid(
            path,
            format!("{etype} must be stored as {}", if want_group { "a group" } else { "an array" }),
        ));
    }
    Ok(Detected { encoding, inferred: false })
}

#[cfg(test)]
mod tests {
    use super::parse_version;

    #[test]
    fn versions() {
        assert_eq!(parse_version("0.2.0"), Some((0, 2, 0)));
        assert_eq!(parse_version("1.0"), Some((1, 0, 0)));
        assert_eq!(parse_version("x"), None);
        assert_eq!(parse_version(""), None);
    }
}
