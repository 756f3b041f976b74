//! One READDIR or READDIRPLUS call's walk through a directory stream.

use crate::convert;
use crate::dir_cursors::{Cursor, DirCursors};
use crate::handle::NfsHandle;
use nfs3_server::vfs::{DirEntryPlus, NextResult, ReadDirPlusIterator};
use std::collections::VecDeque;
use std::sync::Arc;
use yonder_vfs::{DirItem, Exporter, Ino};

/// Entries from a cursor on, each handed out with its attributes and a
/// handle (which keeps its inode for as long as the file exists).
pub struct Listing {
    exporter: Arc<Exporter>,
    dir: Ino,
    cursor: Cursor,
    items: VecDeque<DirItem>,
    done: bool,
}

impl Listing {
    pub fn new(exporter: Arc<Exporter>, dir: Ino, cursor: Cursor) -> Listing {
        Listing {
            exporter,
            dir,
            cursor,
            items: VecDeque::new(),
            done: false,
        }
    }

    async fn next_entry(&mut self) -> NextResult<DirEntryPlus<NfsHandle>> {
        let vfs = self.exporter.vfs().clone();
        loop {
            let Some(item) = self.items.pop_front() else {
                if self.done {
                    return NextResult::Eof;
                }
                match vfs.readdir(self.cursor.fh, self.cursor.offset).await {
                    Ok(batch) if batch.is_empty() => self.done = true,
                    Ok(batch) => {
                        self.cursor.offset = batch.last().map_or(self.cursor.offset, |i| i.offset);
                        self.items.extend(batch);
                    }
                    Err(e) => return NextResult::Err(convert::status(&e)),
                }
                continue;
            };
            // `.` and `..` are the client's to make up, as for every
            // server that keeps no parent pointers in its listings.
            if item.is_dot_or_dotdot() {
                continue;
            }
            let Some(attr) = vfs.remember(self.dir, &item).await else {
                continue;
            };
            // The handle keeps the inode; the counted lookup is not needed.
            let handle = self.exporter.file_handle(attr.ino).ok().map(NfsHandle::new);
            vfs.unremember(attr.ino);
            return NextResult::Ok(DirEntryPlus {
                fileid: attr.ino.0,
                name: item.name.into(),
                cookie: DirCursors::cookie(self.cursor.stream, item.offset),
                name_attributes: Some(convert::fattr(&attr)),
                name_handle: handle,
            });
        }
    }
}

impl ReadDirPlusIterator<NfsHandle> for Listing {
    async fn next(&mut self) -> NextResult<DirEntryPlus<NfsHandle>> {
        self.next_entry().await
    }
}
