//! [`CloudOs`] over the Cloud Files API (cldapi.dll), through the
//! `windows` crate's `Win32_Storage_CloudFilters` bindings. Type-checked
//! only: nothing here has run (see docs/cloudfiles.md).
//!
//! What converts without Windows types (paths, times) is in
//! `api_values.rs`, tested on every OS.

use crate::api_values::{file_time, RootPath};
use crate::item_path::ItemPath;
use crate::os::{CloudCallbacks, CloudOs, ItemState, OsError, Placeholder, SyncRootRegistration, UpdateData};
use crate::requests::{
    CancelFetchData, FetchData, FetchPlaceholders, FileClosed, NotifyDelete, NotifyRename, Ticket,
};
use crate::send_failures::SendFailure;
use crate::status::CloudStatus;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::os::windows::ffi::OsStrExt;
use std::os::windows::fs::{FileExt, OpenOptionsExt};
use std::os::windows::io::AsRawHandle;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use windows::core::{GUID, PCWSTR};
use windows::Win32::Foundation::{
    HANDLE, NTSTATUS, STATUS_CLOUD_FILE_ACCESS_DENIED, STATUS_CLOUD_FILE_INVALID_REQUEST,
    STATUS_CLOUD_FILE_IN_USE, STATUS_CLOUD_FILE_NETWORK_UNAVAILABLE, STATUS_CLOUD_FILE_NOT_IN_SYNC,
    STATUS_CLOUD_FILE_UNSUCCESSFUL, STATUS_DIRECTORY_NOT_EMPTY, STATUS_OBJECT_NAME_COLLISION,
    STATUS_OBJECT_NAME_NOT_FOUND, STATUS_SUCCESS,
};
use windows::Win32::Storage::CloudFilters::*;
use windows::Win32::Storage::FileSystem::{
    FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_NORMAL, FILE_BASIC_INFO, FILE_FLAG_BACKUP_SEMANTICS,
};

/// Tells yonder's sync roots from other providers' (`ProviderId`).
const PROVIDER_ID: GUID = GUID::from_u128(0x5d9c_0e8a_7b1f_4c36_9a52_8f0e_3c7d_21b4);

/// What a callback needs: handed to `CfConnectSyncRoot` as the callback
/// context and given back in every `CF_CALLBACK_INFO`.
struct Context {
    callbacks: Arc<dyn CloudCallbacks>,
    /// The sync root, as the API's paths are compared with it.
    root: RootPath,
}

/// A connection: its key and the context its callbacks use.
struct Connected {
    key: CF_CONNECTION_KEY,
    /// From `Box::into_raw`; freed after `CfDisconnectSyncRoot`.
    context: *mut Context,
}

// SAFETY: `context` is only dereferenced by the OS's callback threads
// (shared, read-only) and freed once, under the mutex, after the
// disconnect that ends those callbacks; `Context` itself is Send + Sync.
unsafe impl Send for Connected {}

#[derive(Default)]
struct State {
    root: Option<PathBuf>,
    connected: Option<Connected>,
}

/// The Cloud Files API for one sync root.
#[derive(Default)]
pub struct WindowsCloudOs {
    state: Mutex<State>,
}

