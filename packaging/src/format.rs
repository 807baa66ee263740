//! The on-disk SIF v1 layout: codes, the global header and object descriptors.
//!
//! Everything here is plain data plus exact little-endian encoding/decoding;
//! validation against the file (sizes, offsets, overlaps) lives in `read`.

use std::fmt;

/// Size of the global header.
pub const HEADER_LEN: usize = 128;
/// Size of one object descriptor.
pub const DESCRIPTOR_LEN: usize = 585;
/// Bytes of a descriptor covered by its integrity digest.
pub const DESCRIPTOR_INTEGRITY_LEN: usize = 557;
/// Bytes of the header covered by its integrity digest.
pub const HEADER_INTEGRITY_LEN: usize = 61;
/// The magic at 0x20, NUL included.
pub const MAGIC: [u8; 10] = *b"SIF_MAGIC\0";
/// The only supported version field, NUL included.
pub const VERSION: [u8; 3] = *b"01\0";
/// Default number of descriptor slots in a new image.
pub const DEFAULT_DESCRIPTOR_CAPACITY: u64 = 48;
/// Default offset of the descriptor table.
pub const DEFAULT_DESCRIPTORS_OFFSET: u64 = 4096;
/// The bit pattern marking a group ID (in the group field and in group links).
pub const GROUP_MASK: u32 = 0xF000_0000;
/// Length of the descriptor name field.
pub const NAME_LEN: usize = 128;
/// Length of the descriptor extra (type-specific) field.
pub const EXTRA_LEN: usize = 384;
/// Alignment of partition objects.
pub const PARTITION_ALIGNMENT: u64 = 4096;
/// The time the reference implementation writes in deterministic mode: Go's
/// zero `time.Time` as Unix seconds. Readers treat it as "unset".
pub const ZERO_TIME: i64 = -62_135_596_800;

macro_rules! code_enum {
    ($(#[$m:meta])* $name:ident : $repr:ty { $($(#[$vm:meta])* $var:ident = $val:expr => $s:expr),* $(,)? } unknown $us:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $var,)*
            /// A code this implementation does not know.
            Unknown($repr),
        }
        impl $name {
            /// Decodes the on-disk code.
            pub fn from_code(c: $repr) -> Self {
                match c { $($val => Self::$var,)* other => Self::Unknown(other) }
            }
            /// The on-disk code.
            pub fn code(self) -> $repr {
                match self { $(Self::$var => $val,)* Self::Unknown(c) => c }
            }
        }
        impl fmt::Display for $name {
            /// The name the reference `siftool` prints.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $(Self::$var => $s,)* Self::Unknown(_) => $us })
            }
        }
    };
}

code_enum! {
    /// What a data object holds.
    DataType: i32 {
        /// Definition file.
        Deffile = 0x4001 => "Def.FILE",
        /// Environment variables.
        EnvVar = 0x4002 => "Env.Vars",
        /// JSON labels.
        Labels = 0x4003 => "JSON.Labels",
        /// A file system partition.
        Partition = 0x4004 => "FS",
        /// A signature over an object group.
        Signature = 0x4005 => "Signature",
        /// Generic JSON metadata.
        GenericJson = 0x4006 => "JSON.Generic",
        /// Generic raw data.
        Generic = 0x4007 => "Generic/Raw",
        /// A cryptographic message.
        CryptoMessage = 0x4008 => "Cryptographic Message",
        /// A software bill of materials.
        Sbom = 0x4009 => "SBOM",
        /// An OCI root index (siftool 2.8 prints these as Unknown).
        OciRootIndex = 0x400A => "Unknown",
        /// An OCI blob (siftool 2.8 prints these as Unknown).
        OciBlob = 0x400B => "Unknown",
    } unknown "Unknown"
}

code_enum! {
    /// File system of a partition.
    FsType: i32 {
        /// Squashfs (read-only).
        Squashfs = 1 => "Squashfs",
        /// Ext3.
        Ext3 = 2 => "Ext3",
        /// Immutable object archive.
        ImmuObj = 3 => "Archive",
        /// Raw bytes.
        Raw = 4 => "Raw",
        /// Encrypted squashfs.
        EncryptedSquashfs = 5 => "Encrypted squashfs",
    } unknown "Unknown"
}

