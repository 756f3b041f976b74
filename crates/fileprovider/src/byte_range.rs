//! [`ByteRange`]: a range of a file's data, as `NSRange` gives it.

/// `NSRange` over a file's bytes: `offset` (`location`) and `len`
/// (`length`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    pub offset: u64,
    pub len: u64,
}

impl ByteRange {
    pub fn end(self) -> u64 {
        self.offset.saturating_add(self.len)
    }

    /// The range to fetch for a request of this range, as the partial
    /// fetch contract has it: its start a multiple of `alignment` (a power
    /// of two), its length too except where it ends at the end of the
    /// file (`size`). `None` when nothing of the file lies in it (it
    /// starts at or past the end): the whole file is fetched then.
    pub fn aligned_within(self, alignment: u64, size: u64) -> Option<ByteRange> {
        let alignment = alignment.max(1);
        if self.offset >= size {
            return None;
        }
        let start = self.offset / alignment * alignment;
        let end = self.end().min(size);
        let aligned_end = end.div_ceil(alignment).saturating_mul(alignment).min(size);
        Some(ByteRange {
            offset: start,
            len: aligned_end - start,
        })
    }

    /// Whether this covers the whole of a file of `size` bytes.
    pub fn is_whole(self, size: u64) -> bool {
        self.offset == 0 && self.len >= size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_aligned_and_end_at_the_end_of_the_file() {
        let r = ByteRange {
            offset: 5000,
            len: 100,
        };
        assert_eq!(
            r.aligned_within(4096, 1 << 20),
            Some(ByteRange {
                offset: 4096,
                len: 4096
            })
        );
        assert_eq!(
            r.aligned_within(4096, 6000),
            Some(ByteRange {
                offset: 4096,
                len: 1904
            })
        );
        assert_eq!(r.aligned_within(4096, 5000), None);
        assert!(ByteRange { offset: 0, len: 6000 }.is_whole(6000));
    }
}