impl WindowsCloudOs {
    pub fn new() -> WindowsCloudOs {
        WindowsCloudOs::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn root(&self, op: &'static str) -> Result<PathBuf, OsError> {
        self.lock()
            .root
            .clone()
            .ok_or_else(|| OsError::new(op, "<sync root>", "not registered"))
    }

    fn local_path(&self, op: &'static str, path: &ItemPath) -> Result<PathBuf, OsError> {
        let mut local = self.root(op)?;
        local.extend(path.names());
        Ok(local)
    }

    fn open(&self, op: &'static str, path: &ItemPath, write: bool) -> Result<File, OsError> {
        let local = self.local_path(op, path)?;
        OpenOptions::new()
            .read(true)
            .write(write)
            // Directories open only with backup semantics.
            .custom_flags(FILE_FLAG_BACKUP_SEMANTICS.0)
            .open(&local)
            .map_err(|e| OsError::new(op, path, e))
    }

    /// `CfExecute` of one answer. `size` is the size of the union member
    /// used (`CF_SIZE_OF_OP_PARAM`).
    fn execute(
        &self,
        op: &'static str,
        ticket: Ticket,
        kind: CF_OPERATION_TYPE,
        parameters: CF_OPERATION_PARAMETERS_0,
        size: usize,
    ) -> Result<(), OsError> {
        let info = CF_OPERATION_INFO {
            StructSize: size_of::<CF_OPERATION_INFO>() as u32,
            Type: kind,
            ConnectionKey: CF_CONNECTION_KEY(ticket.connection),
            TransferKey: ticket.transfer,
            CorrelationVector: std::ptr::null(),
            SyncStatus: std::ptr::null(),
            RequestKey: ticket.request,
        };
        let mut parameters = CF_OPERATION_PARAMETERS {
            ParamSize: (std::mem::offset_of!(CF_OPERATION_PARAMETERS, Anonymous) + size) as u32,
            Anonymous: parameters,
        };
        // SAFETY: both structures are fully initialised and live across
        // the call; buffers they point to are the caller's, borrowed for
        // at least as long.
        unsafe { CfExecute(&info, &mut parameters) }
            .map_err(|e| OsError::new(op, format!("request {}", ticket.request), e))
    }
}

impl CloudOs for WindowsCloudOs {
    fn register(&self, registration: &SyncRootRegistration) -> Result<(), OsError> {
        let root = wide(registration.root.as_os_str());
        let name = wide(OsStr::new(&registration.provider_name));
        let version = wide(OsStr::new(&registration.provider_version));
        let sync_registration = CF_SYNC_REGISTRATION {
            StructSize: size_of::<CF_SYNC_REGISTRATION>() as u32,
            ProviderName: PCWSTR(name.as_ptr()),
            ProviderVersion: PCWSTR(version.as_ptr()),
            SyncRootIdentity: registration.identity.as_ptr().cast(),
            SyncRootIdentityLength: registration.identity.len() as u32,
            FileIdentity: std::ptr::null(),
            FileIdentityLength: 0,
            ProviderId: PROVIDER_ID,
        };
        let policies = CF_SYNC_POLICIES {
            StructSize: size_of::<CF_SYNC_POLICIES>() as u32,
            // Ranges on demand, as programs read them.
            Hydration: CF_HYDRATION_POLICY {
                Primary: CF_HYDRATION_POLICY_PARTIAL,
                Modifier: CF_HYDRATION_POLICY_MODIFIER_NONE,
            },
            // A directory's items when it is first listed.
            Population: CF_POPULATION_POLICY {
                Primary: CF_POPULATION_POLICY_FULL,
                Modifier: CF_POPULATION_POLICY_MODIFIER_NONE,
            },
            InSync: CF_INSYNC_POLICY_TRACK_ALL,
            HardLink: CF_HARDLINK_POLICY_NONE,
            PlaceholderManagement: CF_PLACEHOLDER_MANAGEMENT_POLICY_DEFAULT,
        };
        let register = |flags| {
            // SAFETY: the strings and the identity outlive the call; the
            // structures are fully initialised.
            unsafe { CfRegisterSyncRoot(PCWSTR(root.as_ptr()), &sync_registration, &policies, flags) }
        };
        // A provider that ended without unregistering left the folder
        // registered: that registration is taken over.
        register(CF_REGISTER_FLAG_MARK_IN_SYNC_ON_ROOT)
            .or_else(|first| {
                register(CF_REGISTER_FLAG_MARK_IN_SYNC_ON_ROOT | CF_REGISTER_FLAG_UPDATE).map_err(|_| first)
            })
            .map_err(|e| OsError::new("CfRegisterSyncRoot", registration.root.display(), e))?;
        self.lock().root = Some(registration.root.clone());
        Ok(())
    }