code_enum! {
    /// Role of a partition.
    PartType: i32 {
        /// An operating system.
        System = 1 => "System",
        /// The primary operating system (at most one per image).
        PrimSys = 2 => "*System",
        /// Data only.
        Data = 3 => "Data",
        /// An overlay.
        Overlay = 4 => "Overlay",
    } unknown "Unknown"
}

code_enum! {
    /// Hash function recorded in a signature descriptor.
    HashType: i32 {
        /// SHA-256.
        Sha256 = 1 => "SHA-256",
        /// SHA-384.
        Sha384 = 2 => "SHA-384",
        /// SHA-512.
        Sha512 = 3 => "SHA-512",
        /// BLAKE2s-256.
        Blake2s256 = 4 => "BLAKE2s-256",
        /// BLAKE2b-256.
        Blake2b256 = 5 => "BLAKE2b-256",
    } unknown "unknown hash value"
}

/// CPU architecture, stored as two ASCII digits and a NUL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Arch(pub [u8; 3]);

const ARCHES: [(&[u8; 3], &str); 13] = [
    (b"00\0", "unknown"),
    (b"01\0", "386"),
    (b"02\0", "amd64"),
    (b"03\0", "arm"),
    (b"04\0", "arm64"),
    (b"05\0", "ppc64"),
    (b"06\0", "ppc64le"),
    (b"07\0", "mips"),
    (b"08\0", "mipsle"),
    (b"09\0", "mips64"),
    (b"10\0", "mips64le"),
    (b"11\0", "s390x"),
    (b"12\0", "riscv64"),
];

impl Arch {
    /// Unknown architecture (`00`).
    pub const UNKNOWN: Arch = Arch(*b"00\0");

    /// From a Go-style name (`amd64`, `arm64`, `386`, ...); `None` if unknown.
    pub fn from_go_name(name: &str) -> Option<Arch> {
        ARCHES
            .iter()
            .skip(1)
            .find(|(_, n)| *n == name)
            .map(|(c, _)| Arch(**c))
    }

    /// From the numeric code siftool's `--partarch` takes (1 = 386 ... 12 = riscv64).
    pub fn from_number(n: u32) -> Option<Arch> {
        ARCHES
            .get(n as usize)
            .filter(|_| n > 0)
            .map(|(c, _)| Arch(**c))
    }

    /// The architecture this library was compiled for.
    pub fn host() -> Arch {
        let go = match std::env::consts::ARCH {
            "x86" => "386",
            "x86_64" => "amd64",
            "arm" => "arm",
            "aarch64" => "arm64",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "powerpc64" => "ppc64",
            "mips" if cfg!(target_endian = "little") => "mipsle",
            "mips" => "mips",
            "mips64" if cfg!(target_endian = "little") => "mips64le",
            "mips64" => "mips64",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            _ => "unknown",
        };
        Arch::from_go_name(go).unwrap_or(Arch::UNKNOWN)
    }

    /// The Go-style name siftool prints, or `unknown`.
    pub fn go_name(&self) -> &'static str {
        ARCHES
            .iter()
            .find(|(c, _)| **c == self.0)
            .map(|(_, n)| *n)
            .unwrap_or("unknown")
    }

    /// True for anything but a known, specific architecture.
    pub fn is_unknown(&self) -> bool {
        self.go_name() == "unknown"
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.go_name())
    }
}

/// Formats a Unix time the way Go prints `time.Time.UTC()`
/// (`2020-06-30 00:01:56 +0000 UTC`).
pub fn format_time(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm), valid for the whole i64 day range we use.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000 UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The global header, field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Launch script, NUL-padded.
    pub launch_script: [u8; 32],
    /// Magic (`SIF_MAGIC\0`).
    pub magic: [u8; 10],
    /// Version (`01\0`).
    pub version: [u8; 3],
    /// Architecture of the primary partition.
    pub arch: Arch,
    /// Image UUID, raw RFC 4122 bytes.
    pub uuid: [u8; 16],
    /// Creation time (Unix seconds; [`ZERO_TIME`] = unset).
    pub created_at: i64,
    /// Modification time (Unix seconds; [`ZERO_TIME`] = unset).
    pub modified_at: i64,
    /// Unused descriptor slots.
    pub descriptors_free: i64,
    /// All descriptor slots.
    pub descriptors_total: i64,
    /// Offset of the descriptor table.
    pub descriptors_offset: i64,
    /// Size of the descriptor table.
    pub descriptors_size: i64,
    /// Offset of the data section.
    pub data_offset: i64,
    /// Size of the data section.
    pub data_size: i64,
}

