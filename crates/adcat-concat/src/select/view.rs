//! [`SelectedView`]: an input store seen with only its selected obs rows, so that every
//! element aligned to obs (obs columns and index, X, layers, obsm, raw/X) reads as if
//! the other rows were never there while the engine streams it as usual. Nothing is
//! materialised: reads map to runs of the input's rows; CSR matrices keep one checkpoint
//! of their entry offsets per [`CHECKPOINT`] kept rows.

use super::rows::RowSel;
use adcat_format::{detect, Encoding};
use adcat_store::{join_path, ArrayData, ArrayMeta, AttrValue, Attrs, Forward, NodeKind, Result, Store, StoreError, StoreKind};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Kept rows between two entry-offset checkpoints of a CSR matrix.
const CHECKPOINT: u64 = 4096;
/// Rows of an input's `indptr` read at once while building checkpoints.
const SCAN_ROWS: u64 = 1 << 20;
/// Unwanted bytes read through rather than starting another read (per gap).
const GAP_BYTES: u64 = 256 << 10;

/// How an array of the input relates to obs rows.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Aligned {
    /// Not aligned: read as is.
    No,
    /// Rows along axis 0.
    Rows,
    /// `indptr` of a CSR matrix (the group).
    Indptr(String),
    /// `data` or `indices` of a CSR matrix (the group).
    Entries(String),
}

/// Entry offsets of the kept rows of one CSR matrix.
#[derive(Debug)]
struct Csr {
    /// Offset (in the view) of kept row `i * CHECKPOINT`; the last is the view's nnz.
    checkpoints: Vec<u64>,
}

/// An input store restricted to the obs rows of a [`RowSel`].
pub struct SelectedView<'a> {
    inner: &'a dyn Store,
    sel: Arc<RowSel>,
    csr: Mutex<HashMap<String, Arc<Csr>>>,
}

impl std::fmt::Debug for SelectedView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelectedView").field("inner", &self.inner.location()).field("kept", &self.sel.count()).finish()
    }
}

impl<'a> SelectedView<'a> {
    /// `inner` with only the rows of `sel` along obs.
    pub fn new(inner: &'a dyn Store, sel: Arc<RowSel>) -> Self {
        SelectedView { inner, sel, csr: Mutex::new(HashMap::new()) }
    }

    fn encoding(&self, path: &str) -> Result<Encoding> {
        detect(self.inner, path).map(|d| d.encoding).map_err(|e| StoreError::InvalidMetadata { path: path.to_owned(), reason: e.to_string() })
    }

    /// Where `path` stands towards obs rows (a path of the modern layout).
    fn aligned(&self, path: &str) -> Result<Aligned> {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let (element, rest): (usize, &[&str]) = match parts.as_slice() {
            ["obs", ..] => (1, &parts[1..]),
            ["X", ..] => (1, &parts[1..]),
            ["raw", "X", ..] => (2, &parts[2..]),
            ["layers", _, ..] | ["obsm", _, ..] => (2, &parts[2..]),
            // Cells by cells: only a view keeping no cell selects it (to an empty
            // matrix, as `append` sees its store); a selection keeping cells refuses
            // --pairwise, the only way obsp is read (`check_selectable`).
            ["obsp", _, ..] if self.sel.count() == 0 => (2, &parts[2..]),
            _ => return Ok(Aligned::No),
        };
        let el = parts[..element].join("/");
        if parts[0] == "obs" {
            return self.column_part(&el, rest);
        }
        match (self.encoding(&el)?, rest) {
            (_, []) => Ok(if self.inner.node_kind(&el)? == Some(NodeKind::Array) { Aligned::Rows } else { Aligned::No }),
            (Encoding::Csr, ["indptr"]) => Ok(Aligned::Indptr(el)),
            (Encoding::Csr, ["data" | "indices"]) => Ok(Aligned::Entries(el)),
            (Encoding::DataFrame, _) => self.column_part(&el, rest),
            _ => Ok(Aligned::No),
        }
    }

    /// Parts of a dataframe `frame`: columns and index are rows; inside a categorical
    /// only the codes, inside a nullable array the values and the mask.
    fn column_part(&self, frame: &str, rest: &[&str]) -> Result<Aligned> {
        match rest {
            [_] => Ok(Aligned::Rows),
            [col, leaf] => {
                let enc = self.encoding(&join_path(frame, col))?;
                let rows = match enc {
                    Encoding::Categorical => *leaf == "codes",
                    Encoding::NullableInteger | Encoding::NullableBoolean | Encoding::NullableString => matches!(*leaf, "values" | "mask"),
                    _ => false,
                };
                Ok(if rows { Aligned::Rows } else { Aligned::No })
            }
            _ => Ok(Aligned::No),
        }
    }

