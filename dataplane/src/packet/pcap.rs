//! Classic pcap files (microsecond timestamps, Ethernet link type): written by the
//! traffic generator and the tests, read back by tools and tests.

use std::io::{self, Read, Write};

const MAGIC: u32 = 0xa1b2_c3d4;
/// The same format with nanosecond timestamps (what DPDK's pcap PMD writes).
const MAGIC_NS: u32 = 0xa1b2_3c4d;
const LINKTYPE_ETHERNET: u32 = 1;

/// Writes the global header.
pub fn write_header(w: &mut impl Write) -> io::Result<()> {
    w.write_all(&MAGIC.to_le_bytes())?;
    w.write_all(&2u16.to_le_bytes())?;
    w.write_all(&4u16.to_le_bytes())?;
    w.write_all(&0i32.to_le_bytes())?;
    w.write_all(&0u32.to_le_bytes())?;
    w.write_all(&65535u32.to_le_bytes())?;
    w.write_all(&LINKTYPE_ETHERNET.to_le_bytes())
}

/// Writes one frame with a timestamp in microseconds.
pub fn write_frame(w: &mut impl Write, ts_us: u64, frame: &[u8]) -> io::Result<()> {
    w.write_all(&((ts_us / 1_000_000) as u32).to_le_bytes())?;
    w.write_all(&((ts_us % 1_000_000) as u32).to_le_bytes())?;
    w.write_all(&(frame.len() as u32).to_le_bytes())?;
    w.write_all(&(frame.len() as u32).to_le_bytes())?;
    w.write_all(frame)
}

/// Writes a whole file of frames (timestamps 1 µs apart).
pub fn write_file(path: &std::path::Path, frames: &[Vec<u8>]) -> io::Result<()> {
    let mut w = io::BufWriter::new(std::fs::File::create(path)?);
    write_header(&mut w)?;
    for (i, f) in frames.iter().enumerate() {
        write_frame(&mut w, i as u64, f)?;
    }
    w.flush()
}

/// Reads every frame of a little-endian pcap file (micro- or nanosecond timestamps).
pub fn read(r: &mut impl Read) -> io::Result<Vec<Vec<u8>>> {
    let mut h = [0u8; 24];
    r.read_exact(&mut h)?;
    let magic = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    if magic != MAGIC && magic != MAGIC_NS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a little-endian pcap file",
        ));
    }
    let mut frames = Vec::new();
    let mut rec = [0u8; 16];
    loop {
        match r.read_exact(&mut rec) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(frames),
            Err(e) => return Err(e),
        }
        let len = u32::from_le_bytes([rec[8], rec[9], rec[10], rec[11]]) as usize;
        if len > 262_144 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "pcap record too large",
            ));
        }
        let mut f = vec![0u8; len];
        r.read_exact(&mut f)?;
        frames.push(f);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let frames = vec![vec![1u8; 60], vec![2u8; 1514]];
        let mut buf = Vec::new();
        super::write_header(&mut buf).unwrap();
        for (i, f) in frames.iter().enumerate() {
            super::write_frame(&mut buf, i as u64 * 1_500_000, f).unwrap();
        }
        assert_eq!(super::read(&mut &buf[..]).unwrap(), frames);
        assert!(super::read(&mut &b"nope, not a pcap file...."[..]).is_err());
        // Nanosecond-timestamp files read the same.
        buf[0..4].copy_from_slice(&super::MAGIC_NS.to_le_bytes());
        assert_eq!(super::read(&mut &buf[..]).unwrap(), frames);
    }
}