    fn connect(&self, callbacks: Arc<dyn CloudCallbacks>) -> Result<(), OsError> {
        let root = self.root("CfConnectSyncRoot")?;
        let context = Box::into_raw(Box::new(Context {
            callbacks,
            root: RootPath::new(&root.to_string_lossy()),
        }));
        let root_wide = wide(root.as_os_str());
        // SAFETY: the table is static; `context` stays valid until
        // `disconnect` frees it after `CfDisconnectSyncRoot`, after which
        // no callback runs.
        let connected = unsafe {
            CfConnectSyncRoot(
                PCWSTR(root_wide.as_ptr()),
                CALLBACKS.as_ptr(),
                Some(context as *const core::ffi::c_void),
                CF_CONNECT_FLAG_REQUIRE_FULL_FILE_PATH,
            )
        };
        match connected {
            Ok(key) => {
                self.lock().connected = Some(Connected { key, context });
                Ok(())
            }
            Err(e) => {
                // SAFETY: not connected, so no callback holds it.
                drop(unsafe { Box::from_raw(context) });
                Err(OsError::new("CfConnectSyncRoot", root.display(), e))
            }
        }
    }

    fn disconnect(&self) -> Result<(), OsError> {
        let mut state = self.lock();
        let Some(connected) = state.connected.take() else {
            return Ok(());
        };
        // SAFETY: the key came from `CfConnectSyncRoot`.
        let result = unsafe { CfDisconnectSyncRoot(connected.key) };
        if result.is_ok() {
            // SAFETY: disconnected: no callback uses the context any more.
            drop(unsafe { Box::from_raw(connected.context) });
        }
        // On failure the context is leaked: a callback may still run.
        result.map_err(|e| OsError::new("CfDisconnectSyncRoot", "<sync root>", e))
    }

    fn unregister(&self) -> Result<(), OsError> {
        let Some(root) = self.lock().root.take() else {
            return Ok(());
        };
        let root_wide = wide(root.as_os_str());
        // SAFETY: a valid NUL-terminated path.
        unsafe { CfUnregisterSyncRoot(PCWSTR(root_wide.as_ptr())) }
            .map_err(|e| OsError::new("CfUnregisterSyncRoot", root.display(), e))
    }

    fn transfer_placeholders(
        &self,
        ticket: Ticket,
        placeholders: &[Placeholder],
        status: CloudStatus,
    ) -> Result<(), OsError> {
        let mut batch = CreateInfos::new(placeholders);
        let parameters = CF_OPERATION_PARAMETERS_0 {
            TransferPlaceholders: CF_OPERATION_PARAMETERS_0_4 {
                Flags: CF_OPERATION_TRANSFER_PLACEHOLDERS_FLAG_DISABLE_ON_DEMAND_POPULATION,
                CompletionStatus: nt_status(status),
                PlaceholderTotalCount: batch.infos.len() as i64,
                PlaceholderArray: batch.infos.as_mut_ptr(),
                PlaceholderCount: batch.infos.len() as u32,
                EntriesProcessed: 0,
            },
        };
        self.execute(
            "transfer placeholders",
            ticket,
            CF_OPERATION_TYPE_TRANSFER_PLACEHOLDERS,
            parameters,
            size_of::<CF_OPERATION_PARAMETERS_0_4>(),
        )
    }

    fn transfer_data(&self, ticket: Ticket, offset: u64, data: &[u8]) -> Result<(), OsError> {
        let parameters = CF_OPERATION_PARAMETERS_0 {
            TransferData: CF_OPERATION_PARAMETERS_0_0 {
                Flags: CF_OPERATION_TRANSFER_DATA_FLAG_NONE,
                CompletionStatus: STATUS_SUCCESS,
                Buffer: data.as_ptr().cast(),
                Offset: offset as i64,
                Length: data.len() as i64,
            },
        };
        self.execute(
            "transfer data",
            ticket,
            CF_OPERATION_TYPE_TRANSFER_DATA,
            parameters,
            size_of::<CF_OPERATION_PARAMETERS_0_0>(),
        )
    }