    /// The checkpoints of the CSR matrix `group`, built on first use by one pass over
    /// its `indptr`.
    fn csr(&self, group: &str) -> Result<Arc<Csr>> {
        if let Some(c) = self.lock().get(group) {
            return Ok(c.clone());
        }
        let indptr = join_path(group, "indptr");
        let bad = |reason: String| StoreError::InvalidMetadata { path: indptr.clone(), reason };
        let n_ptr = self.inner.array_meta(&indptr)?.shape.first().copied().unwrap_or(0);
        if n_ptr != self.sel.len() + 1 {
            return Err(bad(format!("has {n_ptr} entries for {} rows", self.sel.len())));
        }
        // The engine checks indptr as it reads it; through the view it reads offsets
        // rebuilt from kept rows, so the input's own are checked here, whole.
        let (mut checkpoints, mut offset, mut kept) = (vec![], 0u64, 0u64);
        let mut row = 0;
        let mut last = 0;
        while row < self.sel.len() {
            let end = (row + SCAN_ROWS).min(self.sel.len());
            let ptr = ints(self.inner.read_rows(&indptr, row, end + 1)?, &indptr)?;
            if row == 0 && ptr.first() != Some(&0) {
                return Err(bad("does not start at 0".into()));
            }
            for r in row..end {
                let (p, q) = (ptr[(r - row) as usize], ptr[(r - row + 1) as usize]);
                if q < p {
                    return Err(bad(format!("decreases at row {r} ({p} then {q})")));
                }
                if self.sel.contains(r) {
                    if kept % CHECKPOINT == 0 {
                        checkpoints.push(offset);
                    }
                    kept += 1;
                    offset += q - p;
                }
                last = q;
            }
            row = end;
        }
        let nnz = self.inner.array_meta(&join_path(group, "data"))?.shape.first().copied().unwrap_or(0);
        if last != nnz {
            return Err(bad(format!("ends at {last}, but data has {nnz} entries")));
        }
        checkpoints.push(offset);
        let c = Arc::new(Csr { checkpoints });
        self.lock().insert(group.to_owned(), c.clone());
        Ok(c)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Csr>>> {
        self.csr.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Kept rows `a..b` of `group` with their view offsets and input entry ranges:
    /// `(view start, input start, length)` per row.
    fn rows_entries(&self, group: &str, a: u64, b: u64) -> Result<Vec<(u64, u64, u64)>> {
        let csr = self.csr(group)?;
        let from = a / CHECKPOINT * CHECKPOINT;
        let mut offset = csr.checkpoints[(a / CHECKPOINT) as usize];
        let indptr = join_path(group, "indptr");
        let mut out = Vec::with_capacity((b - from) as usize);
        for (lo, hi, runs) in coalesce(&self.sel.runs(from, b), 8) {
            let ptr = ints(self.inner.read_rows(&indptr, lo, hi + 1)?, &indptr)?;
            for (s, e) in runs {
                for r in s..e {
                    let (p, q) = (ptr[(r - lo) as usize], ptr[(r - lo + 1) as usize]);
                    out.push((offset, p, q.saturating_sub(p)));
                    offset += q.saturating_sub(p);
                }
            }
        }
        Ok(out.split_off(((a - from) as usize).min(out.len())))
    }

    fn read_indptr(&self, group: &str, start: u64, n: u64) -> Result<ArrayData> {
        let csr = self.csr(group)?;
        let kept = self.sel.count();
        let end = (start + n).min(kept + 1);
        let mut v: Vec<u64> = self.rows_entries(group, start.min(kept), end.min(kept))?.iter().map(|r| r.0).collect();
        if n > 0 && end == kept + 1 {
            v.push(*csr.checkpoints.last().unwrap_or(&0));
        }
        let dtype = self.inner.array_meta(&join_path(group, "indptr"))?.dtype;
        let a = ArrayData::from_vec(v.into_iter().map(|x| x as i64).collect::<Vec<_>>());
        a.cast(dtype).ok_or_else(|| StoreError::InvalidMetadata { path: join_path(group, "indptr"), reason: format!("indptr of dtype {dtype}") })
    }

    fn read_entries(&self, path: &str, group: &str, start: u64, n: u64) -> Result<ArrayData> {
        let csr = self.csr(group)?;
        let end = start + n;
        // The kept row holding entry `start`, then rows until entry `end`.
        let cp = csr.checkpoints.partition_point(|&c| c <= start).saturating_sub(1) as u64;
        let mut ranges: Vec<(u64, u64)> = vec![];
        let mut first = cp * CHECKPOINT;
        'scan: while first < self.sel.count() {
            let last = (first + CHECKPOINT).min(self.sel.count());
            for (view, input, len) in self.rows_entries(group, first, last)? {
                if view >= end {
                    break 'scan;
                }
                let (lo, hi) = (start.max(view), end.min(view + len));
                if lo < hi {
                    ranges.push((input + lo - view, input + hi - view));
                }
            }
            first = last;
        }
        gather(self.inner, path, &[], &[], &ranges)
    }
}

/// Values of an integer array, as u64 (indptr).
fn ints(a: ArrayData, path: &str) -> Result<Vec<u64>> {
    a.to_i64_vec().map(|v| v.into_iter().map(|x| x.max(0) as u64).collect()).ok_or_else(|| StoreError::InvalidMetadata { path: path.to_owned(), reason: "indptr is not integer".into() })
}

/// One merged read: rows `lo..hi`, of which the listed ranges are kept.
type Read = (u64, u64, Vec<(u64, u64)>);

/// Ranges of rows (in order) grouped into reads: a group reads `lo..hi` and keeps its
/// ranges. A gap joins a group when it is small ([`GAP_BYTES`]) and the read stays
/// within twice the bytes wanted plus one gap, so a sparse selection never reads much
/// more than the budget planned for its kept rows.
fn coalesce(ranges: &[(u64, u64)], row_bytes: u64) -> Vec<Read> {
    let row_bytes = row_bytes.max(1);
    let mut out: Vec<Read> = vec![];
    let mut wanted = 0u64;
    for &(s, e) in ranges {
        if let Some((lo, hi, runs)) = out.last_mut() {
            let gap = s.saturating_sub(*hi) * row_bytes;
            let span = (e - *lo) * row_bytes;
            if s >= *hi && gap <= GAP_BYTES && span <= 2 * (wanted + (e - s) * row_bytes) + GAP_BYTES {
                *hi = e;
                runs.push((s, e));
                wanted += (e - s) * row_bytes;
                continue;
            }
        }
        out.push((s, e, vec![(s, e)]));
        wanted = (e - s) * row_bytes;
    }
    out
}

/// Rows `ranges` (axis 0, in order) of the array at `path`, with the box `start`/`shape`
/// on the trailing axes, concatenated.
fn gather(inner: &dyn Store, path: &str, start: &[u64], shape: &[u64], ranges: &[(u64, u64)]) -> Result<ArrayData> {
    let dtype = inner.array_meta(path)?.dtype;
    let row_bytes = shape.iter().product::<u64>().max(1) * adcat_format::layout::element_bytes(dtype);
    let mut parts = vec![];
    for (lo, hi, runs) in coalesce(ranges, row_bytes) {
        let block = inner.read(path, &[&[lo][..], start].concat(), &[&[hi - lo][..], shape].concat())?;
        for (s, e) in runs {
            parts.push(block.slice_rows((s - lo) as usize, (e - lo) as usize));
        }
    }
    if parts.is_empty() {
        return Ok(ArrayData::zeros(dtype, &[&[0][..], shape].concat()));
    }
    ArrayData::concat_rows(&parts).ok_or_else(|| StoreError::InvalidMetadata { path: path.to_owned(), reason: "rows of different types".into() })
}

impl Forward for SelectedView<'_> {
    fn target(&self, _path: &str) -> Result<&dyn Store> {
        Ok(self.inner)
    }
}

