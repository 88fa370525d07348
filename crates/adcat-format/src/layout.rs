//! Chunk, shard and compression choices for output arrays, and row-block sizes for
//! streaming within a memory budget.

use adcat_store::{ArraySpec, Compression, DType, StoreKind};

/// Options for writing AnnData elements.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WriteOptions {
    /// Compression for every chunked array; `None` means the format's anndata default
    /// (HDF5: none; zarr v3: zstd level 0; zarr v2: blosc lz4 level 5 with shuffle).
    pub compression: Option<Compression>,
    /// Memory budget in bytes for data in flight (blocks read, converted and written).
    pub max_memory: u64,
    /// Target uncompressed bytes per chunk (zarr inner chunk, HDF5 chunk).
    pub chunk_bytes: u64,
    /// Target uncompressed bytes per zarr v3 shard (capped by the memory budget).
    pub shard_bytes: u64,
    /// Rows per chunk of the dense arrays with one row per cell ([`Purpose::Cells`]:
    /// X, layers, obsm, obs columns), e.g. 64 for loaders reading small random
    /// minibatches (`--obs-chunk`); `None`: sized by `chunk_bytes`.
    #[serde(default)]
    pub obs_chunk: Option<u64>,
    /// Store sparse indices in the smallest unsigned integer type that holds every
    /// column number (`--compact-indices`), instead of int32 (int64 past 2^31 columns).
    #[serde(default)]
    pub compact_indices: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions { compression: None, max_memory: 1 << 30, chunk_bytes: 1 << 20, shard_bytes: 64 << 20, obs_chunk: None, compact_indices: false }
    }
}

/// What an array is used for; decides growth and chunking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A dense element (var columns, varm, uns arrays, ...).
    Dense,
    /// A dense element with one row per cell (X, layer, obsm, obs column): chunked by
    /// [`WriteOptions::obs_chunk`] when set.
    Cells,
    /// `data`/`indices`/`indptr` of a sparse matrix: resizable in HDF5, as anndata writes
    /// them, so anndata's own `append` works on adcat outputs.
    SparsePart,
}

/// The compression anndata 0.13.4 uses by default for a store kind.
pub fn default_compression(kind: StoreKind) -> Compression {
    match kind {
        StoreKind::Hdf5 => Compression::None,
        StoreKind::ZarrV3 => Compression::Zstd(0),
        StoreKind::ZarrV2 => Compression::Blosc { cname: "lz4".into(), clevel: 5, shuffle: 1 },
    }
}

/// The type of the column indices of a sparse matrix with `n_cols` columns: int32 as
/// anndata writes (int64 past 2^31 - 1 columns), or with `compact` the smallest unsigned
/// type that holds `n_cols - 1`.
pub fn index_dtype(n_cols: u64, compact: bool) -> DType {
    match n_cols.saturating_sub(1) {
        m if compact && m <= u64::from(u8::MAX) => DType::U8,
        m if compact && m <= u64::from(u16::MAX) => DType::U16,
        m if compact && m <= u64::from(u32::MAX) => DType::U32,
        _ if compact => DType::U64,
        _ if n_cols > i32::MAX as u64 => DType::I64,
        _ => DType::I32,
    }
}

/// Estimated bytes of one element (strings: pointer plus a typical short name).
pub fn element_bytes(dtype: DType) -> u64 {
    if dtype == DType::String {
        32
    } else {
        dtype.itemsize() as u64
    }
}

fn row_bytes(dtype: DType, shape: &[u64]) -> u64 {
    shape.iter().skip(1).product::<u64>().max(1) * element_bytes(dtype)
}

impl WriteOptions {
    /// The compression to use on a store of `kind`.
    pub fn compression_for(&self, kind: StoreKind) -> Compression {
        self.compression.clone().unwrap_or_else(|| default_compression(kind))
    }

