//! A fake of the Windows side of a sync root: it keeps the sync root's
//! items in memory, raises the callbacks the OS would for what a program
//! does (list, read, rename, delete, write and close), and holds the
//! engine's answers to the documented contract, recording every status
//! the engine gives the OS and every breach of the contract.
//!
//! The contract it follows, from Microsoft Learn:
//! - Callbacks and what answers each, `CF_CALLBACK_TYPE`:
//!   <https://learn.microsoft.com/en-us/windows/win32/api/cfapi/ne-cfapi-cf_callback_type>;
//!   their parameters (required and optional ranges of FETCH_DATA, the
//!   target of NOTIFY_RENAME), `CF_CALLBACK_PARAMETERS`:
//!   <https://learn.microsoft.com/en-us/windows/win32/api/cfapi/ns-cfapi-cf_callback_parameters>.
//! - Answers, `CfExecute` and `CF_OPERATION_PARAMETERS`:
//!   <https://learn.microsoft.com/en-us/windows/win32/api/cfapi/nf-cfapi-cfexecute>,
//!   <https://learn.microsoft.com/en-us/windows/win32/api/cfapi/ns-cfapi-cf_operation_parameters>:
//!   TRANSFER_DATA's offset and length are 4 KiB aligned, except a
//!   length that ends at the file's end, and lie within the file; a
//!   failure `CompletionStatus` fails the program's read; ACK_RENAME and
//!   ACK_DELETE with a failure status veto the operation, which happens
//!   only once acknowledged; TRANSFER_PLACEHOLDERS with
//!   `DISABLE_ON_DEMAND_POPULATION` fills the directory for good.
//! - `CfCreatePlaceholders` (a name already there is not replaced: its
//!   entry fails with a collision):
//!   <https://learn.microsoft.com/en-us/windows/win32/api/cfapi/nf-cfapi-cfcreateplaceholders>.
//! - `CfUpdatePlaceholder` (new metadata; `DEHYDRATE` drops the file's
//!   local data; `MARK_IN_SYNC`):
//!   <https://learn.microsoft.com/en-us/windows/win32/api/cfapi/nf-cfapi-cfupdateplaceholder>.
//! - `CfConvertToPlaceholder` (a plain file becomes a placeholder, its
//!   data kept):
//!   <https://learn.microsoft.com/en-us/windows/win32/api/cfapi/nf-cfapi-cfconverttoplaceholder>.
//! - In-sync state, cleared when a placeholder's data is written:
//!   <https://learn.microsoft.com/en-us/windows/win32/api/cfapi/ne-cfapi-cf_in_sync_state>.
//! - The sync root's status, shown in Explorer:
//!   <https://learn.microsoft.com/en-us/windows/win32/api/cfapi/nf-cfapi-cfreportsyncstatus>.
//! - Cancellation (`CANCEL_FETCH_DATA`; transfers for a cancelled
//!   request fail): the `CF_CALLBACK_TYPE` page above.
//! - Registration and connection:
//!   <https://learn.microsoft.com/en-us/windows/win32/api/cfapi/nf-cfapi-cfregistersyncroot>,
//!   <https://learn.microsoft.com/en-us/windows/win32/api/cfapi/nf-cfapi-cfconnectsyncroot>,
//!   <https://learn.microsoft.com/en-us/windows/win32/api/cfapi/nf-cfapi-cfdisconnectsyncroot>,
//!   <https://learn.microsoft.com/en-us/windows/win32/api/cfapi/nf-cfapi-cfunregistersyncroot>.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use yonder_cloudfiles::{
    CancelFetchData, CloudCallbacks, CloudOs, CloudStatus, FetchData, FetchPlaceholders, FileClosed,
    ItemPath, ItemState, NotifyDelete, NotifyRename, OsError, Placeholder, SendFailure, SyncRootRegistration,
    Ticket, UpdateData, TRANSFER_ALIGNMENT,
};

/// One item of the sync root's folder.
#[derive(Clone, Debug)]
pub struct FakeItem {
    pub directory: bool,
    pub placeholder: bool,
    pub in_sync: bool,
    pub size: u64,
    pub modified: SystemTime,
    pub identity: Vec<u8>,
    /// A directory whose placeholders were all transferred.
    pub populated: bool,
    /// The file's data; only the hydrated ranges' bytes mean anything.
    pub data: Vec<u8>,
    /// Hydrated ranges, as (start, end).
    pub hydrated: Vec<(u64, u64)>,
}

