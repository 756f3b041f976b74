//! [`SyncAnchor`]: where a change enumeration stands.

/// What FileProvider calls `NSFileProviderSyncAnchor`: opaque bytes (at
/// most 500) the system hands back to enumerate the changes since.
///
/// The extension process's change log (`ChangeLog`) numbers changes from
/// 0 and lives only as long as the process, so an anchor carries the
/// log's epoch too: an anchor from an earlier process, or one older than
/// what the log still holds, is expired, and the system then enumerates
/// everything again, as the enumerator contract has it for
/// `NSFileProviderErrorSyncAnchorExpired`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SyncAnchor {
    pub epoch: u64,
    /// Changes up to and including this number are enumerated.
    pub seq: u64,
}

impl SyncAnchor {
    pub const LEN: usize = 16;

    pub fn to_bytes(self) -> [u8; Self::LEN] {
        let mut out = [0; Self::LEN];
        out[..8].copy_from_slice(&self.epoch.to_be_bytes());
        out[8..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    /// `None` for bytes this extension never made: treated as expired.
    pub fn from_bytes(bytes: &[u8]) -> Option<SyncAnchor> {
        let bytes: &[u8; Self::LEN] = bytes.try_into().ok()?;
        Some(SyncAnchor {
            epoch: u64::from_be_bytes(bytes[..8].try_into().ok()?),
            seq: u64::from_be_bytes(bytes[8..].try_into().ok()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_round_trip_through_bytes() {
        let a = SyncAnchor {
            epoch: 7,
            seq: 1 << 40,
        };
        assert_eq!(SyncAnchor::from_bytes(&a.to_bytes()), Some(a));
        assert_eq!(SyncAnchor::from_bytes(&[0; 15]), None);
    }
}