    fn shard_target(&self) -> u64 {
        // A shard is written whole from one block, so it must fit well inside the budget.
        self.shard_bytes.min(self.max_memory / 16).max(self.chunk_bytes)
    }

    /// The creation spec for an array of `dtype` and final `shape` on a store of `kind`.
    pub fn spec(&self, kind: StoreKind, dtype: DType, shape: &[u64], purpose: Purpose) -> ArraySpec {
        let compression = self.compression_for(kind);
        let mut spec = ArraySpec::new(dtype, shape.to_vec()).compression(compression.clone());
        if shape.is_empty() {
            // Scalars: never chunked or sharded (as anndata).
            if kind == StoreKind::Hdf5 {
                spec.compression = Compression::None;
            }
            return spec;
        }
        let n = shape[0];
        let rb = row_bytes(dtype, shape);
        let rows_asked = self.obs_chunk.filter(|_| purpose == Purpose::Cells);
        let chunk_rows = rows_asked.unwrap_or(self.chunk_bytes / rb).clamp(1, n.max(1));
        let trailing: Vec<u64> = shape.iter().skip(1).map(|&d| d.max(1)).collect();
        let with_rows = |rows: u64| {
            let mut v = vec![rows];
            v.extend(&trailing);
            v
        };
        match kind {
            StoreKind::Hdf5 => {
                let resizable = purpose == Purpose::SparsePart;
                if resizable || compression != Compression::None || rows_asked.is_some() {
                    spec = spec.chunks(with_rows(chunk_rows)).resizable(resizable);
                }
            }
            StoreKind::ZarrV2 => spec = spec.chunks(with_rows(chunk_rows)),
            StoreKind::ZarrV3 => {
                let per_shard = (self.shard_target() / (chunk_rows * rb)).max(1);
                let n_chunks = n.div_ceil(chunk_rows).max(1);
                let shard_rows = chunk_rows * per_shard.min(n_chunks);
                spec = spec.chunks(with_rows(chunk_rows)).shards(with_rows(shard_rows));
            }
        }
        spec
    }

    /// Rows per streamed block for an array written with `spec`: whole shards (or chunks)
    /// so no chunk is ever read back and rewritten, sized to 1/16 of the budget (a copy
    /// holds the block read, the block written and the codec's buffers; concat holds a few
    /// arrays' blocks at once).
    pub fn block_rows(&self, spec: &ArraySpec) -> u64 {
        let n = spec.shape.first().copied().unwrap_or(1).max(1);
        let unit = spec
            .shards
            .as_ref()
            .or(spec.chunks.as_ref())
            .and_then(|c| c.first().copied())
            .unwrap_or(1)
            .max(1);
        let rb = row_bytes(spec.dtype, &spec.shape);
        let units = ((self.max_memory / 16) / (unit * rb).max(1)).max(1);
        (units * unit).min(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_shards_are_multiples_of_chunks_and_fit_the_budget() {
        let o = WriteOptions { max_memory: 64 << 20, ..Default::default() };
        let s = o.spec(StoreKind::ZarrV3, DType::F32, &[10_000_000], Purpose::Dense);
        let c = s.chunks.clone().unwrap()[0];
        let sh = s.shards.clone().unwrap()[0];
        assert_eq!(sh % c, 0);
        assert!(sh * 4 <= 4 << 20, "shard {sh} rows");
        let b = o.block_rows(&s);
        assert_eq!(b % sh, 0);
        assert!(b * 4 <= 4 << 20);
    }

    #[test]
    fn hdf5_plain_dense_is_contiguous_and_sparse_parts_resizable() {
        let o = WriteOptions::default();
        let s = o.spec(StoreKind::Hdf5, DType::F64, &[100, 3], Purpose::Dense);
        assert_eq!(s.chunks, None);
        let s = o.spec(StoreKind::Hdf5, DType::F64, &[100], Purpose::SparsePart);
        assert!(s.resizable && s.chunks.is_some());
    }
}
