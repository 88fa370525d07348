//! Store wrappers without the boilerplate.
//!
//! Many stores wrap another and change little: a group seen as a root ([`crate::Sub`]),
//! a memory guard ([`crate::Bounded`]), errors marked as the output's
//! ([`crate::OutputStore`]), views that translate a few paths or refuse writes. Each
//! implements [`Forward`] — which store a call goes to, under which path, how its errors
//! are reported — and lists in [`forward_store!`] the [`crate::Store`] methods that
//! simply pass on; the methods it changes it writes out. [`read_only_store!`] writes
//! the methods of a view that refuses every change.

use crate::{Result, Store, StoreError};
use std::borrow::Cow;

/// What a store wrapper does around the calls it passes on (see the module docs).
pub trait Forward {
    /// The store a call on `path` goes to, after the wrapper's own checks (a
    /// failing check is the call's error).
    fn target(&self, path: &str) -> Result<&dyn Store>;

    /// `path` as the target names it (by default the same).
    fn target_path<'p>(&self, path: &'p str) -> Cow<'p, str> {
        Cow::Borrowed(path)
    }

    /// An error of the target as the wrapper reports it (by default as it is).
    fn report(&self, e: StoreError) -> StoreError {
        e
    }
}

/// Implements the listed [`crate::Store`] methods of a type implementing [`Forward`]
/// by calling the same method of its target, with the path mapped and errors reported
/// as [`Forward`] says. Use inside `impl Store for ... { }`; any method taking an
/// element path can be listed, and `flush` (sent to the target of path `""`).
#[macro_export]
macro_rules! forward_store {
    ($($m:ident),* $(,)?) => { $( $crate::forward_store!(@one $m); )* };
    (@one flush) => {
        fn flush(&self) -> $crate::Result<()> {
            $crate::Forward::target(self, "")?.flush().map_err(|e| $crate::Forward::report(self, e))
        }
    };
    (@one node_kind) => { $crate::forward_store!(@call node_kind () -> Option<$crate::NodeKind>); };
    (@one list) => { $crate::forward_store!(@call list () -> Vec<String>); };
    (@one create_group) => { $crate::forward_store!(@call create_group () -> ()); };
    (@one delete) => { $crate::forward_store!(@call delete () -> ()); };
    (@one attrs) => { $crate::forward_store!(@call attrs () -> $crate::Attrs); };
    (@one set_attrs) => { $crate::forward_store!(@call set_attrs (attrs: &$crate::Attrs) -> ()); };
    (@one create_array) => { $crate::forward_store!(@call create_array (spec: &$crate::ArraySpec) -> ()); };
    (@one array_meta) => { $crate::forward_store!(@call array_meta () -> $crate::ArrayMeta); };
    (@one read) => { $crate::forward_store!(@call read (start: &[u64], shape: &[u64]) -> $crate::ArrayData); };
    (@one write) => { $crate::forward_store!(@call write (start: &[u64], data: &$crate::ArrayData) -> ()); };
    (@one resize) => { $crate::forward_store!(@call resize (shape: &[u64]) -> ()); };
    (@one stored_bytes) => { $crate::forward_store!(@call stored_bytes () -> Option<u64>); };
    (@one is_fixed_ascii) => { $crate::forward_store!(@call is_fixed_ascii () -> bool); };
    (@one is_record) => { $crate::forward_store!(@call is_record () -> bool); };
    (@one read_record) => { $crate::forward_store!(@call read_record () -> Vec<(String, $crate::ArrayData)>); };
    (@one record_fields) => { $crate::forward_store!(@call record_fields () -> Vec<$crate::RecordField>); };
    (@one record_len) => { $crate::forward_store!(@call record_len () -> u64); };
    (@one read_field) => { $crate::forward_store!(@call read_field (field: &str, start: u64, end: u64) -> $crate::ArrayData); };
    (@one create_record) => {
        $crate::forward_store!(@call create_record (fields: &[(String, $crate::ArrayData)], compression: &$crate::Compression) -> ());
    };
    (@one exists) => { $crate::forward_store!(@call exists () -> bool); };
    (@one attr) => { $crate::forward_store!(@call attr (name: &str) -> Option<$crate::AttrValue>); };
    (@one read_all) => { $crate::forward_store!(@call read_all () -> $crate::ArrayData); };
    (@one read_rows) => { $crate::forward_store!(@call read_rows (start: u64, end: u64) -> $crate::ArrayData); };
    (@one write_rows) => { $crate::forward_store!(@call write_rows (start: u64, data: &$crate::ArrayData) -> ()); };
    (@one write_rows_range) => {
        $crate::forward_store!(@call write_rows_range (start: u64, data: &$crate::ArrayData, rows: std::ops::Range<usize>) -> ());
    };
    (@one physical) => { $crate::forward_store!(@call physical () -> Option<$crate::Physical>); };
    (@one create_virtual) => {
        $crate::forward_store!(@call create_virtual (dtype: $crate::DType, shape: &[u64], sources: &[$crate::VirtualSource]) -> ());
    };
    (@one virtual_sources) => { $crate::forward_store!(@call virtual_sources () -> Vec<$crate::VirtualSource>); };
    (@call $m:ident ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        fn $m(&self, path: &str $(, $arg: $ty)*) -> $crate::Result<$ret> {
            let target = $crate::Forward::target(self, path)?;
            target.$m(&$crate::Forward::target_path(self, path) $(, $arg)*).map_err(|e| $crate::Forward::report(self, e))
        }
    };
}

/// Implements the [`crate::Store`] methods that change a store as refusals
/// ([`StoreError::ReadOnly`]) and `flush` as nothing to do: for views. Use inside
/// `impl Store for ... { }`.
#[macro_export]
macro_rules! read_only_store {
    () => {
        fn create_group(&self, path: &str) -> $crate::Result<()> {
            Err($crate::StoreError::ReadOnly { path: path.to_owned() })
        }
        fn delete(&self, path: &str) -> $crate::Result<()> {
            Err($crate::StoreError::ReadOnly { path: path.to_owned() })
        }
        fn set_attrs(&self, path: &str, _attrs: &$crate::Attrs) -> $crate::Result<()> {
            Err($crate::StoreError::ReadOnly { path: path.to_owned() })
        }
        fn create_array(&self, path: &str, _spec: &$crate::ArraySpec) -> $crate::Result<()> {
            Err($crate::StoreError::ReadOnly { path: path.to_owned() })
        }
        fn write(&self, path: &str, _start: &[u64], _data: &$crate::ArrayData) -> $crate::Result<()> {
            Err($crate::StoreError::ReadOnly { path: path.to_owned() })
        }
        fn resize(&self, path: &str, _shape: &[u64]) -> $crate::Result<()> {
            Err($crate::StoreError::ReadOnly { path: path.to_owned() })
        }
        fn create_record(&self, path: &str, _fields: &[(String, $crate::ArrayData)], _compression: &$crate::Compression) -> $crate::Result<()> {
            Err($crate::StoreError::ReadOnly { path: path.to_owned() })
        }
        fn flush(&self) -> $crate::Result<()> {
            Ok(())
        }
    };
}