fn le_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_le_bytes(a)
}

fn le_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_le_bytes(a)
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    le_i32(b, at) as u32
}

fn arr<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[at..at + N]);
    a
}

impl Header {
    /// Decodes the 128 header bytes (no validation).
    pub fn decode(b: &[u8; HEADER_LEN]) -> Header {
        Header {
            launch_script: arr(b, 0),
            magic: arr(b, 0x20),
            version: arr(b, 0x2A),
            arch: Arch(arr(b, 0x2D)),
            uuid: arr(b, 0x30),
            created_at: le_i64(b, 0x40),
            modified_at: le_i64(b, 0x48),
            descriptors_free: le_i64(b, 0x50),
            descriptors_total: le_i64(b, 0x58),
            descriptors_offset: le_i64(b, 0x60),
            descriptors_size: le_i64(b, 0x68),
            data_offset: le_i64(b, 0x70),
            data_size: le_i64(b, 0x78),
        }
    }

    /// Encodes the 128 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..32].copy_from_slice(&self.launch_script);
        b[0x20..0x2A].copy_from_slice(&self.magic);
        b[0x2A..0x2D].copy_from_slice(&self.version);
        b[0x2D..0x30].copy_from_slice(&self.arch.0);
        b[0x30..0x40].copy_from_slice(&self.uuid);
        for (at, v) in [
            (0x40, self.created_at),
            (0x48, self.modified_at),
            (0x50, self.descriptors_free),
            (0x58, self.descriptors_total),
            (0x60, self.descriptors_offset),
            (0x68, self.descriptors_size),
            (0x70, self.data_offset),
            (0x78, self.data_size),
        ] {
            b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    /// The 61 bytes a signature's header digest covers: launch script,
    /// magic, version and UUID.
    pub fn integrity_bytes(&self) -> [u8; HEADER_INTEGRITY_LEN] {
        let mut b = [0u8; HEADER_INTEGRITY_LEN];
        b[0..32].copy_from_slice(&self.launch_script);
        b[32..42].copy_from_slice(&self.magic);
        b[42..45].copy_from_slice(&self.version);
        b[45..61].copy_from_slice(&self.uuid);
        b
    }

    /// The launch script without NUL padding (lossy UTF-8).
    pub fn launch_script(&self) -> String {
        trim_nul(&self.launch_script)
    }

    /// The version without NUL padding (`01`).
    pub fn version_str(&self) -> String {
        trim_nul(&self.version)
    }
}

/// Formats 16 raw bytes as a canonical UUID.
pub fn format_uuid(u: &[u8; 16]) -> String {
    let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn trim_nul(b: &[u8]) -> String {
    let end = b.iter().rposition(|&c| c != 0).map_or(0, |p| p + 1);
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// What a descriptor's link field points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Link {
    /// No link.
    None,
    /// Another object, by ID.
    Object(u32),
    /// An object group, by group ID.
    Group(u32),
}

impl Link {
    /// Decodes the raw link field.
    pub fn from_raw(raw: u32) -> Link {
        if raw == 0 {
            Link::None
        } else if raw & GROUP_MASK == GROUP_MASK {
            Link::Group(raw & !GROUP_MASK)
        } else {
            Link::Object(raw & !GROUP_MASK)
        }
    }

    /// Encodes the raw link field.
    pub fn raw(self) -> u32 {
        match self {
            Link::None => 0,
            Link::Object(id) => id,
            Link::Group(g) => g | GROUP_MASK,
        }
    }
}

/// Partition metadata from a descriptor's extra area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionInfo {
    /// File system.
    pub fs: FsType,
    /// Partition role.
    pub part_type: PartType,
    /// Architecture.
    pub arch: Arch,
}

/// Signature metadata from a descriptor's extra area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureInfo {
    /// Hash function.
    pub hash: HashType,
    /// Signing entity (20-byte PGP fingerprint), `None` when zero.
    pub entity: Option<[u8; 20]>,
}

