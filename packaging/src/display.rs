//! Text output with the same columns and wording as the reference
//! `siftool list|info|header` (2.8), so users' habits carry over.

use std::fmt::Write;

use crate::format::{format_time, format_uuid, Descriptor, Header, Link, ZERO_TIME};
use crate::read::{Image, Source};

const RULE: &str = "------------------------------------------------------------------------------";

/// Go's `text/tabwriter` for `key\tvalue` rows: pads every cell but the last
/// to the widest cell in its column plus `padding`.
fn tabwrite(rows: &[Vec<String>], padding: usize) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate().take(r.len().saturating_sub(1)) {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() {
                let _ = write!(out, "{c:<w$}", w = widths[i] + padding);
            } else {
                out.push_str(c);
            }
        }
        out.push('\n');
    }
    out
}

/// `siftool header` output.
pub fn header_text(h: &Header) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut kv = |k: &str, v: String| rows.push(vec![format!("{k}:"), v]);
    let ls = h.launch_script();
    if !ls.is_empty() {
        let ls = ls.trim_end_matches('\n');
        kv("Launch Script", crate::text::inert(ls).into_owned());
    }
    kv("Version", h.version_str());
    if !h.arch.is_unknown() {
        kv("Primary Architecture", h.arch.go_name().to_string());
    }
    if h.uuid != [0; 16] {
        kv("ID", format_uuid(&h.uuid));
    }
    if h.created_at != ZERO_TIME {
        kv("Created At", format_time(h.created_at));
    }
    if h.modified_at != ZERO_TIME {
        kv("Modified At", format_time(h.modified_at));
    }
    kv("Descriptors Free", h.descriptors_free.to_string());
    kv("Descriptors Total", h.descriptors_total.to_string());
    kv("Descriptors Offset", h.descriptors_offset.to_string());
    kv("Descriptors Size", readable_size(h.descriptors_size));
    kv("Data Offset", h.data_offset.to_string());
    kv("Data Size", readable_size(h.data_size));
    tabwrite(&rows, 1)
}

/// siftool's human-readable size (`27 KiB`, `0 B`).
pub fn readable_size(size: i64) -> String {
    if -1024 < size && size < 1024 {
        return format!("{size} B");
    }
    let units = b"KMGTPE";
    let (mut div, mut exp) = (1024u64, 0usize);
    let mut n = size / 1024;
    while n <= -1024 || 1024 <= n {
        div *= 1024;
        exp += 1;
        n /= 1024;
    }
    // Go's math.Round rounds half away from zero, as f64::round does.
    let v = (size as f64 / div as f64).round();
    format!("{v:.0} {}iB", units[exp] as char)
}

fn crypto_format_name(c: i32) -> &'static str {
    match c {
        1 => "OpenPGP",
        2 => "PEM",
        _ => "Unknown",
    }
}

fn crypto_message_name(c: i32) -> &'static str {
    match c {
        0x100 => "Clear Signature",
        0x200 => "RSA-OAEP",
        _ => "Unknown",
    }
}

fn sbom_format_name(c: i32) -> &'static str {
    match c {
        1 => "cyclonedx-json",
        2 => "cyclonedx-xml",
        3 => "github-json",
        4 => "spdx-json",
        5 => "spdx-rdf",
        6 => "spdx-tag-value",
        7 => "spdx-yaml",
        8 => "syft-json",
        _ => "unknown",
    }
}

fn type_column(d: &Descriptor) -> String {
    let dt = d.data_type;
    if let Some(p) = d.partition() {
        return format!("{dt} ({}/{}/{})", p.fs, p.part_type, p.arch);
    }
    if let Some(s) = d.signature() {
        return format!("{dt} ({})", s.hash);
    }
    if let Some((f, m)) = d.crypto_message() {
        return format!(
            "{dt} ({}/{})",
            crypto_format_name(f),
            crypto_message_name(m)
        );
    }
    if let Some(f) = d.sbom_format() {
        return format!("{dt} ({})", sbom_format_name(f));
    }
    dt.to_string()
}

/// One `siftool list` row (with trailing newline).
pub fn list_row(d: &Descriptor) -> String {
    let mut s = format!("{:<4} ", d.id);
    match d.group() {
        None => s.push_str(&format!("|{:<7} ", "NONE")),
        Some(g) => s.push_str(&format!("|{g:<7} ")),
    }
    match d.link() {
        Link::None => s.push_str(&format!("|{:<7} ", "NONE")),
        Link::Group(g) => s.push_str(&format!("|{g:<3} (G) ")),
        Link::Object(o) => s.push_str(&format!("|{o:<7} ")),
    }
    let pos = format!("|{}-{} ", d.offset, d.offset.saturating_add(d.size));
    s.push_str(&format!("{pos:<26} "));
    s.push('|');
    s.push_str(&type_column(d));
    s.push('\n');
    s
}

/// `siftool list` output.
pub fn list_text<S: Source>(img: &Image<S>) -> String {
    let mut s = format!(
        "{RULE}\n{:<4} {:<8} {:<8} {:<26} {}\n{RULE}\n",
        "ID", "|GROUP", "|LINK", "|SIF POSITION (start-end)", "|TYPE"
    );
    for d in img.descriptors() {
        s.push_str(&list_row(d));
    }
    s
}

/// `siftool info ID` output.
pub fn info_text(d: &Descriptor) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut kv = |k: &str, v: String| rows.push(vec![String::new(), format!("{k}:"), v]);
    kv("Data Type", d.data_type.to_string());
    kv("ID", d.id.to_string());
    kv(
        "Group ID",
        d.group().map_or_else(|| "NONE".into(), |g| g.to_string()),
    );
    kv(
        "Linked ID",
        match d.link() {
            Link::None => "NONE".into(),
            Link::Group(g) => format!("{g} (G)"),
            Link::Object(o) => o.to_string(),
        },
    );
    kv("Offset", d.offset.to_string());
    kv("Size", d.size.to_string());
    if d.created_at != ZERO_TIME {
        kv("Created At", format_time(d.created_at));
    }
    if d.modified_at != ZERO_TIME {
        kv("Modified At", format_time(d.modified_at));
    }
    let name = d.name();
    if !name.is_empty() {
        kv("Name", crate::text::inert(&name).into_owned());
    }
    if let Some(p) = d.partition() {
        kv("Filesystem Type", p.fs.to_string());
        kv("Partition Type", p.part_type.to_string());
        kv("Architecture", p.arch.to_string());
    } else if let Some(s) = d.signature() {
        kv("Hash Type", s.hash.to_string());
        if let Some(e) = s.entity {
            kv("Entity", e.iter().map(|b| format!("{b:02X}")).collect());
        }
    } else if let Some((f, m)) = d.crypto_message() {
        kv("Format Type", crypto_format_name(f).into());
        kv("Message Type", crypto_message_name(m).into());
    } else if let Some(f) = d.sbom_format() {
        kv("Format", sbom_format_name(f).into());
    }
    tabwrite(&rows, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_siftool() {
        assert_eq!(readable_size(0), "0 B");
        assert_eq!(readable_size(28080), "27 KiB");
        assert_eq!(readable_size(10_794), "11 KiB");
        assert_eq!(readable_size(3 << 30), "3 GiB");
    }
}