    fn fail_data(
        &self,
        ticket: Ticket,
        offset: u64,
        length: u64,
        status: CloudStatus,
    ) -> Result<(), OsError> {
        let parameters = CF_OPERATION_PARAMETERS_0 {
            TransferData: CF_OPERATION_PARAMETERS_0_0 {
                Flags: CF_OPERATION_TRANSFER_DATA_FLAG_NONE,
                CompletionStatus: nt_status(status),
                Buffer: std::ptr::null(),
                Offset: offset as i64,
                Length: length as i64,
            },
        };
        self.execute(
            "fail data",
            ticket,
            CF_OPERATION_TYPE_TRANSFER_DATA,
            parameters,
            size_of::<CF_OPERATION_PARAMETERS_0_0>(),
        )
    }

    fn ack_rename(&self, ticket: Ticket, status: CloudStatus) -> Result<(), OsError> {
        let parameters = CF_OPERATION_PARAMETERS_0 {
            AckRename: CF_OPERATION_PARAMETERS_0_6 {
                Flags: CF_OPERATION_ACK_RENAME_FLAG_NONE,
                CompletionStatus: nt_status(status),
            },
        };
        self.execute(
            "ack rename",
            ticket,
            CF_OPERATION_TYPE_ACK_RENAME,
            parameters,
            size_of::<CF_OPERATION_PARAMETERS_0_6>(),
        )
    }

    fn ack_delete(&self, ticket: Ticket, status: CloudStatus) -> Result<(), OsError> {
        let parameters = CF_OPERATION_PARAMETERS_0 {
            AckDelete: CF_OPERATION_PARAMETERS_0_7 {
                Flags: CF_OPERATION_ACK_DELETE_FLAG_NONE,
                CompletionStatus: nt_status(status),
            },
        };
        self.execute(
            "ack delete",
            ticket,
            CF_OPERATION_TYPE_ACK_DELETE,
            parameters,
            size_of::<CF_OPERATION_PARAMETERS_0_7>(),
        )
    }

    fn create_placeholders(&self, dir: &ItemPath, placeholders: &[Placeholder]) -> Result<(), OsError> {
        let local = self.local_path("CfCreatePlaceholders", dir)?;
        let base = wide(local.as_os_str());
        let mut batch = CreateInfos::new(placeholders);
        // SAFETY: the base path and every name and identity the infos
        // point to live in `base` and `batch` across the call.
        let created = unsafe {
            CfCreatePlaceholders(PCWSTR(base.as_ptr()), &mut batch.infos, CF_CREATE_FLAG_NONE, None)
        };
        // A name already there fails its entry only, as it should: the
        // engine adds names it does not know to be there.
        match created {
            Ok(()) => Ok(()),
            Err(_)
                if batch
                    .infos
                    .iter()
                    .all(|i| i.Result.is_ok() || is_collision(i.Result)) =>
            {
                Ok(())
            }
            Err(e) => Err(OsError::new("CfCreatePlaceholders", dir, e)),
        }
    }

    fn update_placeholder(
        &self,
        path: &ItemPath,
        placeholder: &Placeholder,
        data: UpdateData,
    ) -> Result<(), OsError> {
        let file = self.open("CfUpdatePlaceholder", path, true)?;
        let metadata = fs_metadata(placeholder);
        let mut flags = CF_UPDATE_FLAG_MARK_IN_SYNC;
        if data == UpdateData::Dehydrate {
            flags |= CF_UPDATE_FLAG_DEHYDRATE;
        }
        // SAFETY: the handle is open for the call; metadata and identity
        // are borrowed across it; no overlapped I/O.
        unsafe {
            CfUpdatePlaceholder(
                HANDLE(file.as_raw_handle()),
                Some(&metadata),
                Some(placeholder.identity.as_ptr().cast()),
                placeholder.identity.len() as u32,
                None,
                flags,
                None,
                None,
            )
        }
        .map_err(|e| OsError::new("CfUpdatePlaceholder", path, e))
    }

