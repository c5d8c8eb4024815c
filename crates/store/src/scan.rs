//! Streaming reads of the latest version: a cursor over the pairs under a key prefix.
//!
//! Loading a large state pair by pair keeps one pair in memory at a time, where collecting
//! the whole prefix first would hold every record twice (raw and decoded) at the peak.

use rocksdb::{DBRawIterator, ReadOptions};

use crate::keys::{self, CF_LATEST};
use crate::reader::cf;
use crate::{KeyValue, Store, StoreError};

/// Read-ahead for a cursor: it reads a whole prefix front to back.
const CURSOR_READAHEAD_BYTES: usize = 2 * 1024 * 1024;

/// A key and its value, borrowed from a cursor until its next step.
pub type PairRef<'a> = (&'a [u8], &'a [u8]);

/// The pairs of the latest committed version under one key prefix, in key order, one at a
/// time. It reads one consistent view: the version that was latest when it was made.
pub struct PrefixCursor<'a> {
    iter: DBRawIterator<'a>,
    started: bool,
}

impl PrefixCursor<'_> {
    /// The next pair, `None` once the prefix is exhausted. The slices live until the next
    /// call.
    pub fn next_pair(&mut self) -> Result<Option<PairRef<'_>>, StoreError> {
        if self.started {
            self.iter.next();
        } else {
            self.started = true;
        }
        if !self.iter.valid() {
            self.iter.status()?;
            return Ok(None);
        }
        Ok(self.iter.item())
    }
}

impl Store {
    /// A cursor over the pairs of the latest committed version whose key starts with
    /// `prefix`, in key order.
    pub fn cursor_prefix_latest(&self, prefix: &[u8]) -> Result<PrefixCursor<'_>, StoreError> {
        self.cursor_latest(prefix, b"", None)
    }

    /// A cursor over the pairs of the latest committed version whose key starts with
    /// `prefix` and lies in `prefix ++ from <= key < prefix ++ to` (no `to`: up to the end of
    /// the prefix), in key order. Disjoint ranges of one prefix can be read in parallel.
    pub fn cursor_latest(
        &self,
        prefix: &[u8],
        from: &[u8],
        to: Option<&[u8]>,
    ) -> Result<PrefixCursor<'_>, StoreError> {
        let mut opts = ReadOptions::default();
        let end = match to {
            Some(to) => Some([prefix, to].concat()),
            None => keys::prefix_successor(prefix),
        };
        if let Some(end) = end {
            opts.set_iterate_upper_bound(end);
        }
        opts.set_readahead_size(CURSOR_READAHEAD_BYTES);
        let mut iter = self.db.raw_iterator_cf_opt(cf(&self.db, CF_LATEST)?, opts);
        iter.seek([prefix, from].concat());
        Ok(PrefixCursor {
            iter,
            started: false,
        })
    }

    /// All (key, value) pairs of the latest committed version whose key starts with `prefix`,
    /// in key order.
    pub fn scan_prefix_latest(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let mut cursor = self.cursor_prefix_latest(prefix)?;
        let mut out = Vec::new();
        while let Some((key, value)) = cursor.next_pair()? {
            out.push((key.to_vec(), value.to_vec()));
        }
        Ok(out)
    }
}