/// One object descriptor, field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// What the object holds.
    pub data_type: DataType,
    /// Whether the slot is in use.
    pub used: bool,
    /// Object ID (slot index + 1).
    pub id: u32,
    /// Raw group field (group | 0xF0000000; 0xF0000000 alone = no group).
    pub raw_group: u32,
    /// Raw link field.
    pub raw_link: u32,
    /// Absolute offset of the data.
    pub offset: i64,
    /// Size of the data.
    pub size: i64,
    /// Alignment gap + size.
    pub size_with_padding: i64,
    /// Creation time.
    pub created_at: i64,
    /// Modification time.
    pub modified_at: i64,
    /// Deprecated uid, 0.
    pub uid: i64,
    /// Deprecated gid, 0.
    pub gid: i64,
    /// Name, NUL-padded.
    pub name: [u8; NAME_LEN],
    /// Type-specific metadata.
    pub extra: [u8; EXTRA_LEN],
}

impl Descriptor {
    /// An all-zero (unused) slot.
    pub fn unused() -> Descriptor {
        Descriptor {
            data_type: DataType::Unknown(0),
            used: false,
            id: 0,
            raw_group: 0,
            raw_link: 0,
            offset: 0,
            size: 0,
            size_with_padding: 0,
            created_at: 0,
            modified_at: 0,
            uid: 0,
            gid: 0,
            name: [0; NAME_LEN],
            extra: [0; EXTRA_LEN],
        }
    }

    /// Decodes 585 descriptor bytes (no validation).
    pub fn decode(b: &[u8; DESCRIPTOR_LEN]) -> Descriptor {
        Descriptor {
            data_type: DataType::from_code(le_i32(b, 0)),
            used: b[4] != 0,
            id: le_u32(b, 5),
            raw_group: le_u32(b, 9),
            raw_link: le_u32(b, 13),
            offset: le_i64(b, 17),
            size: le_i64(b, 25),
            size_with_padding: le_i64(b, 33),
            created_at: le_i64(b, 41),
            modified_at: le_i64(b, 49),
            uid: le_i64(b, 57),
            gid: le_i64(b, 65),
            name: arr(b, 73),
            extra: arr(b, 201),
        }
    }