    fn convert_to_placeholder(&self, path: &ItemPath, identity: &[u8]) -> Result<(), OsError> {
        let file = self.open("CfConvertToPlaceholder", path, true)?;
        // SAFETY: as in `update_placeholder`.
        unsafe {
            CfConvertToPlaceholder(
                HANDLE(file.as_raw_handle()),
                Some(identity.as_ptr().cast()),
                identity.len() as u32,
                CF_CONVERT_FLAG_MARK_IN_SYNC,
                None,
                None,
            )
        }
        .map_err(|e| OsError::new("CfConvertToPlaceholder", path, e))
    }

    /// Should the API raise NOTIFY_DELETE for this provider's own
    /// delete, the engine finds the remote already without the item and
    /// agrees.
    fn remove_item(&self, path: &ItemPath) -> Result<(), OsError> {
        let local = self.local_path("remove", path)?;
        let removed = if local.is_dir() {
            std::fs::remove_dir_all(&local)
        } else {
            std::fs::remove_file(&local)
        };
        match removed {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(OsError::new("remove", path, e)),
            _ => Ok(()),
        }
    }

    fn item_state(&self, path: &ItemPath) -> Result<Option<ItemState>, OsError> {
        let local = self.local_path("CfGetPlaceholderInfo", path)?;
        let metadata = match std::fs::symlink_metadata(&local) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(OsError::new("CfGetPlaceholderInfo", path, e)),
        };
        let file = self.open("CfGetPlaceholderInfo", path, false)?;
        // Room for the largest identity; u64s for the structure's
        // alignment.
        let mut buffer = vec![0u64; (size_of::<CF_PLACEHOLDER_BASIC_INFO>() + 4096).div_ceil(8)];
        // SAFETY: the buffer is as long as said and aligned for the
        // structure, which the call fills before it is read.
        let info = unsafe {
            CfGetPlaceholderInfo(
                HANDLE(file.as_raw_handle()),
                CF_PLACEHOLDER_INFO_BASIC,
                buffer.as_mut_ptr().cast(),
                (buffer.len() * 8) as u32,
                None,
            )
        };
        let (placeholder, in_sync) = match info {
            Ok(()) => {
                // SAFETY: filled by the successful call above.
                let basic = unsafe { &*(buffer.as_ptr() as *const CF_PLACEHOLDER_BASIC_INFO) };
                (true, basic.InSyncState == CF_IN_SYNC_STATE_IN_SYNC)
            }
            // Not a cloud file (ERROR_NOT_A_CLOUD_FILE): made here.
            Err(_) => (false, false),
        };
        Ok(Some(ItemState {
            placeholder,
            in_sync,
            directory: metadata.is_dir(),
            size: metadata.len(),
        }))
    }

    fn report_sync_status(&self, failure: Option<&SendFailure>) -> Result<(), OsError> {
        let root = self.root("CfReportSyncStatus")?;
        let root_wide = wide(root.as_os_str());
        let Some(failure) = failure else {
            // SAFETY: a valid NUL-terminated path; no status clears it.
            return unsafe { CfReportSyncStatus(PCWSTR(root_wide.as_ptr()), None) }
                .map_err(|e| OsError::new("CfReportSyncStatus", root.display(), e));
        };
        // The description follows the structure in one buffer, of u32s
        // for the structure's alignment (its size, 24, keeps the text's).
        let description = wide(OsStr::new(&failure.message));
        let header = size_of::<CF_SYNC_STATUS>();
        let bytes = header + description.len() * 2;
        let mut buffer = vec![0u32; bytes.div_ceil(4)];
        let status = CF_SYNC_STATUS {
            StructSize: bytes as u32,
            Code: nt_status(failure.status).0 as u32,
            DescriptionOffset: header as u32,
            DescriptionLength: (description.len() * 2) as u32,
            DeviceIdOffset: 0,
            DeviceIdLength: 0,
        };
        // SAFETY: the buffer holds the structure and then the text, both
        // written within its `bytes`, at offsets aligned for each.
        unsafe {
            let start = buffer.as_mut_ptr().cast::<u8>();
            std::ptr::write(start.cast::<CF_SYNC_STATUS>(), status);
            std::ptr::copy_nonoverlapping(
                description.as_ptr(),
                start.add(header).cast::<u16>(),
                description.len(),
            );
        }
        // SAFETY: the path and the buffer live across the call.
        unsafe {
            CfReportSyncStatus(
                PCWSTR(root_wide.as_ptr()),
                Some(buffer.as_ptr().cast::<CF_SYNC_STATUS>()),
            )
        }
        .map_err(|e| OsError::new("CfReportSyncStatus", root.display(), e))
    }

