//! The machine's limits, measured for the checker (which itself reads no files and no
//! environment).

use crate::check::Limits;

/// The limits of this machine: `$NETC_MEMORY_LIMIT` (bytes, or with a K/M/G/T suffix) if set,
/// else the physical memory from `/proc/meminfo`, else 16 GiB.
pub fn of_this_machine() -> Limits {
    let from_env = std::env::var("NETC_MEMORY_LIMIT").ok().and_then(|v| parse_size(&v));
    let from_proc = || {
        let text = std::fs::read_to_string("/proc/meminfo").ok()?;
        let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    };
    Limits {
        memory_bytes: from_env.or_else(from_proc).unwrap_or(16 << 30),
    }
}

/// This process's peak resident memory in bytes (`VmHWM` of `/proc/self/status`), where the
/// system reports it.
pub fn peak_resident_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, shift) = match text.char_indices().last()? {
        (i, 'K' | 'k') => (&text[..i], 10),
        (i, 'M' | 'm') => (&text[..i], 20),
        (i, 'G' | 'g') => (&text[..i], 30),
        (i, 'T' | 't') => (&text[..i], 40),
        _ => (text, 0),
    };
    digits.trim().parse::<u64>().ok()?.checked_mul(1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("x"), None);
    }
}