impl FakeItem {
    fn of(placeholder: &Placeholder) -> FakeItem {
        FakeItem {
            directory: placeholder.directory,
            placeholder: true,
            in_sync: true,
            size: placeholder.size,
            modified: placeholder.modified,
            identity: placeholder.identity.clone(),
            populated: false,
            data: vec![0; placeholder.size as usize],
            hydrated: Vec::new(),
        }
    }

    /// Whether [start, end) is all hydrated.
    pub fn is_hydrated(&self, start: u64, end: u64) -> bool {
        let mut at = start;
        let mut ranges = self.hydrated.clone();
        ranges.sort();
        for (s, e) in ranges {
            if s <= at && e > at {
                at = e;
            }
        }
        at >= end
    }
}

/// What a callback was answered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Placeholders(CloudStatus),
    Data(CloudStatus),
    Rename(CloudStatus),
    Delete(CloudStatus),
}

enum Waiting {
    Placeholders { dir: ItemPath },
    Data { path: ItemPath, start: u64, end: u64 },
    Rename,
    Delete,
}

#[derive(Default)]
struct State {
    registration: Option<SyncRootRegistration>,
    callbacks: Option<Arc<dyn CloudCallbacks>>,
    items: BTreeMap<ItemPath, FakeItem>,
    waiting: HashMap<Ticket, Waiting>,
    done: HashMap<Ticket, CloudStatus>,
    /// Data requests whose program was answered.
    answered: Vec<Ticket>,
    next_request: i64,
    answers: Vec<(Ticket, Answer)>,
    transfers: Vec<(ItemPath, u64, u64)>,
    breaches: Vec<String>,
    sync_status: Option<SendFailure>,
    /// Data requests cancelled, and the transfers sent for them after.
    cancelled: Vec<Ticket>,
    late_transfers: usize,
}

/// The fake OS side of one sync root.
pub struct FakeCloudOs {
    state: Mutex<State>,
}