    fn read_local(&self, path: &ItemPath, offset: u64, length: u64) -> Result<Vec<u8>, OsError> {
        let file = self.open("read", path, false)?;
        let mut data = vec![0; length as usize];
        let mut filled = 0;
        while filled < data.len() {
            let n = file
                .seek_read(&mut data[filled..], offset + filled as u64)
                .map_err(|e| OsError::new("read", path, e))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        data.truncate(filled);
        Ok(data)
    }
}

/// `CF_PLACEHOLDER_CREATE_INFO`s with the names they point to.
struct CreateInfos {
    infos: Vec<CF_PLACEHOLDER_CREATE_INFO>,
    /// Pointed to by `infos`; a `Vec`'s heap buffer does not move when
    /// the outer `Vec` is built.
    _names: Vec<Vec<u16>>,
}

impl CreateInfos {
    fn new(placeholders: &[Placeholder]) -> CreateInfos {
        let names: Vec<Vec<u16>> = placeholders.iter().map(|p| wide(OsStr::new(&p.name))).collect();
        let infos = placeholders
            .iter()
            .zip(&names)
            .map(|(p, name)| CF_PLACEHOLDER_CREATE_INFO {
                RelativeFileName: PCWSTR(name.as_ptr()),
                FsMetadata: fs_metadata(p),
                FileIdentity: p.identity.as_ptr().cast(),
                FileIdentityLength: p.identity.len() as u32,
                Flags: CF_PLACEHOLDER_CREATE_FLAG_MARK_IN_SYNC,
                Result: windows::core::HRESULT(0),
                CreateUsn: 0,
            })
            .collect();
        CreateInfos { infos, _names: names }
    }
}

fn fs_metadata(placeholder: &Placeholder) -> CF_FS_METADATA {
    let time = file_time(placeholder.modified);
    CF_FS_METADATA {
        BasicInfo: FILE_BASIC_INFO {
            CreationTime: time,
            LastAccessTime: time,
            LastWriteTime: time,
            ChangeTime: time,
            FileAttributes: if placeholder.directory {
                FILE_ATTRIBUTE_DIRECTORY.0
            } else {
                FILE_ATTRIBUTE_NORMAL.0
            },
        },
        FileSize: placeholder.size as i64,
    }
}

fn is_collision(result: windows::core::HRESULT) -> bool {
    // HRESULT_FROM_WIN32(ERROR_FILE_EXISTS) and (ERROR_ALREADY_EXISTS).
    result.0 as u32 == 0x8007_0050 || result.0 as u32 == 0x8007_00B7
}

fn nt_status(status: CloudStatus) -> NTSTATUS {
    match status {
        CloudStatus::Success => STATUS_SUCCESS,
        CloudStatus::AccessDenied => STATUS_CLOUD_FILE_ACCESS_DENIED,
        CloudStatus::NotFound => STATUS_OBJECT_NAME_NOT_FOUND,
        CloudStatus::Exists => STATUS_OBJECT_NAME_COLLISION,
        CloudStatus::DirectoryNotEmpty => STATUS_DIRECTORY_NOT_EMPTY,
        CloudStatus::NetworkUnavailable => STATUS_CLOUD_FILE_NETWORK_UNAVAILABLE,
        CloudStatus::InUse => STATUS_CLOUD_FILE_IN_USE,
        CloudStatus::NotInSync => STATUS_CLOUD_FILE_NOT_IN_SYNC,
        CloudStatus::InvalidRequest => STATUS_CLOUD_FILE_INVALID_REQUEST,
        CloudStatus::Unsuccessful => STATUS_CLOUD_FILE_UNSUCCESSFUL,
    }
}

fn wide(s: &OsStr) -> Vec<u16> {
    s.encode_wide().chain(Some(0)).collect()
}

impl Context {
    /// The item a path of the API names, below the sync root; `None`
    /// outside it.
    fn relative(&self, path: PCWSTR) -> Option<ItemPath> {
        if path.is_null() {
            return None;
        }
        // SAFETY: the API's paths are NUL-terminated and valid for the
        // callback's duration.
        let path = unsafe { path.to_string() }.ok()?;
        self.root.item(&path)
    }
}

/// The callbacks this provider answers; the table ends with
/// `CF_CALLBACK_TYPE_NONE` (`CF_CALLBACK_REGISTRATION_END`).
static CALLBACKS: [CF_CALLBACK_REGISTRATION; 7] = [
    CF_CALLBACK_REGISTRATION {
        Type: CF_CALLBACK_TYPE_FETCH_PLACEHOLDERS,
        Callback: Some(on_fetch_placeholders),
    },
    CF_CALLBACK_REGISTRATION {
        Type: CF_CALLBACK_TYPE_FETCH_DATA,
        Callback: Some(on_fetch_data),
    },
    CF_CALLBACK_REGISTRATION {
        Type: CF_CALLBACK_TYPE_CANCEL_FETCH_DATA,
        Callback: Some(on_cancel_fetch_data),
    },
    CF_CALLBACK_REGISTRATION {
        Type: CF_CALLBACK_TYPE_NOTIFY_RENAME,
        Callback: Some(on_notify_rename),
    },
    CF_CALLBACK_REGISTRATION {
        Type: CF_CALLBACK_TYPE_NOTIFY_DELETE,
        Callback: Some(on_notify_delete),
    },
    CF_CALLBACK_REGISTRATION {
        Type: CF_CALLBACK_TYPE_NOTIFY_FILE_CLOSE_COMPLETION,
        Callback: Some(on_file_closed),
    },
    CF_CALLBACK_REGISTRATION {
        Type: CF_CALLBACK_TYPE_NONE,
        Callback: None,
    },
];

/// The callback's info, its context and the item it names.
///
/// # Safety
/// `info` must be the pointer the API passed to a callback of a
/// connection made by `WindowsCloudOs::connect`, during that callback.
unsafe fn callback<'a>(
    info: *const CF_CALLBACK_INFO,
) -> Option<(&'a CF_CALLBACK_INFO, &'a Context, ItemPath)> {
    // SAFETY: valid for the callback's duration (the caller's promise);
    // the context is the one `connect` leaked, freed only after the
    // disconnect that ends all callbacks.
    let info = unsafe { info.as_ref()? };
    let context = unsafe { (info.CallbackContext as *const Context).as_ref()? };
    let path = context.relative(info.NormalizedPath)?;
    Some((info, context, path))
}

