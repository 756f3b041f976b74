//! The FileProvider mapping driven as macOS drives a replicated
//! extension, by a fake of the system (`fake/`), over a real VFS on a
//! real agent serving a temporary directory through a real link, so that
//! remote changes arrive as the agent's pushed change events.
//!
//! Unix only: the served tree is made with symlinks and FIFOs.
#![cfg(unix)]

mod fake;

use fake::{FakeSystem, Reported};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use yonder_fileprovider::{
    ByteRange, Changed, Enumerator, ErrorDomain, ItemChanges, ItemIdentifier, ItemKind, ItemTemplate,
    SyncAnchor, MAX_CHANGES,
};
use yonder_remote::{Link, LinkOptions};
use yonder_testkit::agent::{TcpAgent, TcpConnector};
use yonder_testkit::faults::{Fault, Faulty, Op};
use yonder_vfs::{Errno, MemoryJournal, Vfs, VfsOptions};

/// The served directory, its agent and link, the VFS over them (with
/// 60 s caches: only pushed changes make them stale), the fault injector
/// in front of the agent, and the fake system with the extension loaded.
struct Domain {
    dir: tempfile::TempDir,
    faults: Arc<Faulty>,
    system: FakeSystem,
    _link: Link,
    _agent: TcpAgent,
}

impl Domain {
    async fn start(fill: impl FnOnce(&Path), page_size: usize) -> Domain {
        let dir = tempfile::tempdir().unwrap();
        fill(dir.path());
        let agent = TcpAgent::start(dir.path()).await.unwrap();
        let link = Link::start(
            Arc::new(TcpConnector { addr: agent.addr() }),
            LinkOptions::default(),
        )
        .await
        .unwrap();
        let faults = Faulty::new(link.current().1);
        let options = VfsOptions {
            attr_ttl: Duration::from_secs(60),
            dir_ttl: Duration::from_secs(60),
            ..VfsOptions::default()
        };
        let vfs = Vfs::new(faults.clone(), options, Arc::new(MemoryJournal::default()))
            .await
            .unwrap();
        vfs.follow_changes(link.changes());
        let start = std::time::Instant::now();
        while !vfs.changes_pushed() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "changes not pushed within 5 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let system = FakeSystem::start(vfs, page_size).await;
        Domain {
            dir,
            faults,
            system,
            _link: link,
            _agent: agent,
        }
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }
}

fn id(path: &str) -> ItemIdentifier {
    ItemIdentifier::for_path(path.as_bytes())
}

fn names(items: &[yonder_fileprovider::Item]) -> Vec<String> {
    items
        .iter()
        .map(|i| String::from_utf8_lossy(&i.filename).into_owned())
        .collect()
}

/// Listing: every name, across pages, with kinds, sizes and symlink
/// targets; what FileProvider cannot show (a FIFO) left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_are_enumerated_page_by_page_in_name_order() {
    let domain = Domain::start(
        |root| {
            for i in 0..7 {
                std::fs::write(root.join(format!("f{i}")), vec![b'x'; i]).unwrap();
            }
            std::fs::create_dir(root.join("sub")).unwrap();
            std::fs::write(root.join("sub/inner"), b"inner").unwrap();
            std::os::unix::fs::symlink("f3", root.join("link")).unwrap();
            let made = std::process::Command::new("mkfifo")
                .arg(root.join("fifo"))
                .status();
            assert!(made.unwrap().success(), "mkfifo");
        },
        3,
    )
    .await;
    let system = &domain.system;

    let root = system.list(&ItemIdentifier::Root).await.unwrap();
    assert_eq!(
        names(&root),
        ["f0", "f1", "f2", "f3", "f4", "f5", "f6", "link", "sub"]
    );
    let f5 = root.iter().find(|i| i.filename == b"f5").unwrap();
    assert_eq!(
        (f5.kind.clone(), f5.size, f5.identifier.clone()),
        (ItemKind::File, 5, id("f5"))
    );
    let link = root.iter().find(|i| i.filename == b"link").unwrap();
    assert_eq!(link.kind, ItemKind::Symlink(b"f3".to_vec()));
    let sub = root.iter().find(|i| i.filename == b"sub").unwrap();
    assert_eq!(sub.kind, ItemKind::Directory);

    let inner = system.list(&sub.identifier).await.unwrap();
    assert_eq!(names(&inner), ["inner"]);
    assert_eq!(inner[0].identifier, id("sub/inner"));
    assert_eq!(inner[0].parent, id("sub"));
    // Looked up by identifier, as the system does for one it kept.
    assert_eq!(system.item(&id("sub/inner")).await.unwrap(), inner[0]);
    assert_eq!(
        system.item(&ItemIdentifier::Root).await.unwrap().kind,
        ItemKind::Directory
    );
    assert!(system.reported().is_empty(), "{:?}", system.reported());
}

