//! Reads, writes, versions, persistence and error cases.

use super::{apply, del, fresh, set, some};
use crate::{Store, StoreError, EMPTY_ROOT_HASH};

#[test]
fn store_is_clone_send_sync() {
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<Store>();
    assert_traits::<crate::PreparedCommit>();
}

#[test]
fn empty_store() {
    let (_dir, store) = fresh();
    assert_eq!(store.latest().unwrap(), None);
    assert_eq!(store.root_hash(0).unwrap(), None);
    assert_eq!(store.get_latest(b"a").unwrap(), None);
    assert!(store.scan_prefix_latest(b"").unwrap().is_empty());
    assert!(matches!(
        store.get(b"a", 0),
        Err(StoreError::UnknownVersion(0))
    ));
    assert!(matches!(
        store.get_with_proof(b"a", 0),
        Err(StoreError::UnknownVersion(0))
    ));
}

#[test]
fn prepare_changes_nothing_until_commit() {
    let (_dir, store) = fresh();
    let c0 = apply(&store, vec![set("a", "1")]);
    let prepared = store
        .prepare(1, vec![set("a", "2"), set("b", "3")])
        .unwrap();
    assert_eq!(prepared.version(), 1);
    assert_ne!(prepared.root_hash(), c0.root_hash);
    assert_eq!(store.latest().unwrap(), Some(c0));
    assert_eq!(store.root_hash(1).unwrap(), None);
    assert_eq!(store.get_latest(b"a").unwrap(), some("1"));
    assert_eq!(store.get_latest(b"b").unwrap(), None);
    assert_eq!(store.get(b"a", 0).unwrap(), some("1"));
    assert!(matches!(
        store.get(b"a", 1),
        Err(StoreError::UnknownVersion(1))
    ));

    let root1 = prepared.root_hash();
    let c1 = store.commit(prepared).unwrap();
    assert_eq!(c1.root_hash, root1);
    assert_eq!(store.latest().unwrap(), Some(c1));
    assert_eq!(store.root_hash(1).unwrap(), Some(root1));
    assert_eq!(store.get_latest(b"a").unwrap(), some("2"));
    assert_eq!(store.get(b"b", 1).unwrap(), some("3"));
}

#[test]
fn commit_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (c0, c1) = {
        let store = Store::open(dir.path()).unwrap();
        let c0 = apply(&store, vec![set("x", "1"), set("y", "2")]);
        let c1 = apply(&store, vec![set("x", "3"), del("y")]);
        // An uncommitted prepare must not leak into the reopened store.
        let _ = store.prepare(2, vec![set("z", "9")]).unwrap();
        (c0, c1)
    };
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.latest().unwrap(), Some(c1));
    assert_eq!(store.root_hash(0).unwrap(), Some(c0.root_hash));
    assert_eq!(store.root_hash(1).unwrap(), Some(c1.root_hash));
    assert_eq!(store.root_hash(2).unwrap(), None);
    assert_eq!(store.get_latest(b"x").unwrap(), some("3"));
    assert_eq!(store.get_latest(b"y").unwrap(), None);
    assert_eq!(store.get_latest(b"z").unwrap(), None);
    assert_eq!(store.get(b"y", 0).unwrap(), some("2"));
    // The chain continues where it stopped.
    let c2 = apply(&store, vec![set("z", "9")]);
    assert_eq!(c2.version, 2);
}

#[test]
fn past_versions_see_old_values_and_deletes() {
    let (_dir, store) = fresh();
    apply(&store, vec![set("k", "v0"), set("other", "o")]);
    apply(&store, vec![set("k", "v1")]);
    apply(&store, vec![del("k")]);
    apply(&store, vec![set("unrelated", "u")]);
    apply(&store, vec![set("k", "v4")]);
    let expected = [some("v0"), some("v1"), None, None, some("v4")];
    for (version, want) in expected.iter().enumerate() {
        assert_eq!(
            &store.get(b"k", version as u64).unwrap(),
            want,
            "v{version}"
        );
    }
    assert_eq!(store.get(b"other", 4).unwrap(), some("o"));
    assert_eq!(store.get(b"unrelated", 2).unwrap(), None);
    assert_eq!(store.get(b"never", 4).unwrap(), None);
    assert_eq!(store.get_latest(b"k").unwrap(), some("v4"));
}

#[test]
fn deleting_everything_gives_the_empty_root() {
    let (_dir, store) = fresh();
    apply(&store, vec![set("a", "1"), set("b", "2")]);
    let c1 = apply(&store, vec![del("a"), del("b")]);
    assert_eq!(c1.root_hash, EMPTY_ROOT_HASH);
    assert!(store.scan_prefix_latest(b"").unwrap().is_empty());
    let c2 = apply(&store, vec![set("a", "1")]);
    assert_ne!(c2.root_hash, EMPTY_ROOT_HASH);
    assert_eq!(store.get(b"a", 2).unwrap(), some("1"));
}

