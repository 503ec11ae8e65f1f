//! Memory of a render process: the address-space limit it puts on itself, what Linux says about
//! a process's memory (`/proc/PID/status`), and the checks that turn "would not fit" into
//! `render_too_large` instead of a crash.

use std::io;

use crate::IngestError;

const MIB: u64 = 1 << 20;
/// Bytes per pixel while a page is alive in the child: PDFium's BGRx bitmap and its RGB copy.
const BYTES_PER_PIXEL: u64 = 4 + 3;
/// Address space at or above this share of the limit counts as "at the limit".
const NEAR_LIMIT: f64 = 0.85;

/// Set this process's `RLIMIT_AS` (soft and hard) to `mib` MiB.
pub fn limit_address_space(mib: u64) -> io::Result<()> {
    use nix::sys::resource::{setrlimit, Resource};
    let bytes = mib.saturating_mul(MIB);
    setrlimit(Resource::RLIMIT_AS, bytes, bytes).map_err(io::Error::from)
}

/// `VmPeak` and `VmSize` of process `pid` (`None`: this process), in bytes; `None` when the
/// process is gone (or this is not Linux).
pub fn vm_peak_and_size(pid: Option<u32>) -> Option<(u64, u64)> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    let field = |name: &str| {
        status.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.trim();
            let kib: u64 = rest.strip_suffix("kB")?.trim().parse().ok()?;
            Some(kib * 1024)
        })
    };
    Some((field("VmPeak:")?, field("VmSize:")?))
}

/// Whether `peak_bytes` of address space is close enough to a `limit_mib` limit to blame it.
pub fn near_limit(peak_bytes: u64, limit_mib: u64) -> bool {
    limit_mib > 0 && peak_bytes as f64 >= NEAR_LIMIT * (limit_mib * MIB) as f64
}

/// Refuse a page whose bitmap would not fit in what is left of the limit.
pub fn check_bitmap(
    limit_mib: u64,
    page: u32,
    width: u32,
    height: u32,
    dpi: u32,
) -> Result<(), IngestError> {
    if limit_mib == 0 {
        return Ok(());
    }
    let needed = u64::from(width) * u64::from(height) * BYTES_PER_PIXEL;
    let in_use = vm_peak_and_size(None).map_or(0, |(_, size)| size);
    if needed.saturating_add(in_use) > limit_mib * MIB {
        return Err(IngestError::RenderTooLarge {
            limit_mib,
            page: Some(page),
            detail: format!(
                "a {width}×{height} bitmap at {dpi} dpi needs {} MiB",
                needed.div_ceil(MIB)
            ),
        });
    }
    Ok(())
}

/// A PDFium failure in a process that came close to its limit is the limit's doing.
pub fn blame_on_limit(e: IngestError, limit_mib: u64) -> IngestError {
    let peak = vm_peak_and_size(None).map_or(0, |(peak, _)| peak);
    match e {
        IngestError::Render { action, detail } if near_limit(peak, limit_mib) => {
            IngestError::RenderTooLarge {
                limit_mib,
                page: None,
                detail: format!("PDFium failed while {action}: {detail}"),
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_status() {
        let (peak, size) = vm_peak_and_size(None).expect("Linux /proc");
        assert!(peak >= size && size > 0);
    }

    #[test]
    fn bitmap_check_names_size() {
        assert!(check_bitmap(0, 1, 100_000, 100_000, 200).is_ok());
        assert!(check_bitmap(1 << 20, 1, 100, 100, 200).is_ok());
        let e = check_bitmap(64, 2, 10_000, 10_000, 600).unwrap_err();
        assert_eq!(e.code(), "render_too_large");
        assert!(e.to_string().contains("10000×10000"), "{e}");
        assert!(e.is_input_error());
    }

    #[test]
    fn near_limit_is_a_share() {
        assert!(!near_limit(u64::MAX, 0));
        assert!(near_limit(900 * MIB, 1000));
        assert!(!near_limit(500 * MIB, 1000));
    }
}