/// Hydration: a whole file; a range inside it, aligned; a range across
/// the end of the file; a range wholly past the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contents_are_fetched_whole_and_by_aligned_range() {
    let data: Vec<u8> = (0..3 * 1024 * 1024 + 1000)
        .map(|i: u32| (i % 251) as u8)
        .collect();
    let size = data.len() as u64;
    let domain = Domain::start(
        |root| {
            std::fs::write(root.join("big"), &data).unwrap();
            std::fs::write(root.join("empty"), b"").unwrap();
        },
        100,
    )
    .await;
    let system = &domain.system;
    let big = id("big");

    let (item, whole) = system.fetch(&big).await.unwrap();
    assert_eq!(item.size, size);
    assert!(whole == data, "the whole file's data differs");
    let (_, empty) = system.fetch(&id("empty")).await.unwrap();
    assert!(empty.is_empty());

    // A range inside: the aligned blocks around it, not the whole file.
    let (range, part) = system
        .fetch_range(
            &big,
            ByteRange {
                offset: 5000,
                len: 100,
            },
            4096,
        )
        .await
        .unwrap();
    assert_eq!(
        range,
        ByteRange {
            offset: 4096,
            len: 4096
        }
    );
    assert_eq!(part, data[4096..8192]);

    // A partial range across the end: up to the end, no further.
    let (range, part) = system
        .fetch_range(
            &big,
            ByteRange {
                offset: size - 10,
                len: 1 << 20,
            },
            4096,
        )
        .await
        .unwrap();
    assert_eq!(range.offset, (size - 10) / 4096 * 4096);
    assert_eq!(range.end(), size);
    assert_eq!(part, data[range.offset as usize..]);

    // Past the end: nothing of the file lies there, so the whole file.
    let (range, part) = system
        .fetch_range(
            &big,
            ByteRange {
                offset: size + 4096,
                len: 4096,
            },
            4096,
        )
        .await
        .unwrap();
    assert_eq!(range, ByteRange { offset: 0, len: size });
    assert!(part == data);
    assert!(system.reported().is_empty(), "{:?}", system.reported());
}