#[test]
fn empty_write_sets_keep_the_root() {
    let (_dir, store) = fresh();
    let c0 = apply(&store, vec![]);
    assert_eq!(c0.root_hash, EMPTY_ROOT_HASH);
    let c1 = apply(&store, vec![]);
    assert_eq!(c1.root_hash, EMPTY_ROOT_HASH);
    let c2 = apply(&store, vec![set("a", "1")]);
    let c3 = apply(&store, vec![]);
    assert_eq!(c3.root_hash, c2.root_hash);
    let c4 = apply(&store, vec![del("missing")]);
    assert_eq!(c4.root_hash, c2.root_hash);
    let c5 = apply(&store, vec![set("a", "1")]);
    assert_eq!(c5.root_hash, c2.root_hash);
    assert_eq!(store.get(b"a", 5).unwrap(), some("1"));
    let c6 = apply(&store, vec![set("b", "2")]);
    assert_ne!(c6.root_hash, c2.root_hash);
}

#[test]
fn write_order_does_not_matter_and_later_duplicates_win() {
    let writes = vec![
        set("acct/01/risk", "1"),
        set("acct/02/risk", "2"),
        set("market/btc", "m"),
        set("acct/01/risk", "3"),
        del("acct/03/risk"),
    ];
    let mut reordered = writes.clone();
    reordered.reverse();
    // After reversing, "acct/01/risk" = "3" comes first; restore "later wins" with a final write.
    reordered.push(set("acct/01/risk", "3"));

    let (_d1, a) = fresh();
    let (_d2, b) = fresh();
    let ra = apply(&a, writes);
    let rb = apply(&b, reordered);
    assert_eq!(ra, rb);
    assert_eq!(a.get_latest(b"acct/01/risk").unwrap(), some("3"));
    assert_eq!(a.get(b"acct/01/risk", 0).unwrap(), some("3"));
}

#[test]
fn same_sequence_same_roots_on_two_stores() {
    let (_d1, a) = fresh();
    let (_d2, b) = fresh();
    let blocks = vec![
        vec![set("a", "1"), set("b", "2"), set("c", "3")],
        vec![set("b", "22"), del("c")],
        vec![],
        vec![set("d", ""), set("e", "5")],
    ];
    for block in blocks {
        assert_eq!(apply(&a, block.clone()), apply(&b, block));
    }
}

#[test]
fn values_may_be_empty() {
    let (_dir, store) = fresh();
    apply(&store, vec![set("e", "")]);
    assert_eq!(store.get(b"e", 0).unwrap(), Some(Vec::new()));
    assert_eq!(store.get_latest(b"e").unwrap(), Some(Vec::new()));
}

#[test]
fn wrong_versions_are_rejected() {
    let (_dir, store) = fresh();
    let not_next = |r: Result<crate::PreparedCommit, StoreError>| {
        matches!(r, Err(StoreError::VersionNotNext { .. }))
    };
    assert!(not_next(store.prepare(1, vec![])));
    apply(&store, vec![set("a", "1")]);
    assert!(not_next(store.prepare(2, vec![])));
    apply(&store, vec![set("a", "2")]);
    assert!(not_next(store.prepare(0, vec![])));
    assert!(not_next(store.prepare(1, vec![])));
    assert!(not_next(store.prepare(3, vec![])));
    assert!(store.prepare(2, vec![]).is_ok());
}

#[test]
fn stale_prepares_are_rejected() {
    let (_dir, store) = fresh();
    apply(&store, vec![set("a", "1")]);
    let first = store.prepare(1, vec![set("a", "2")]).unwrap();
    let second = store.prepare(1, vec![set("a", "3")]).unwrap();
    store.commit(first).unwrap();
    assert!(matches!(
        store.commit(second),
        Err(StoreError::StalePrepare { version: 1, .. })
    ));
    assert_eq!(store.get_latest(b"a").unwrap(), some("2"));
}

#[test]
fn empty_keys_are_rejected() {
    let (_dir, store) = fresh();
    assert!(matches!(
        store.prepare(0, vec![(Vec::new(), Some(b"v".to_vec()))]),
        Err(StoreError::EmptyKey)
    ));
}

#[test]
fn scan_prefix_latest_is_bounded_and_ordered() {
    let (_dir, store) = fresh();
    let ff = (vec![0xff, 0xff, 1], Some(b"f".to_vec()));
    apply(
        &store,
        vec![
            set("acct/b", "2"),
            set("acct/a", "1"),
            set("acct", "0"),
            set("acct0", "x"),
            set("ac", "y"),
            set("market/1", "m"),
            ff,
        ],
    );
    apply(&store, vec![del("acct/b"), set("acct/c", "3")]);
    let got = store.scan_prefix_latest(b"acct/").unwrap();
    let want = vec![
        (b"acct/a".to_vec(), b"1".to_vec()),
        (b"acct/c".to_vec(), b"3".to_vec()),
    ];
    assert_eq!(got, want);
    assert_eq!(store.scan_prefix_latest(b"acct").unwrap().len(), 4);
    assert_eq!(store.scan_prefix_latest(b"").unwrap().len(), 7);
    assert_eq!(store.scan_prefix_latest(&[0xff]).unwrap().len(), 1);
    assert!(store.scan_prefix_latest(b"zzz").unwrap().is_empty());
}