fn ticket(info: &CF_CALLBACK_INFO) -> Ticket {
    Ticket {
        connection: info.ConnectionKey.0,
        transfer: info.TransferKey,
        request: info.RequestKey,
    }
}

unsafe extern "system" fn on_fetch_placeholders(
    info: *const CF_CALLBACK_INFO,
    _parameters: *const CF_CALLBACK_PARAMETERS,
) {
    // SAFETY: called by the API with its own info.
    let Some((info, context, dir)) = (unsafe { callback(info) }) else {
        return;
    };
    context.callbacks.fetch_placeholders(FetchPlaceholders {
        ticket: ticket(info),
        dir,
    });
}

unsafe extern "system" fn on_fetch_data(
    info: *const CF_CALLBACK_INFO,
    parameters: *const CF_CALLBACK_PARAMETERS,
) {
    // SAFETY: called by the API with its own info and parameters, the
    // union's FetchData member for this callback type.
    let Some((info, context, path)) = (unsafe { callback(info) }) else {
        return;
    };
    let Some(parameters) = (unsafe { parameters.as_ref() }) else {
        return;
    };
    let fetch = unsafe { parameters.Anonymous.FetchData };
    context.callbacks.fetch_data(FetchData {
        ticket: ticket(info),
        path,
        file_size: info.FileSize.max(0) as u64,
        required_offset: fetch.RequiredFileOffset.max(0) as u64,
        required_length: fetch.RequiredLength.max(0) as u64,
        optional_offset: fetch.OptionalFileOffset.max(0) as u64,
        optional_length: fetch.OptionalLength.max(0) as u64,
    });
}

