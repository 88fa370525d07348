//! Telling a job's output errors from its input errors.
//!
//! A job reads inputs and writes an output through the same code paths, so the place an
//! error surfaces does not say which file failed: a full disk while writing `X/indices`
//! would be reported against the input being read. [`OutputStore`] wraps the output and
//! marks every error it raises as [`StoreError::Output`], so callers name the output.

use crate::{Forward, Result, Store, StoreError, StoreKind};

/// A store whose errors are all marked as the output's (see the module docs).
#[derive(Debug)]
pub struct OutputStore<'a>(pub &'a dyn Store);

fn tag(e: StoreError) -> StoreError {
    match e {
        StoreError::Output(_) => e,
        e => StoreError::Output(Box::new(e)),
    }
}

impl Forward for OutputStore<'_> {
    fn target(&self, _path: &str) -> Result<&dyn Store> {
        Ok(self.0)
    }
    fn report(&self, e: StoreError) -> StoreError {
        tag(e)
    }
}

impl Store for OutputStore<'_> {
    fn location(&self) -> &str {
        self.0.location()
    }
    fn kind(&self) -> StoreKind {
        self.0.kind()
    }
    crate::forward_store!(
        node_kind, list, create_group, delete, attrs, set_attrs, create_array, array_meta, read, write, write_rows_range, resize, flush,
        stored_bytes, is_fixed_ascii, is_record, read_record, record_fields, record_len, read_field, create_record, attr,
        physical, create_virtual, virtual_sources,
    );
}