impl FakeCloudOs {
    pub fn new() -> Arc<FakeCloudOs> {
        Arc::new(FakeCloudOs {
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    pub fn registration(&self) -> Option<SyncRootRegistration> {
        self.lock().registration.clone()
    }

    pub fn connected(&self) -> bool {
        self.lock().callbacks.is_some()
    }

    pub fn item(&self, path: &str) -> Option<FakeItem> {
        self.lock().items.get(&ItemPath::new(path)).cloned()
    }

    /// Every status the engine answered a callback with, in order.
    pub fn answers(&self) -> Vec<Answer> {
        self.lock().answers.iter().map(|(_, a)| *a).collect()
    }

    /// Every TRANSFER_DATA: (path, offset, length).
    pub fn transfers(&self) -> Vec<(ItemPath, u64, u64)> {
        self.lock().transfers.clone()
    }

    /// What the sync root's status shows (`CfReportSyncStatus`).
    pub fn sync_status(&self) -> Option<SendFailure> {
        self.lock().sync_status.clone()
    }

    /// Transfers the engine sent for requests already cancelled (the API
    /// refuses them; one in flight at the cancellation is to be expected).
    pub fn late_transfers(&self) -> usize {
        self.lock().late_transfers
    }

    /// Cancels the data requests of `path` still open, as the OS does
    /// when the program's read is cancelled or its handle closed.
    pub fn cancel_hydration(&self, path: &str) {
        let path = ItemPath::new(path);
        let tickets: Vec<Ticket> = {
            let mut state = self.lock();
            let tickets: Vec<Ticket> = state
                .waiting
                .iter()
                .filter(|(_, w)| matches!(w, Waiting::Data { path: p, .. } if *p == path))
                .map(|(t, _)| *t)
                .collect();
            for ticket in &tickets {
                state.waiting.remove(ticket);
                state.cancelled.push(*ticket);
            }
            tickets
        };
        for ticket in tickets {
            self.callbacks().cancel_fetch_data(CancelFetchData {
                ticket,
                path: path.clone(),
            });
        }
    }

    /// The engine's breaches of the contract.
    pub fn breaches(&self) -> Vec<String> {
        self.lock().breaches.clone()
    }

    fn callbacks(&self) -> Arc<dyn CloudCallbacks> {
        self.lock().callbacks.clone().expect("the sync root is connected")
    }

    fn ticket(&self, waiting: Waiting) -> Ticket {
        let mut state = self.lock();
        state.next_request += 1;
        let ticket = Ticket {
            connection: 1,
            transfer: state.next_request,
            request: state.next_request,
        };
        state.waiting.insert(ticket, waiting);
        ticket
    }

    /// Waits (at most 5 s, a hung engine rather than a slow one) for the
    /// callback's answer.
    async fn answered(&self, ticket: Ticket) -> CloudStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.lock().done.remove(&ticket) {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "callback {ticket:?} not answered within 5 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn breach(state: &mut State, what: String) -> OsError {
        state.breaches.push(what.clone());
        OsError::new("cfexecute", "", what)
    }

    fn complete(state: &mut State, ticket: Ticket, status: CloudStatus) {
        state.waiting.remove(&ticket);
        state.done.insert(ticket, status);
    }

    // ----- what programs do -----

    /// Lists a directory, as Explorer does: its placeholders are fetched
    /// the first time.
    pub async fn list(&self, dir: &str) -> Result<Vec<String>, CloudStatus> {
        let dir = ItemPath::new(dir);
        let populated = {
            let state = self.lock();
            let item = state.items.get(&dir).ok_or(CloudStatus::NotFound)?;
            !item.placeholder || item.populated
        };
        if !populated {
            let ticket = self.ticket(Waiting::Placeholders { dir: dir.clone() });
            self.callbacks().fetch_placeholders(FetchPlaceholders {
                ticket,
                dir: dir.clone(),
            });
            let status = self.answered(ticket).await;
            if !status.is_success() {
                return Err(status);
            }
        }
        let state = self.lock();
        Ok(state
            .items
            .keys()
            .filter_map(|p| {
                let (parent, name) = p.split_last()?;
                (parent == dir).then(|| name.to_owned())
            })
            .collect())
    }

    /// Reads, as a program would: what is not hydrated is fetched first
    /// (the rest of the file offered as the optional range).
    pub async fn read(&self, path: &str, offset: u64, length: u64) -> Result<Vec<u8>, CloudStatus> {
        let path = ItemPath::new(path);
        let (size, hydrated) = {
            let state = self.lock();
            let item = state.items.get(&path).ok_or(CloudStatus::NotFound)?;
            let end = (offset + length).min(item.size);
            (item.size, offset >= end || item.is_hydrated(offset, end))
        };
        let end = (offset + length).min(size);
        if !hydrated {
            let ticket = self.ticket(Waiting::Data {
                path: path.clone(),
                start: offset,
                end,
            });
            self.callbacks().fetch_data(FetchData {
                ticket,
                path: path.clone(),
                file_size: size,
                required_offset: offset,
                required_length: length,
                optional_offset: end,
                optional_length: size - end,
            });
            let status = self.answered(ticket).await;
            if !status.is_success() {
                return Err(status);
            }
        }
        let state = self.lock();
        let item = &state.items[&path];
        if offset >= end {
            return Ok(Vec::new());
        }
        assert!(item.is_hydrated(offset, end), "{path}: answered but not hydrated");
        Ok(item.data[offset as usize..end as usize].to_vec())
    }

    /// Renames, as a program would: it happens once the engine agrees.
    pub async fn rename(&self, from: &str, to: Option<&str>) -> Result<(), CloudStatus> {
        let from = ItemPath::new(from);
        let to = to.map(ItemPath::new);
        let directory = self
            .lock()
            .items
            .get(&from)
            .ok_or(CloudStatus::NotFound)?
            .directory;
        let ticket = self.ticket(Waiting::Rename);
        self.callbacks().notify_rename(NotifyRename {
            ticket,
            path: from.clone(),
            directory,
            target: to.clone(),
        });
        let status = self.answered(ticket).await;
        if !status.is_success() {
            return Err(status);
        }
        let mut state = self.lock();
        let moved: Vec<ItemPath> = state
            .items
            .keys()
            .filter(|p| p.is_within(&from))
            .cloned()
            .collect();
        for old in moved {
            let item = state.items.remove(&old).unwrap();
            if let Some(to) = &to {
                state.items.insert(old.rebase(&from, to), item);
            }
        }
        Ok(())
    }

    /// Deletes, as a program would: it happens once the engine agrees.
    pub async fn delete(&self, path: &str) -> Result<(), CloudStatus> {
        let path = ItemPath::new(path);
        let directory = self
            .lock()
            .items
            .get(&path)
            .ok_or(CloudStatus::NotFound)?
            .directory;
        let ticket = self.ticket(Waiting::Delete);
        self.callbacks().notify_delete(NotifyDelete {
            ticket,
            path: path.clone(),
            directory,
        });
        let status = self.answered(ticket).await;
        if !status.is_success() {
            return Err(status);
        }
        let mut state = self.lock();
        state.items.retain(|p, _| !p.is_within(&path));
        Ok(())
    }

    /// Replaces a file's contents and closes it, as an editor saving in
    /// place: the data is local and no longer in sync.
    pub fn write_and_close(&self, path: &str, data: &[u8]) {
        let path = ItemPath::new(path);
        {
            let mut state = self.lock();
            let item = state.items.get_mut(&path).expect("the file exists");
            assert!(
                item.is_hydrated(0, item.size),
                "{path}: written before it was hydrated"
            );
            item.data = data.to_vec();
            item.size = data.len() as u64;
            item.hydrated = vec![(0, item.size)];
            item.in_sync = false;
        }
        self.callbacks().file_closed(FileClosed { path, deleted: false });
    }

    /// Makes a new file (not a placeholder) and closes it.
    pub fn create_and_close(&self, path: &str, data: &[u8]) {
        let path = ItemPath::new(path);
        self.lock().items.insert(
            path.clone(),
            FakeItem {
                directory: false,
                placeholder: false,
                in_sync: false,
                size: data.len() as u64,
                modified: SystemTime::now(),
                identity: Vec::new(),
                populated: false,
                data: data.to_vec(),
                hydrated: vec![(0, data.len() as u64)],
            },
        );
        self.callbacks().file_closed(FileClosed { path, deleted: false });
    }
}

impl CloudOs for FakeCloudOs {
    fn register(&self, registration: &SyncRootRegistration) -> Result<(), OsError> {
        let mut state = self.lock();
        if state.registration.is_some() {
            return Err(Self::breach(&mut state, "registered twice".into()));
        }
        state.registration = Some(registration.clone());
        // A folder registered again keeps what it holds: placeholders
        // outlive the provider that made them.
        state.items.entry(ItemPath::root()).or_insert(FakeItem {
            directory: true,
            placeholder: true,
            in_sync: true,
            size: 0,
            modified: SystemTime::now(),
            identity: Vec::new(),
            populated: false,
            data: Vec::new(),
            hydrated: Vec::new(),
        });
        Ok(())
    }

    fn connect(&self, callbacks: Arc<dyn CloudCallbacks>) -> Result<(), OsError> {
        let mut state = self.lock();
        if state.registration.is_none() {
            return Err(Self::breach(&mut state, "connected before registering".into()));
        }
        state.callbacks = Some(callbacks);
        Ok(())
    }

    fn disconnect(&self) -> Result<(), OsError> {
        self.lock().callbacks = None;
        Ok(())
    }

    fn unregister(&self) -> Result<(), OsError> {
        let mut state = self.lock();
        if state.callbacks.is_some() {
            return Err(Self::breach(&mut state, "unregistered while connected".into()));
        }
        state.registration = None;
        Ok(())
    }

    fn transfer_placeholders(
        &self,
        ticket: Ticket,
        placeholders: &[Placeholder],
        status: CloudStatus,
    ) -> Result<(), OsError> {
        let mut state = self.lock();
        let Some(Waiting::Placeholders { dir }) = state.waiting.get(&ticket) else {
            return Err(Self::breach(
                &mut state,
                format!("TRANSFER_PLACEHOLDERS for {ticket:?}, not a FETCH_PLACEHOLDERS"),
            ));
        };
        let dir = dir.clone();
        state.answers.push((ticket, Answer::Placeholders(status)));
        if status.is_success() {
            for placeholder in placeholders {
                let path = dir.join(&placeholder.name);
                if ItemPath::windows_name(placeholder.name.as_bytes()).is_none() {
                    return Err(Self::breach(
                        &mut state,
                        format!("placeholder name {:?}", placeholder.name),
                    ));
                }
                state
                    .items
                    .entry(path)
                    .or_insert_with(|| FakeItem::of(placeholder));
            }
            if let Some(item) = state.items.get_mut(&dir) {
                item.populated = true;
            }
        }
        Self::complete(&mut state, ticket, status);
        Ok(())
    }

    fn transfer_data(&self, ticket: Ticket, offset: u64, data: &[u8]) -> Result<(), OsError> {
        let mut state = self.lock();
        if state.cancelled.contains(&ticket) {
            state.late_transfers += 1;
            return Err(OsError::new("cfexecute", "", "the request was cancelled"));
        }
        let Some(Waiting::Data { path, start, end }) = state.waiting.get(&ticket) else {
            return Err(Self::breach(
                &mut state,
                format!("TRANSFER_DATA for {ticket:?}, not a pending FETCH_DATA"),
            ));
        };
        let (path, start, end) = (path.clone(), *start, *end);
        let length = data.len() as u64;
        let size = state.items[&path].size;
        if !offset.is_multiple_of(TRANSFER_ALIGNMENT)
            || (!length.is_multiple_of(TRANSFER_ALIGNMENT) && offset + length != size)
            || offset + length > size
            || length == 0
        {
            return Err(Self::breach(
                &mut state,
                format!("{path}: TRANSFER_DATA of {length} bytes at {offset} (file of {size})"),
            ));
        }
        state.transfers.push((path.clone(), offset, length));
        let item = state.items.get_mut(&path).unwrap();
        item.data[offset as usize..(offset + length) as usize].copy_from_slice(data);
        item.hydrated.push((offset, offset + length));
        if item.is_hydrated(start, end)
            && !state.done.contains_key(&ticket)
            && !state.answered.contains(&ticket)
        {
            // The program's read is satisfied; the transfer stays open
            // for the rest the provider sends (the optional range).
            state.answered.push(ticket);
            state.answers.push((ticket, Answer::Data(CloudStatus::Success)));
            state.done.insert(ticket, CloudStatus::Success);
        }
        Ok(())
    }

    fn fail_data(
        &self,
        ticket: Ticket,
        _offset: u64,
        _length: u64,
        status: CloudStatus,
    ) -> Result<(), OsError> {
        let mut state = self.lock();
        if state.cancelled.contains(&ticket) {
            return Err(OsError::new("cfexecute", "", "the request was cancelled"));
        }
        if !matches!(state.waiting.get(&ticket), Some(Waiting::Data { .. }))
            || status.is_success()
            || state.answered.contains(&ticket)
        {
            return Err(Self::breach(
                &mut state,
                format!("failed TRANSFER_DATA for {ticket:?} with {status:?}"),
            ));
        }
        state.answers.push((ticket, Answer::Data(status)));
        Self::complete(&mut state, ticket, status);
        Ok(())
    }

    fn ack_rename(&self, ticket: Ticket, status: CloudStatus) -> Result<(), OsError> {
        let mut state = self.lock();
        if !matches!(state.waiting.get(&ticket), Some(Waiting::Rename)) {
            return Err(Self::breach(&mut state, format!("ACK_RENAME for {ticket:?}")));
        }
        state.answers.push((ticket, Answer::Rename(status)));
        Self::complete(&mut state, ticket, status);
        Ok(())
    }

    fn ack_delete(&self, ticket: Ticket, status: CloudStatus) -> Result<(), OsError> {
        let mut state = self.lock();
        if !matches!(state.waiting.get(&ticket), Some(Waiting::Delete)) {
            return Err(Self::breach(&mut state, format!("ACK_DELETE for {ticket:?}")));
        }
        state.answers.push((ticket, Answer::Delete(status)));
        Self::complete(&mut state, ticket, status);
        Ok(())
    }

    fn create_placeholders(&self, dir: &ItemPath, placeholders: &[Placeholder]) -> Result<(), OsError> {
        let mut state = self.lock();
        if !state.items.get(dir).is_some_and(|d| d.directory) {
            return Err(OsError::new("CfCreatePlaceholders", dir, "no such directory"));
        }
        for placeholder in placeholders {
            state
                .items
                .entry(dir.join(&placeholder.name))
                .or_insert_with(|| FakeItem::of(placeholder));
        }
        Ok(())
    }

    fn update_placeholder(
        &self,
        path: &ItemPath,
        placeholder: &Placeholder,
        data: UpdateData,
    ) -> Result<(), OsError> {
        let mut state = self.lock();
        let Some(item) = state.items.get_mut(path) else {
            return Err(OsError::new("CfUpdatePlaceholder", path, "no such file"));
        };
        if !item.placeholder {
            return Err(OsError::new("CfUpdatePlaceholder", path, "not a placeholder"));
        }
        item.modified = placeholder.modified;
        item.identity = placeholder.identity.clone();
        item.in_sync = true;
        if data == UpdateData::Dehydrate {
            item.size = placeholder.size;
            item.data = vec![0; placeholder.size as usize];
            item.hydrated.clear();
        } else if item.size != placeholder.size {
            return Err(Self::breach(
                &mut state,
                format!("{path}: size changed without dehydrating"),
            ));
        }
        Ok(())
    }

    fn convert_to_placeholder(&self, path: &ItemPath, identity: &[u8]) -> Result<(), OsError> {
        let mut state = self.lock();
        let Some(item) = state.items.get_mut(path) else {
            return Err(OsError::new("CfConvertToPlaceholder", path, "no such file"));
        };
        if item.placeholder {
            return Err(OsError::new(
                "CfConvertToPlaceholder",
                path,
                "already a placeholder",
            ));
        }
        item.placeholder = true;
        item.in_sync = true;
        item.identity = identity.to_vec();
        Ok(())
    }

    /// Whether the OS tells a provider of its own deletes is not
    /// documented either way; the fake does, and waits for the answer as
    /// for any delete, which holds the engine to the safe side.
    fn remove_item(&self, path: &ItemPath) -> Result<(), OsError> {
        let directory = match self.lock().items.get(path) {
            Some(item) => item.directory,
            None => return Ok(()),
        };
        let callbacks = self.lock().callbacks.clone();
        if let Some(callbacks) = callbacks {
            let ticket = self.ticket(Waiting::Delete);
            callbacks.notify_delete(NotifyDelete {
                ticket,
                path: path.clone(),
                directory,
            });
            let start = Instant::now();
            let status = loop {
                if let Some(status) = self.lock().done.remove(&ticket) {
                    break status;
                }
                if start.elapsed() > Duration::from_secs(5) {
                    let mut state = self.lock();
                    return Err(Self::breach(
                        &mut state,
                        format!("{path}: own delete not answered within 5 s"),
                    ));
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            if !status.is_success() {
                return Err(OsError::new("DeleteFile", path, format!("vetoed: {status:?}")));
            }
        }
        self.lock().items.retain(|p, _| !p.is_within(path));
        Ok(())
    }

    fn item_state(&self, path: &ItemPath) -> Result<Option<ItemState>, OsError> {
        Ok(self.lock().items.get(path).map(|item| ItemState {
            placeholder: item.placeholder,
            in_sync: item.in_sync,
            directory: item.directory,
            size: item.size,
        }))
    }

    fn report_sync_status(&self, failure: Option<&SendFailure>) -> Result<(), OsError> {
        self.lock().sync_status = failure.cloned();
        Ok(())
    }

    fn read_local(&self, path: &ItemPath, offset: u64, length: u64) -> Result<Vec<u8>, OsError> {
        let mut state = self.lock();
        let Some(item) = state.items.get(path) else {
            return Err(OsError::new("ReadFile", path, "no such file"));
        };
        let end = (offset + length).min(item.size);
        if offset >= end {
            return Ok(Vec::new());
        }
        if !item.is_hydrated(offset, end) {
            return Err(Self::breach(
                &mut state,
                format!("{path}: read of data not hydrated"),
            ));
        }
        Ok(item.data[offset as usize..end as usize].to_vec())
    }
}