/// Rename and move through modifyItem: the item answers under its new
/// identifier, the old one is gone, the remote has the new names; a
/// rename onto a taken name is a filename collision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renames_and_moves_go_to_the_remote_and_collisions_are_reported() {
    let domain = Domain::start(
        |root| {
            std::fs::write(root.join("a.txt"), b"alpha").unwrap();
            std::fs::write(root.join("taken"), b"t").unwrap();
            std::fs::create_dir(root.join("dir")).unwrap();
        },
        100,
    )
    .await;
    let system = &domain.system;
    system.list(&ItemIdentifier::Root).await.unwrap();

    let renamed = system
        .modify(
            &id("a.txt"),
            ItemChanges {
                filename: Some(b"b.txt".to_vec()),
                ..ItemChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.identifier, id("b.txt"));
    assert_eq!(renamed.size, 5);
    assert!(!domain.path("a.txt").exists());
    assert_eq!(std::fs::read(domain.path("b.txt")).unwrap(), b"alpha");
    assert_eq!(system.item(&id("a.txt")).await.unwrap_err().code, -1005);

    let moved = system
        .modify(
            &id("b.txt"),
            ItemChanges {
                parent: Some(id("dir")),
                filename: Some(b"c.txt".to_vec()),
                ..ItemChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (moved.identifier.clone(), moved.parent.clone()),
        (id("dir/c.txt"), id("dir"))
    );
    assert_eq!(std::fs::read(domain.path("dir/c.txt")).unwrap(), b"alpha");

    let collision = system
        .modify(
            &id("dir/c.txt"),
            ItemChanges {
                parent: Some(ItemIdentifier::Root),
                filename: Some(b"taken".to_vec()),
                ..ItemChanges::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        (collision.domain, collision.code),
        (ErrorDomain::FileProvider, -1001)
    );
    assert_eq!(
        std::fs::read(domain.path("taken")).unwrap(),
        b"t",
        "the taken name was replaced"
    );

    // New contents and a new item, written through to the remote.
    let local = system.local_contents(b"new data");
    let changed = system
        .modify(
            &id("dir/c.txt"),
            ItemChanges {
                contents: Some(local),
                ..ItemChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.size, 8);
    assert_ne!(changed.version, moved.version);
    assert_eq!(std::fs::read(domain.path("dir/c.txt")).unwrap(), b"new data");
    let created = system
        .create(
            ItemTemplate {
                parent: id("dir"),
                filename: b"made".to_vec(),
                kind: ItemKind::File,
                perm: 0o644,
            },
            Some(b"made here"),
        )
        .await
        .unwrap();
    assert_eq!((created.identifier, created.size), (id("dir/made"), 9));
    assert_eq!(std::fs::read(domain.path("dir/made")).unwrap(), b"made here");
}

/// deleteItem: a file; a directory that is not empty only with the
/// recursive option, refused without it as the contract says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_reach_the_remote_and_a_full_directory_needs_the_recursive_option() {
    let domain = Domain::start(
        |root| {
            std::fs::write(root.join("file"), b"f").unwrap();
            std::fs::create_dir_all(root.join("tree/deeper")).unwrap();
            std::fs::write(root.join("tree/deeper/leaf"), b"l").unwrap();
        },
        100,
    )
    .await;
    let system = &domain.system;
    system.list(&ItemIdentifier::Root).await.unwrap();

    system.delete(&id("file"), false).await.unwrap();
    assert!(!domain.path("file").exists());
    assert_eq!(system.item(&id("file")).await.unwrap_err().code, -1005);

    let refused = system.delete(&id("tree"), false).await.unwrap_err();
    assert_eq!((refused.domain, refused.code), (ErrorDomain::FileProvider, -1007));
    assert!(domain.path("tree/deeper/leaf").exists());

    system.delete(&id("tree"), true).await.unwrap();
    assert!(!domain.path("tree").exists());
    assert_eq!(
        names(&system.list(&ItemIdentifier::Root).await.unwrap()),
        Vec::<String>::new()
    );
}

/// A change made on the remote behind the extension's back (the served
/// directory written directly): the agent pushes it, the VFS passes it
/// on, the working set is signalled, and its change enumeration reports
/// the item updated (new size and version), a new name and a name gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_changes_signal_the_working_set_and_update_the_items() {
    let domain = Domain::start(
        |root| {
            std::fs::write(root.join("doc"), b"first").unwrap();
            std::fs::write(root.join("doomed"), b"d").unwrap();
        },
        100,
    )
    .await;
    let system = &domain.system;
    let before = system.list(&ItemIdentifier::Root).await.unwrap();
    let doc_before = before.iter().find(|i| i.filename == b"doc").unwrap().clone();
    assert_eq!(system.fetch(&id("doc")).await.unwrap().1, b"first");

    let seen = system.signal_count();
    std::fs::write(domain.path("doc"), b"second, longer").unwrap();
    system.signal_after(seen).await;
    assert!(system.signals().iter().all(|c| *c == ItemIdentifier::WorkingSet));
    let (updated, _) = system.sync_changes().await.unwrap();
    let doc = updated
        .iter()
        .find(|i| i.identifier == id("doc"))
        .unwrap_or_else(|| panic!("doc not among the updated items: {updated:?}"));
    assert_eq!(doc.size, 14);
    assert_ne!(doc.version.content, doc_before.version.content);
    assert_eq!(system.replica.lock().unwrap()[&id("doc")].size, 14);
    assert_eq!(system.fetch(&id("doc")).await.unwrap().1, b"second, longer");

    // A name added and a name removed on the remote.
    let seen = system.signal_count();
    std::fs::write(domain.path("fresh"), b"new").unwrap();
    std::fs::remove_file(domain.path("doomed")).unwrap();
    let mut added = false;
    let mut removed = false;
    let start = std::time::Instant::now();
    let mut seen = seen;
    while !(added && removed) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "added {added}, removed {removed}"
        );
        seen = system.signal_after(seen).await;
        let (updated, deleted) = system.sync_changes().await.unwrap();
        added |= updated.iter().any(|i| i.identifier == id("fresh") && i.size == 3);
        removed |= deleted.contains(&id("doomed"));
    }
    {
        let replica = system.replica.lock().unwrap();
        assert!(replica.contains_key(&id("fresh")) && !replica.contains_key(&id("doomed")));
    }

    // An anchor this process never made is expired: the system starts over.
    system.forget_anchor(yonder_fileprovider::SyncAnchor { epoch: 1, seq: 0 });
    system.sync_changes().await.unwrap();
    assert_eq!(*system.restarts.lock().unwrap(), 1);
    assert!(system
        .reported()
        .iter()
        .all(|r| (r.domain, r.code) == (ErrorDomain::FileProvider, -1002)));
}