    /// Encodes 585 descriptor bytes.
    pub fn encode(&self) -> [u8; DESCRIPTOR_LEN] {
        let mut b = [0u8; DESCRIPTOR_LEN];
        b[0..4].copy_from_slice(&self.data_type.code().to_le_bytes());
        b[4] = u8::from(self.used);
        b[5..9].copy_from_slice(&self.id.to_le_bytes());
        b[9..13].copy_from_slice(&self.raw_group.to_le_bytes());
        b[13..17].copy_from_slice(&self.raw_link.to_le_bytes());
        for (at, v) in [
            (17, self.offset),
            (25, self.size),
            (33, self.size_with_padding),
            (41, self.created_at),
            (49, self.modified_at),
            (57, self.uid),
            (65, self.gid),
        ] {
            b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        b[73..201].copy_from_slice(&self.name);
        b[201..585].copy_from_slice(&self.extra);
        b
    }

    /// The 557 bytes a signature's descriptor digest covers, with the ID
    /// replaced by `relative_id` (ID minus the smallest ID of its group).
    pub fn integrity_bytes(&self, relative_id: u32) -> [u8; DESCRIPTOR_INTEGRITY_LEN] {
        let mut b = [0u8; DESCRIPTOR_INTEGRITY_LEN];
        b[0..4].copy_from_slice(&self.data_type.code().to_le_bytes());
        b[4] = u8::from(self.used);
        b[5..9].copy_from_slice(&relative_id.to_le_bytes());
        b[9..13].copy_from_slice(&self.raw_link.to_le_bytes());
        b[13..21].copy_from_slice(&self.size.to_le_bytes());
        b[21..29].copy_from_slice(&self.created_at.to_le_bytes());
        b[29..37].copy_from_slice(&self.uid.to_le_bytes());
        b[37..45].copy_from_slice(&self.gid.to_le_bytes());
        b[45..173].copy_from_slice(&self.name);
        b[173..557].copy_from_slice(&self.extra);
        b
    }

    /// The group ID, or `None` when the object is in no group.
    pub fn group(&self) -> Option<u32> {
        match self.raw_group & !GROUP_MASK {
            0 => None,
            g => Some(g),
        }
    }

    /// What the object links to.
    pub fn link(&self) -> Link {
        Link::from_raw(self.raw_link)
    }

    /// The name without NUL padding (lossy UTF-8).
    pub fn name(&self) -> String {
        trim_nul(&self.name)
    }

    /// Partition metadata, if this is a partition.
    pub fn partition(&self) -> Option<PartitionInfo> {
        (self.data_type == DataType::Partition).then(|| PartitionInfo {
            fs: FsType::from_code(le_i32(&self.extra, 0)),
            part_type: PartType::from_code(le_i32(&self.extra, 4)),
            arch: Arch(arr(&self.extra, 8)),
        })
    }

    /// Signature metadata, if this is a signature.
    pub fn signature(&self) -> Option<SignatureInfo> {
        (self.data_type == DataType::Signature).then(|| {
            let entity: [u8; 20] = arr(&self.extra, 4);
            SignatureInfo {
                hash: HashType::from_code(le_i32(&self.extra, 0)),
                entity: (entity != [0; 20]).then_some(entity),
            }
        })
    }

    /// Crypto message (format type, message type) codes, if this is one.
    pub fn crypto_message(&self) -> Option<(i32, i32)> {
        (self.data_type == DataType::CryptoMessage)
            .then(|| (le_i32(&self.extra, 0), le_i32(&self.extra, 4)))
    }

    /// SBOM format code, if this is an SBOM.
    pub fn sbom_format(&self) -> Option<i32> {
        (self.data_type == DataType::Sbom).then(|| le_i32(&self.extra, 0))
    }
}

/// Extra-area bytes for a partition.
pub fn partition_extra(info: PartitionInfo) -> [u8; EXTRA_LEN] {
    let mut e = [0u8; EXTRA_LEN];
    e[0..4].copy_from_slice(&info.fs.code().to_le_bytes());
    e[4..8].copy_from_slice(&info.part_type.code().to_le_bytes());
    e[8..11].copy_from_slice(&info.arch.0);
    e
}

/// Extra-area bytes for a signature.
pub fn signature_extra(hash: HashType, entity: Option<[u8; 20]>) -> [u8; EXTRA_LEN] {
    let mut e = [0u8; EXTRA_LEN];
    e[0..4].copy_from_slice(&hash.code().to_le_bytes());
    if let Some(ent) = entity {
        e[4..24].copy_from_slice(&ent);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_time_format() {
        assert_eq!(format_time(1_593_475_316), "2020-06-30 00:01:56 +0000 UTC");
        assert_eq!(format_time(0), "1970-01-01 00:00:00 +0000 UTC");
    }

    #[test]
    fn descriptor_roundtrip() {
        let mut d = Descriptor::unused();
        d.data_type = DataType::Partition;
        d.used = true;
        d.id = 7;
        d.raw_group = GROUP_MASK | 3;
        d.raw_link = Link::Group(2).raw();
        d.offset = 4096;
        d.size = 12;
        d.name[..3].copy_from_slice(b"abc");
        d.extra = partition_extra(PartitionInfo {
            fs: FsType::Squashfs,
            part_type: PartType::PrimSys,
            arch: Arch::from_go_name("arm64").unwrap(),
        });
        let back = Descriptor::decode(&d.encode());
        assert_eq!(back, d);
        assert_eq!(back.group(), Some(3));
        assert_eq!(back.link(), Link::Group(2));
        assert_eq!(back.name(), "abc");
        let p = back.partition().unwrap();
        assert_eq!(p.arch.go_name(), "arm64");
        assert_eq!(p.part_type.to_string(), "*System");
    }

    #[test]
    fn arch_codes() {
        assert_eq!(Arch::from_number(2).unwrap().go_name(), "amd64");
        assert_eq!(Arch::from_number(12).unwrap().go_name(), "riscv64");
        assert!(Arch::from_number(0).is_none());
        assert!(Arch::from_number(13).is_none());
        assert!(Arch(*b"99\0").is_unknown());
    }
}
