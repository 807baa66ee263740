//! The ELF checks the loader runs on a plugin library before loading it:
//! a shared library for this host's machine exporting abi_stable's
//! root-module symbol. Kept apart from the loader because it is a parser of
//! untrusted bytes with its own bounds arithmetic.

use std::path::Path;

use goblin::elf::{dynamic, header, program_header, Elf};
use goblin::elf::{Dynamic, ProgramHeader, Symtab};

use super::load_error::{LoadError, LoadErrorKind};

/// The `e_machine` of the running binary.
pub const HOST_MACHINE: u16 = if cfg!(target_arch = "x86_64") {
    header::EM_X86_64
} else if cfg!(target_arch = "aarch64") {
    header::EM_AARCH64
} else if cfg!(target_arch = "x86") {
    header::EM_386
} else if cfg!(target_arch = "arm") {
    header::EM_ARM
} else if cfg!(target_arch = "riscv64") {
    header::EM_RISCV
} else if cfg!(target_arch = "powerpc64") {
    header::EM_PPC64
} else if cfg!(target_arch = "s390x") {
    header::EM_S390
} else {
    header::EM_NONE
};

/// The ELF checks: a shared library (not an executable) for this host's
/// machine that exports abi_stable's root-module symbol. Parses only what
/// it checks (header, program headers, dynamic section, dynamic symbols),
/// never the (large) static symbol and string tables.
pub fn check_elf(label: &str, path: &Path, bytes: &[u8]) -> Result<(), LoadError> {
    let plugin = label.to_string();
    let path = path.to_path_buf();
    if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
        return Err(LoadError::new(plugin, path, LoadErrorKind::NotElf));
    }
    let malformed = |e: goblin::error::Error| {
        LoadError::new(
            plugin.clone(),
            path.clone(),
            LoadErrorKind::MalformedElf {
                reason: e.to_string(),
            },
        )
    };
    let elf = LeanElf::parse(bytes).map_err(malformed)?;
    if elf.header.e_machine != HOST_MACHINE {
        return Err(LoadError::new(
            plugin,
            path,
            LoadErrorKind::WrongArchitecture {
                found: header::machine_to_str(elf.header.e_machine).to_string(),
                expected: header::machine_to_str(HOST_MACHINE).to_string(),
            },
        ));
    }
    match elf.header.e_type {
        header::ET_DYN => {}
        header::ET_EXEC => return Err(LoadError::new(plugin, path, LoadErrorKind::Executable)),
        t => {
            return Err(LoadError::new(
                plugin,
                path,
                LoadErrorKind::NotSharedObject {
                    elf_type: header::et_to_str(t).to_string(),
                },
            ))
        }
    }
    // A PIE executable is ET_DYN too; it asks for a program interpreter
    // and/or carries DF_1_PIE.
    let has_interp = elf
        .program_headers
        .iter()
        .any(|ph| ph.p_type == program_header::PT_INTERP);
    let pie_flag = elf
        .dynamic
        .as_ref()
        .is_some_and(|d| d.info.flags_1 & dynamic::DF_1_PIE != 0);
    if has_interp || pie_flag {
        return Err(LoadError::new(plugin, path, LoadErrorKind::Executable));
    }
    if !elf
        .exports(bytes, abi_stable::library::ROOT_MODULE_LOADER_NAME)
        .map_err(malformed)?
    {
        return Err(LoadError::new(plugin, path, LoadErrorKind::NotAPlugin));
    }
    Ok(())
}

/// The parts of an ELF file [`check_elf`] looks at.
struct LeanElf {
    header: goblin::elf::Header,
    ctx: goblin::container::Ctx,
    little: bool,
    program_headers: Vec<ProgramHeader>,
    dynamic: Option<Dynamic>,
}

impl LeanElf {
    fn parse(bytes: &[u8]) -> goblin::error::Result<Self> {
        let header = Elf::parse_header(bytes)?;
        let ctx = goblin::container::Ctx::new(header.container()?, header.endianness()?);
        let program_headers = ProgramHeader::parse(
            bytes,
            usize::try_from(header.e_phoff).unwrap_or(usize::MAX),
            usize::from(header.e_phnum),
            ctx,
        )?;
        let dynamic = Dynamic::parse(bytes, &program_headers, ctx)?;
        Ok(Self {
            header,
            ctx,
            little: header.e_ident[header::EI_DATA] == header::ELFDATA2LSB,
            program_headers,
            dynamic,
        })
    }

    /// Whether a defined dynamic symbol is called `name`.
    fn exports(&self, bytes: &[u8], name: &str) -> goblin::error::Result<bool> {
        let Some(d) = &self.dynamic else {
            return Ok(false);
        };
        let info = &d.info;
        let count = match (info.gnu_hash, info.hash) {
            (Some(at), _) => gnu_hash_len(bytes, usize::try_from(at).unwrap_or(usize::MAX), self)?,
            // DT_HASH: nbucket, then nchain, the number of symbols.
            (None, Some(at)) => {
                let at = usize::try_from(at).unwrap_or(usize::MAX);
                u32_at(bytes, at.saturating_add(4), self.little)?
            }
            (None, None) => 0,
        };
        let syms = Symtab::parse(bytes, info.symtab, count, self.ctx)?;
        let strtab = bytes
            .get(info.strtab..info.strtab.saturating_add(info.strsz))
            .unwrap_or_default();
        let want = name.as_bytes();
        Ok(syms.iter().any(|sym| {
            sym.st_shndx != 0
                && strtab
                    .get(sym.st_name..)
                    .and_then(|s| s.get(..=want.len()))
                    .is_some_and(|s| &s[..want.len()] == want && s[want.len()] == 0)
        }))
    }
}

/// The 32-bit word at `off`, in the file's byte order.
fn u32_at(bytes: &[u8], off: usize, little: bool) -> goblin::error::Result<usize> {
    let b: [u8; 4] = bytes
        .get(off..off.saturating_add(4))
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| goblin::error::Error::Malformed(format!("offset {off} is past the end")))?;
    let w = if little {
        u32::from_le_bytes(b)
    } else {
        u32::from_be_bytes(b)
    };
    Ok(w as usize)
}

/// The number of dynamic symbols, from a DT_GNU_HASH table (as goblin and
/// readelf count them): one past the last symbol of the longest chain.
fn gnu_hash_len(bytes: &[u8], at: usize, elf: &LeanElf) -> goblin::error::Result<usize> {
    let word = |off: usize| u32_at(bytes, off, elf.little);
    let buckets = word(at)?;
    let first = word(at.saturating_add(4))?;
    let bloom = word(at.saturating_add(8))?;
    if buckets == 0 || first == 0 || bloom == 0 {
        return Err(goblin::error::Error::Malformed(format!(
            "invalid DT_GNU_HASH: {buckets} buckets, first symbol {first}, bloom size {bloom}"
        )));
    }
    let word_size = if elf.ctx.container.is_big() { 8 } else { 4 };
    let buckets_at = at
        .saturating_add(16)
        .saturating_add(bloom.saturating_mul(word_size));
    let mut last = 0;
    for b in 0..buckets {
        last = last.max(word(buckets_at.saturating_add(b.saturating_mul(4)))?);
    }
    if last < first {
        return Ok(0);
    }
    let mut chain_at = buckets_at
        .saturating_add(buckets.saturating_mul(4))
        .saturating_add((last - first).saturating_mul(4));
    loop {
        let hash = word(chain_at)?;
        last += 1;
        chain_at = chain_at.saturating_add(4);
        if hash & 1 != 0 {
            return Ok(last);
        }
    }
}