/// A file the remote refuses to open (as it does to a user without read
/// permission) fails its fetch with Cocoa's NSFileReadNoPermissionError,
/// which the system shows the user; the listing is not affected.
///
/// The agent runs in this process, as root on CI, where a mode of 000
/// refuses nothing: the refusal is the remote's EACCES, injected in front
/// of the agent for that path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permission_denied_read_reaches_the_system_as_read_no_permission() {
    let domain = Domain::start(
        |root| {
            // Larger than any listing brings contents for (64 KiB): a
            // small file's kept contents open without asking the remote.
            std::fs::write(root.join("secret"), vec![b's'; 100_000]).unwrap();
            std::fs::write(root.join("open"), b"o").unwrap();
        },
        100,
    )
    .await;
    let system = &domain.system;
    domain.faults.inject(Fault::when(
        |call| matches!(call.op, Op::Open | Op::OpenRead) && call.names(b"secret"),
        Errno::EACCES,
    ));

    assert_eq!(
        names(&system.list(&ItemIdentifier::Root).await.unwrap()),
        ["open", "secret"]
    );
    let refused = system.fetch(&id("secret")).await.unwrap_err();
    assert_eq!(
        refused,
        Reported {
            op: "fetch contents",
            item: id("secret"),
            domain: ErrorDomain::Cocoa,
            code: 257,
        }
    );
    assert_eq!(system.reported(), [refused]);
    assert_eq!(system.fetch(&id("open")).await.unwrap().1, b"o");

    // Unknown items are no such item, to the system (which then removes
    // them) as in its log.
    let gone = system.fetch(&id("never-was")).await.unwrap_err();
    assert_eq!((gone.domain, gone.code), (ErrorDomain::FileProvider, -1005));
    assert_eq!(system.reported().len(), 2);
}

/// The change log keeps MAX_CHANGES changes: an anchor older than those,
/// or one ahead of the log, is expired; the latest anchor is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anchors_older_than_the_changes_kept_are_expired() {
    let domain = Domain::start(|_| {}, 100).await;
    let log = domain.system.provider.change_log();
    let start = log.current();
    log.record(vec![Changed::Item(b"a".to_vec())]);
    let (changes, after_one) = log.since(start).unwrap();
    assert_eq!(changes, [Changed::Item(b"a".to_vec())]);
    assert_eq!(after_one.seq, start.seq + 1);

    log.record(
        (0..MAX_CHANGES)
            .map(|i| Changed::Item(format!("f{i}").into_bytes()))
            .collect(),
    );
    assert!(
        log.since(start).is_none(),
        "an anchor older than the log was not expired"
    );
    let (changes, _) = log.since(after_one).expect("the oldest anchor the log covers");
    assert_eq!(changes.len(), MAX_CHANGES);
    let ahead = SyncAnchor {
        seq: log.current().seq + 1,
        ..log.current()
    };
    assert!(
        log.since(ahead).is_none(),
        "an anchor ahead of the log was not expired"
    );
}

/// A directory's enumerator reports the changes of its own entries; the
/// working set's, all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_enumerates_only_its_own_entries_changes() {
    let domain = Domain::start(
        |root| {
            std::fs::create_dir(root.join("d")).unwrap();
            std::fs::write(root.join("d/inside"), b"i").unwrap();
            std::fs::write(root.join("outside"), b"o").unwrap();
        },
        100,
    )
    .await;
    let provider = domain.system.provider.clone();
    let dir = Enumerator::open(provider.clone(), id("d")).await.unwrap();
    let working_set = Enumerator::open(provider.clone(), ItemIdentifier::WorkingSet)
        .await
        .unwrap();
    let from = dir.current_anchor().to_bytes();
    provider.change_log().record(vec![
        Changed::Item(b"d/inside".to_vec()),
        Changed::Item(b"outside".to_vec()),
        Changed::Item(b"d/gone".to_vec()),
    ]);

    let batch = dir.enumerate_changes(&from).await.unwrap();
    let updated: Vec<_> = batch.updated.iter().map(|i| i.identifier.clone()).collect();
    assert_eq!(updated, [id("d/inside")]);
    assert_eq!(batch.deleted, [id("d/gone")]);
    assert!(!batch.more_coming);

    let batch = working_set.enumerate_changes(&from).await.unwrap();
    let updated: Vec<_> = batch.updated.iter().map(|i| i.identifier.clone()).collect();
    assert_eq!(updated, [id("d/inside"), id("outside")]);
    assert_eq!(batch.deleted, [id("d/gone")]);
    // A file is no container.
    let refused = Enumerator::open(provider, id("outside")).await.err().unwrap();
    assert_eq!(refused.status.domain(), ErrorDomain::Posix);
}
