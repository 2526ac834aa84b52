//! Gives the pages of the executable's relocation table back once the dynamic loader is done
//! with them.
//!
//! The binary is position-independent: at every start, before `main`, ld.so patches some 70,000
//! pointers listed in the relocation table (`.rela.dyn`, 1.7 MiB in the release build) and never
//! reads the table again. Its pages would stay mapped, in the worker's resident set, for the
//! life of the process: an eighth of an idle worker's memory. glibc 2.36's packed relocations
//! (DT_RELR) would shrink the table to kilobytes, but the binary promises to run on glibc 2.35.
//! So `main` unmaps those pages (MADV_DONTNEED). The table lives in a read-only segment, a
//! private file mapping nothing ever wrote, so nothing is lost: a read would fault the same
//! bytes back in from the file, and the kernel can reuse the memory without writing anything.

use std::ops::Range;

/// Releases the table's whole pages; does nothing where there is no table to release (a
/// static, non-PIE build) or on platforms other than 64-bit Linux with glibc.
pub fn release() {
    if let Some(pages) = table_pages() {
        // Failing only costs memory; there is nobody to tell this early.
        let _ = release_pages(&pages);
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
fn table_pages() -> Option<Range<usize>> {
    use std::ffi::{c_int, c_void};

    unsafe extern "C" fn executable(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        found: *mut c_void,
    ) -> c_int {
        // SAFETY: glibc hands a valid entry for the call; `found` is the Option below.
        unsafe { *found.cast::<Option<Range<usize>>>() = whole_pages(&*info) };
        1 // the first object glibc lists is the executable: stop there
    }
    let mut found: Option<Range<usize>> = None;
    // SAFETY: the callback only reads the entry it is given and writes `found`, which outlives
    // the call.
    unsafe { libc::dl_iterate_phdr(Some(executable), (&raw mut found).cast()) };
    found
}

#[cfg(not(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64")))]
fn table_pages() -> Option<Range<usize>> {
    None
}

/// The whole pages of the object's `DT_RELA` table, when it lies in a read-only segment.
///
/// # Safety
/// `info` must describe an object loaded in this process (as `dl_iterate_phdr` hands them).
#[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
unsafe fn whole_pages(info: &libc::dl_phdr_info) -> Option<Range<usize>> {
    /// An entry of the dynamic section (`Elf64_Dyn`, which the libc crate does not define).
    #[repr(C)]
    struct Dynamic {
        tag: i64,
        value: u64,
    }
    const DT_NULL: i64 = 0;
    const DT_RELA: i64 = 7;
    const DT_RELASZ: i64 = 8;

    let base = info.dlpi_addr as usize;
    // SAFETY: the loader's program headers of a loaded object.
    let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum.into()) };
    let dynamic = headers.iter().find(|h| h.p_type == libc::PT_DYNAMIC)?;
    let (mut address, mut size) = (None, None);
    let mut entry = (base + dynamic.p_vaddr as usize) as *const Dynamic;
    loop {
        // SAFETY: the dynamic section is mapped and ends with a DT_NULL entry.
        let Dynamic { tag, value } = unsafe { entry.read() };
        match tag {
            DT_NULL => break,
            DT_RELA => address = Some(value as usize),
            DT_RELASZ => size = Some(value as usize),
            _ => {}
        }
        // SAFETY: not past the DT_NULL entry.
        entry = unsafe { entry.add(1) };
    }
    // glibc rewrites the entry to the loaded address on most architectures, not on all.
    let start = address.map(|a| if a < base { base + a } else { a })?;
    let table = start..start.checked_add(size?)?;
    let read_only_segment = headers.iter().any(|h| {
        let segment = base + h.p_vaddr as usize..base + (h.p_vaddr + h.p_memsz) as usize;
        h.p_type == libc::PT_LOAD
            && h.p_flags & libc::PF_W == 0
            && segment.start <= table.start
            && table.end <= segment.end
    });
    if !read_only_segment {
        return None;
    }
    let page = page_size();
    let pages = table.start.next_multiple_of(page)..table.end / page * page;
    (pages.start < pages.end).then_some(pages)
}

#[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
fn page_size() -> usize {
    // SAFETY: sysconf only reads a system setting.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

#[cfg(target_os = "linux")]
fn release_pages(pages: &Range<usize>) -> std::io::Result<()> {
    // SAFETY: `pages` are whole pages of a read-only, private file mapping that stays mapped:
    // MADV_DONTNEED only drops them from this process, and a later read faults them in again
    // from the file, unchanged.
    let done = unsafe {
        libc::madvise(
            pages.start as *mut libc::c_void,
            pages.end - pages.start,
            libc::MADV_DONTNEED,
        )
    };
    if done == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn release_pages(_pages: &Range<usize>) -> std::io::Result<()> {
    Ok(())
}

#[cfg(all(
    test,
    target_os = "linux",
    target_env = "gnu",
    target_pointer_width = "64"
))]
mod tests {
    use std::io::{Read, Seek, SeekFrom};

    use super::*;

    fn checksum(pages: &Range<usize>) -> u64 {
        (pages.start..pages.end)
            .step_by(8)
            // SAFETY: the range is mapped and readable (the loader read it).
            .map(|address| unsafe { (address as *const u64).read_volatile() })
            .fold(0, |sum, word| sum.rotate_left(5) ^ word)
    }

    /// How many of the pages are mapped in this process, from /proc/self/pagemap's "present" bit
    /// (readable without privileges).
    fn present(pages: &Range<usize>) -> usize {
        let page = page_size();
        let mut pagemap = std::fs::File::open("/proc/self/pagemap").unwrap();
        pagemap
            .seek(SeekFrom::Start((pages.start / page * 8) as u64))
            .unwrap();
        let mut entries = vec![0_u8; (pages.end - pages.start) / page * 8];
        pagemap.read_exact(&mut entries).unwrap();
        entries
            .chunks_exact(8)
            .filter(|entry| u64::from_ne_bytes((*entry).try_into().unwrap()) >> 63 == 1)
            .count()
    }

    #[test]
    fn the_tables_pages_leave_the_process_and_read_back_unchanged() {
        let pages = table_pages().expect("a test binary is position-independent");
        let before = checksum(&pages);
        assert!(present(&pages) > 0, "just read");
        release_pages(&pages).unwrap();
        assert_eq!(present(&pages), 0, "released");
        assert_eq!(checksum(&pages), before, "read back from the file");
    }
}