#[test]
fn foreign_databases_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = rocksdb::DB::open_default(dir.path()).unwrap();
        db.put(b"hello", b"world").unwrap();
    }
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn unknown_format_marker_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    {
        let store = Store::open(dir.path()).unwrap();
        let meta = store.db.cf_handle(crate::keys::CF_META).unwrap();
        store
            .db
            .put_cf(meta, crate::keys::META_FORMAT, b"something-else")
            .unwrap();
    }
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn reads_run_concurrently_with_commits() {
    let (_dir, store) = fresh();
    apply(&store, vec![set("k", "0")]);
    let reader = store.clone();
    let handle = std::thread::spawn(move || {
        for _ in 0..200 {
            let latest = reader.latest().unwrap().unwrap();
            let v = reader.get(b"k", latest.version).unwrap().unwrap();
            assert_eq!(v, latest.version.to_string().into_bytes());
        }
    });
    for i in 1..20u64 {
        apply(&store, vec![set("k", &i.to_string())]);
    }
    handle.join().unwrap();
}

#[test]
fn a_prefix_cursor_streams_what_the_scan_returns_from_one_view() {
    let (_dir, store) = fresh();
    let ff = (vec![0xff, 0xff, 1], Some(b"f".to_vec()));
    apply(
        &store,
        vec![
            set("pos/a/1", "p1"),
            set("pos/a/2", "p2"),
            set("pos/b/1", "p3"),
            set("pos", "bare"),
            set("pos0", "after"),
            set("acct/a", "a"),
            ff,
        ],
    );
    for prefix in [&b"pos/"[..], b"pos", b"", &[0xff], b"pos/a/", b"zzz"] {
        let mut cursor = store.cursor_prefix_latest(prefix).unwrap();
        let mut streamed = Vec::new();
        while let Some((key, value)) = cursor.next_pair().unwrap() {
            streamed.push((key.to_vec(), value.to_vec()));
        }
        assert_eq!(streamed, store.scan_prefix_latest(prefix).unwrap());
        assert!(cursor.next_pair().unwrap().is_none(), "stays exhausted");
    }
    // A commit landing while a cursor is open is not seen by it.
    let mut cursor = store.cursor_prefix_latest(b"pos/").unwrap();
    let first = cursor.next_pair().unwrap().map(|(k, _)| k.to_vec());
    assert_eq!(first, Some(b"pos/a/1".to_vec()));
    apply(&store, vec![del("pos/a/2"), set("pos/c/1", "p4")]);
    let mut rest = Vec::new();
    while let Some((key, _)) = cursor.next_pair().unwrap() {
        rest.push(key.to_vec());
    }
    assert_eq!(rest, vec![b"pos/a/2".to_vec(), b"pos/b/1".to_vec()]);
}

#[test]
fn ranges_of_a_prefix_split_it_without_gaps_or_overlaps() {
    let (_dir, store) = fresh();
    apply(
        &store,
        vec![
            set("pos/0a", "1"),
            set("pos/7f", "2"),
            set("pos/8", "3"),
            set("pos/80", "4"),
            set("pos/ff", "5"),
            set("pos/", "6"),
            set("pos0", "outside"),
        ],
    );
    let read = |from: &[u8], to: Option<&[u8]>| {
        let mut cursor = store.cursor_latest(b"pos/", from, to).unwrap();
        let mut keys = Vec::new();
        while let Some((key, _)) = cursor.next_pair().unwrap() {
            keys.push(String::from_utf8(key.to_vec()).unwrap());
        }
        keys
    };
    assert_eq!(read(b"", Some(b"8")), ["pos/", "pos/0a", "pos/7f"]);
    assert_eq!(read(b"8", None), ["pos/8", "pos/80", "pos/ff"]);
    assert_eq!(read(b"8", Some(b"9")), ["pos/8", "pos/80"]);
}

#[test]
fn table_bytes_are_reported_for_every_column_family() {
    let (_dir, store) = fresh();
    apply(&store, vec![set("a", "1")]);
    let sizes = store.table_bytes_by_column_family().unwrap();
    let names: Vec<&str> = sizes.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        ["jmt_nodes", "jmt_values", "preimages", "latest", "meta"]
    );
}

#[test]
fn a_flushed_store_reopens_with_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let committed = apply(&store, vec![set("a", "1"), set("b", "2")]);
    store.flush().unwrap();
    drop(store);
    let reopened = Store::open(dir.path()).unwrap();
    assert_eq!(reopened.latest().unwrap(), Some(committed));
    assert_eq!(reopened.get_latest(b"b").unwrap(), Some(b"2".to_vec()));
}