impl Store for SelectedView<'_> {
    fn location(&self) -> &str {
        self.inner.location()
    }

    fn kind(&self) -> StoreKind {
        self.inner.kind()
    }

    fn attrs(&self, path: &str) -> Result<Attrs> {
        let mut a = self.inner.attrs(path)?;
        // A CSR matrix along obs: its logical shape has the kept rows (also under the
        // h5sparse name of old and R-written files).
        for key in ["shape", "h5sparse_shape"] {
            let Some(shape) = a.get(key).and_then(AttrValue::as_ints) else { continue };
            if shape.len() == 2 && matches!(self.aligned(&join_path(path, "indptr"))?, Aligned::Indptr(_)) {
                a.insert(key.into(), AttrValue::Ints(vec![self.sel.count() as i64, shape[1]]));
            }
        }
        Ok(a)
    }

    fn array_meta(&self, path: &str) -> Result<ArrayMeta> {
        let mut m = self.inner.array_meta(path)?;
        let aligned = self.aligned(path)?;
        let n = self.sel.len();
        if aligned == Aligned::Rows && m.shape.first() != Some(&n) {
            return Err(StoreError::InvalidMetadata { path: path.to_owned(), reason: format!("has {} rows, expected {n} (one per obs)", m.shape.first().copied().unwrap_or(0)) });
        }
        match aligned {
            Aligned::No => {}
            Aligned::Rows => m.shape[0] = self.sel.count(),
            Aligned::Indptr(_) => m.shape[0] = self.sel.count() + 1,
            Aligned::Entries(group) => m.shape[0] = *self.csr(&group)?.checkpoints.last().unwrap_or(&0),
        }
        Ok(m)
    }

    fn read(&self, path: &str, start: &[u64], shape: &[u64]) -> Result<ArrayData> {
        let aligned = self.aligned(path)?;
        if aligned == Aligned::No || start.is_empty() {
            return self.inner.read(path, start, shape);
        }
        let meta = self.array_meta(path)?;
        adcat_store::check_box(path, &meta.shape, start, shape)?;
        match aligned {
            Aligned::Rows => gather(self.inner, path, &start[1..], &shape[1..], &self.sel.runs(start[0], start[0] + shape[0])),
            Aligned::Indptr(group) => self.read_indptr(&group, start[0], shape[0]),
            Aligned::Entries(group) => self.read_entries(path, &group, start[0], shape[0]),
            Aligned::No => unreachable!("handled above"),
        }
    }

    adcat_store::forward_store!(
        node_kind, list, stored_bytes, is_fixed_ascii, is_record, read_record, record_fields, read_field, record_len,
    );
    adcat_store::read_only_store!();
}
