//! # adcat-format
//!
//! AnnData's on-disk encodings (anndata 0.13.4), read and written against the
//! [`adcat_store::Store`] trait only — the same code serves HDF5 and Zarr.
//!
//! * [`encoding`]: identify and validate `encoding-type` / `encoding-version`;
//! * [`convert`]: stream a whole store into another backend, element by element;
//! * [`frame`], [`sparse`]: typed dataframes, columns and sparse matrices;
//! * [`inspect`]: the element tree with encodings, shapes, dtypes and storage layout;
//! * [`layout`]: chunk/shard/codec choices and memory-bounded block sizes;
//! * [`legacy`]: files of anndata < 0.8 shown in the current encodings.
//! * [`provenance`]: the record of what built a store (root attribute `adcat`).

pub mod collection;
pub mod copy;
pub mod encoding;
mod error;
pub mod frame;
pub mod inspect;
pub mod layout;
pub mod legacy;
pub mod provenance;
pub mod refs;
pub mod sparse;
pub mod stream;
pub mod validate;

pub use copy::{convert, NoProgress, Progress};
pub use encoding::{detect, Encoding};
pub use error::{FormatError, Result};
pub use layout::WriteOptions;
pub use legacy::LegacyView;

use adcat_store::Store;

/// Create the root `anndata` group attributes on an empty store.
pub fn write_root(store: &dyn Store) -> Result<()> {
    store.set_attrs("", &Encoding::AnnData.attrs())?;
    Ok(())
}