unsafe extern "system" fn on_cancel_fetch_data(
    info: *const CF_CALLBACK_INFO,
    _parameters: *const CF_CALLBACK_PARAMETERS,
) {
    // SAFETY: called by the API with its own info.
    let Some((info, context, path)) = (unsafe { callback(info) }) else {
        return;
    };
    context.callbacks.cancel_fetch_data(CancelFetchData {
        ticket: ticket(info),
        path,
    });
}

unsafe extern "system" fn on_notify_rename(
    info: *const CF_CALLBACK_INFO,
    parameters: *const CF_CALLBACK_PARAMETERS,
) {
    // SAFETY: as in `on_fetch_data`, the Rename member.
    let Some((info, context, path)) = (unsafe { callback(info) }) else {
        return;
    };
    let Some(parameters) = (unsafe { parameters.as_ref() }) else {
        return;
    };
    let rename = unsafe { parameters.Anonymous.Rename };
    let target = if rename.Flags.0 & CF_CALLBACK_RENAME_FLAG_TARGET_IN_SCOPE.0 != 0 {
        context.relative(rename.TargetPath)
    } else {
        None
    };
    context.callbacks.notify_rename(NotifyRename {
        ticket: ticket(info),
        path,
        directory: rename.Flags.0 & CF_CALLBACK_RENAME_FLAG_IS_DIRECTORY.0 != 0,
        target,
    });
}

unsafe extern "system" fn on_notify_delete(
    info: *const CF_CALLBACK_INFO,
    parameters: *const CF_CALLBACK_PARAMETERS,
) {
    // SAFETY: as in `on_fetch_data`, the Delete member.
    let Some((info, context, path)) = (unsafe { callback(info) }) else {
        return;
    };
    let Some(parameters) = (unsafe { parameters.as_ref() }) else {
        return;
    };
    let delete = unsafe { parameters.Anonymous.Delete };
    context.callbacks.notify_delete(NotifyDelete {
        ticket: ticket(info),
        path,
        directory: delete.Flags.0 & CF_CALLBACK_DELETE_FLAG_IS_DIRECTORY.0 != 0,
    });
}

unsafe extern "system" fn on_file_closed(
    info: *const CF_CALLBACK_INFO,
    parameters: *const CF_CALLBACK_PARAMETERS,
) {
    // SAFETY: as in `on_fetch_data`, the CloseCompletion member.
    let Some((_, context, path)) = (unsafe { callback(info) }) else {
        return;
    };
    let Some(parameters) = (unsafe { parameters.as_ref() }) else {
        return;
    };
    let closed = unsafe { parameters.Anonymous.CloseCompletion };
    context.callbacks.file_closed(FileClosed {
        path,
        deleted: closed.Flags.0 & CF_CALLBACK_CLOSE_COMPLETION_FLAG_DELETED.0 != 0,
    });
}
