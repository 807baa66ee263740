//! DSSE signatures over object groups, in the reference implementation's
//! format: one Signature object per group, linked to the group, holding a
//! compact-JSON DSSE envelope whose payload lists digests of the header's
//! integrity fields and of each object's descriptor and data.

use std::io::Read;
use std::path::Path;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::format::{DataType, Descriptor, HashType, Link, GROUP_MASK};
use crate::read::{Image, Source};
use crate::write::{ObjectInput, Writer};

/// The DSSE payload type of SIF signature metadata.
pub const PAYLOAD_TYPE: &str = "application/vnd.sylabs.sif-metadata+json";

/// Signature objects larger than this are refused unread (the reference's
/// are a few KiB).
const MAX_SIGNATURE_SIZE: u64 = 1 << 20;

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    #[serde(rename = "payloadType")]
    payload_type: String,
    payload: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Serialize, Deserialize)]
struct EnvelopeSignature {
    #[serde(default)]
    keyid: String,
    sig: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Metadata {
    version: u32,
    header: HeaderMetadata,
    objects: Vec<ObjectMetadata>,
}

#[derive(Debug, Serialize, Deserialize)]
struct HeaderMetadata {
    digest: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct ObjectMetadata {
    #[serde(rename = "relativeId")]
    relative_id: u32,
    #[serde(rename = "descriptorDigest")]
    descriptor_digest: String,
    #[serde(rename = "objectDigest")]
    object_digest: String,
}

/// The reference keyid: `SHA256:` + unpadded base64 of SHA-256 over the
/// SSH wire-format public key.
pub fn keyid(key: &VerifyingKey) -> String {
    let mut wire = Vec::with_capacity(51);
    for part in [b"ssh-ed25519".as_slice(), key.as_bytes().as_slice()] {
        wire.extend_from_slice(&(part.len() as u32).to_be_bytes());
        wire.extend_from_slice(part);
    }
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(&wire)))
}

/// DSSE pre-authentication encoding.
fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn object_digest<S: Source>(img: &Image<S>, id: u32) -> Result<String> {
    let mut r = img.object_reader(id)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn group_metadata<S: Source>(img: &Image<S>, group: u32) -> Result<(Metadata, Vec<u32>)> {
    let objects = img.group_objects(group);
    let min = img
        .min_id_for_raw_group(group | GROUP_MASK)
        .ok_or(Error::NothingToSign)?;
    let mut md = Metadata {
        version: 1,
        header: HeaderMetadata {
            digest: format!("sha256:{}", sha256_hex(&img.header().integrity_bytes())),
        },
        objects: Vec::with_capacity(objects.len()),
    };
    for d in &objects {
        let rel = d.id - min;
        md.objects.push(ObjectMetadata {
            relative_id: rel,
            descriptor_digest: format!("sha256:{}", sha256_hex(&d.integrity_bytes(rel))),
            object_digest: format!("sha256:{}", object_digest(img, d.id)?),
        });
    }
    Ok((md, objects.iter().map(|d| d.id).collect()))
}

/// The signature bytes (a DSSE envelope) for one group.
fn envelope_for_group<S: Source>(
    img: &Image<S>,
    group: u32,
    key: &SigningKey,
) -> Result<(Vec<u8>, Vec<u32>)> {
    let (md, ids) = group_metadata(img, group)?;
    let body = serde_json::to_vec(&md).map_err(|e| Error::InvalidInput(e.to_string()))?;
    let sig = key.sign(&pae(PAYLOAD_TYPE, &body));
    let env = Envelope {
        payload_type: PAYLOAD_TYPE.into(),
        payload: STANDARD.encode(&body),
        signatures: vec![EnvelopeSignature {
            keyid: keyid(&key.verifying_key()),
            sig: STANDARD.encode(sig.to_bytes()),
        }],
    };
    let bytes = serde_json::to_vec(&env).map_err(|e| Error::InvalidInput(e.to_string()))?;
    Ok((bytes, ids))
}

/// One group signed by [`sign_image`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedGroup {
    /// The group.
    pub group: u32,
    /// The objects the signature covers.
    pub objects: Vec<u32>,
    /// The new signature object's ID.
    pub signature_id: u32,
    /// The signer's keyid.
    pub keyid: String,
}

/// Signs every object group of the image at `path` with `key`, appending one
/// DSSE signature object per group (existing objects and signatures are left
/// as they are). The file is unchanged if anything fails. The image is
/// opened once, without following a symlink, and must be a regular file:
/// what is signed is what is written to.
pub fn sign_image(path: impl AsRef<Path>, key: &SigningKey) -> Result<Vec<SignedGroup>> {
    let path = path.as_ref();
    let file = crate::read::open_regular(path, true)?;
    let img = Image::from_source(file).map_err(|e| match e {
        Error::RawIo(source) => Error::io(path, source),
        other => other,
    })?;
    let groups = img.group_ids();
    if groups.is_empty() {
        return Err(Error::NothingToSign);
    }
    let mut envelopes = Vec::with_capacity(groups.len());
    for &g in &groups {
        envelopes.push((g, envelope_for_group(&img, g, key)?));
    }
    let kid = keyid(&key.verifying_key());
    let mut w = Writer::from_file(img.into_source(), path)?;
    let mut out = Vec::with_capacity(envelopes.len());
    for (group, (bytes, objects)) in envelopes {
        let added = w.add(ObjectInput::signature(
            HashType::Sha256,
            group,
            bytes.as_slice(),
        ))?;
        out.push(SignedGroup {
            group,
            objects,
            signature_id: added.id,
            keyid: kid.clone(),
        });
    }
    w.finish()?;
    Ok(out)
}

/// Why a group did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyFailure {
    /// No signature object is linked to the group.
    #[error("group {group} is not signed")]
    Unsigned {
        /// The group.
        group: u32,
    },
    /// The signature is not a DSSE envelope (e.g. a PGP clear-signature).
    #[error("signature object {signature_id} is not a dsse signature")]
    NotDsse {
        /// Signature object ID.
        signature_id: u32,
    },
    /// None of the envelope's keyids belongs to a given key.
    #[error("signature object {signature_id} is from an unknown key ({})", keyids.join(", "))]
    UnknownKey {
        /// Signature object ID.
        signature_id: u32,
        /// The keyids in the envelope.
        keyids: Vec<String>,
    },
    /// A given key's signature does not verify.
    #[error("signature object {signature_id}: bad signature from {keyid}")]
    BadSignature {
        /// Signature object ID.
        signature_id: u32,
        /// The key whose signature failed.
        keyid: String,
    },
    /// Bad JSON, base64, or metadata in the envelope.
    #[error("signature object {signature_id} is malformed: {reason}")]
    Malformed {
        /// Signature object ID.
        signature_id: u32,
        /// What is wrong.
        reason: String,
    },
    /// The header's integrity fields changed since signing.
    #[error("signature object {signature_id}: header digest mismatch")]
    HeaderDigestMismatch {
        /// Signature object ID.
        signature_id: u32,
    },
    /// An object's descriptor changed since signing.
    #[error("signature object {signature_id}: descriptor digest mismatch for object {object_id}")]
    DescriptorDigestMismatch {
        /// Signature object ID.
        signature_id: u32,
        /// The changed object.
        object_id: u32,
    },
    /// An object's data changed since signing.
    #[error("signature object {signature_id}: object digest mismatch for object {object_id}")]
    ObjectDigestMismatch {
        /// Signature object ID.
        signature_id: u32,
        /// The changed object.
        object_id: u32,
    },
    /// An object in the group is not covered by the signature.
    #[error("signature object {signature_id} does not cover object {object_id}")]
    ObjectNotSigned {
        /// Signature object ID.
        signature_id: u32,
        /// The uncovered object.
        object_id: u32,
    },
    /// A data object in no group: no signature can cover it, so the image
    /// is refused (as the reference implementation does).
    #[error("object {object_id} is in no object group, so no signature covers it")]
    UngroupedObject {
        /// The object.
        object_id: u32,
    },
    /// The signature covers an object the group no longer has.
    #[error("signature object {signature_id} covers object {object_id}, which is missing")]
    SignedObjectMissing {
        /// Signature object ID.
        signature_id: u32,
        /// The missing object.
        object_id: u32,
    },
}

impl VerifyFailure {
    /// Failures that say nothing about the image's integrity, only that we
    /// could not check it with these keys; others take precedence in reports.
    fn is_inconclusive(&self) -> bool {
        matches!(
            self,
            VerifyFailure::UnknownKey { .. } | VerifyFailure::NotDsse { .. }
        )
    }
}

/// What checking one signature object found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A given key's signature verified and its metadata matches the image.
    Verified,
    /// No given key made it (or it is a format we cannot check): says
    /// nothing about the image, only that these keys cannot vouch for it.
    UnknownKey,
    /// It does not verify: a given key's signature is wrong, the envelope
    /// is malformed, or the image changed since signing. Fails the group.
    Bad,
}

impl Verdict {
    /// `verified`, `unknown key` or `bad`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Verified => "verified",
            Verdict::UnknownKey => "unknown key",
            Verdict::Bad => "bad",
        }
    }
}

/// One signature object linked to a group, with its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureReport {
    /// Signature object ID.
    pub signature_id: u32,
    /// The keyids in its envelope (empty when it is no DSSE envelope).
    pub keyids: Vec<String>,
    /// The keyids that verified it (with [`Verdict::Verified`]).
    pub verified_by: Vec<String>,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, unless it verified.
    pub failure: Option<VerifyFailure>,
}

/// The verification result for one object group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupReport {
    /// The group.
    pub group: u32,
    /// The objects in the group (what a good signature covers).
    pub objects: Vec<u32>,
    /// The signature objects linked to the group.
    pub signature_ids: Vec<u32>,
    /// Every linked signature with its verdict, by object ID.
    pub signatures: Vec<SignatureReport>,
    /// Keyids whose signatures verified and whose metadata matched.
    pub verified_by: Vec<String>,
    /// Why the group failed; `None` when it verified.
    pub failure: Option<VerifyFailure>,
}

impl GroupReport {
    /// True when at least one signature fully verified and none is bad.
    pub fn is_ok(&self) -> bool {
        self.failure.is_none()
    }
}

/// The verification result for a whole image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// One entry per object group, ascending.
    pub groups: Vec<GroupReport>,
    /// Data objects (other than signatures) in no group: none may exist.
    pub ungrouped: Vec<u32>,
    /// The failure for the first of `ungrouped`.
    pub ungrouped_failure: Option<VerifyFailure>,
}

impl VerifyReport {
    /// True when the image has at least one group, every group verified,
    /// and every data object is in a group.
    pub fn is_ok(&self) -> bool {
        self.first_failure().is_none() && !self.groups.is_empty()
    }

    /// The first failure, if any: an ungrouped object, else the first
    /// failed group's.
    pub fn first_failure(&self) -> Option<&VerifyFailure> {
        self.ungrouped_failure
            .as_ref()
            .or_else(|| self.groups.iter().find_map(|g| g.failure.as_ref()))
    }

    /// Every keyid that verified some group.
    pub fn signers(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .groups
            .iter()
            .flat_map(|g| g.verified_by.iter().cloned())
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

fn parse_envelope(id: u32, data: &[u8]) -> std::result::Result<Envelope, VerifyFailure> {
    match serde_json::from_slice::<Envelope>(data) {
        Ok(e) if e.payload_type == PAYLOAD_TYPE => Ok(e),
        Ok(e) => Err(VerifyFailure::Malformed {
            signature_id: id,
            reason: format!("unexpected payload type {:?}", e.payload_type),
        }),
        Err(_) if data.starts_with(b"-----BEGIN PGP") => {
            Err(VerifyFailure::NotDsse { signature_id: id })
        }
        Err(e) => Err(VerifyFailure::Malformed {
            signature_id: id,
            reason: format!("bad json: {e}"),
        }),
    }
}

fn signature_data<S: Source>(
    img: &Image<S>,
    d: &Descriptor,
) -> std::result::Result<Vec<u8>, VerifyFailure> {
    img.read_object(d.id, MAX_SIGNATURE_SIZE)
        .map_err(|e| VerifyFailure::Malformed {
            signature_id: d.id,
            reason: e.to_string(),
        })
}

/// Checks one signature object against `keys`; on success returns the
/// keyids that verified.
fn verify_signature<S: Source>(
    img: &Image<S>,
    group: u32,
    sig_desc: &Descriptor,
    keys: &[(String, VerifyingKey)],
) -> Result<std::result::Result<Vec<String>, VerifyFailure>> {
    let id = sig_desc.id;
    let malformed = |reason: String| VerifyFailure::Malformed {
        signature_id: id,
        reason,
    };
    let data = match signature_data(img, sig_desc) {
        Ok(d) => d,
        Err(f) => return Ok(Err(f)),
    };
    let env = match parse_envelope(id, &data) {
        Ok(e) => e,
        Err(f) => return Ok(Err(f)),
    };
    let body = match STANDARD.decode(env.payload.as_bytes()) {
        Ok(b) => b,
        Err(e) => return Ok(Err(malformed(format!("bad payload base64: {e}")))),
    };
    let msg = pae(&env.payload_type, &body);
    let mut verified = Vec::new();
    let mut bad_key = None;
    for s in &env.signatures {
        let Ok(raw) = STANDARD.decode(s.sig.as_bytes()) else {
            return Ok(Err(malformed(format!(
                "bad signature base64 for {}",
                s.keyid
            ))));
        };
        for (kid, key) in keys {
            if !s.keyid.is_empty() && s.keyid != *kid {
                continue;
            }
            let ok = Signature::from_slice(&raw)
                .map(|sig| key.verify(&msg, &sig).is_ok())
                .unwrap_or(false);
            if ok {
                verified.push(kid.clone());
            } else if !s.keyid.is_empty() {
                bad_key = Some(kid.clone());
            }
        }
    }
    if verified.is_empty() {
        return Ok(Err(match bad_key {
            Some(keyid) => VerifyFailure::BadSignature {
                signature_id: id,
                keyid,
            },
            None => VerifyFailure::UnknownKey {
                signature_id: id,
                keyids: env.signatures.iter().map(|s| s.keyid.clone()).collect(),
            },
        }));
    }
    verified.sort();
    verified.dedup();

    // The payload is authentic from here on; check it against the image.
    let md: Metadata = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => return Ok(Err(malformed(format!("bad metadata json: {e}")))),
    };
    if md.version != 1 {
        return Ok(Err(malformed(format!("metadata version {}", md.version))));
    }
    let (actual, ids) = group_metadata(img, group)?;
    if md.header.digest != actual.header.digest {
        return Ok(Err(VerifyFailure::HeaderDigestMismatch {
            signature_id: id,
        }));
    }
    let min = ids.iter().copied().min().unwrap_or(0);
    let rel_ids: Vec<u32> = md.objects.iter().map(|o| o.relative_id).collect();
    for (&oid, a) in ids.iter().zip(&actual.objects) {
        let Some(o) = md.objects.iter().find(|o| o.relative_id == a.relative_id) else {
            return Ok(Err(VerifyFailure::ObjectNotSigned {
                signature_id: id,
                object_id: oid,
            }));
        };
        if o.descriptor_digest != a.descriptor_digest {
            return Ok(Err(VerifyFailure::DescriptorDigestMismatch {
                signature_id: id,
                object_id: oid,
            }));
        }
        if o.object_digest != a.object_digest {
            return Ok(Err(VerifyFailure::ObjectDigestMismatch {
                signature_id: id,
                object_id: oid,
            }));
        }
    }
    if let Some(missing) = rel_ids
        .iter()
        .find(|r| !actual.objects.iter().any(|a| a.relative_id == **r))
    {
        return Ok(Err(VerifyFailure::SignedObjectMissing {
            signature_id: id,
            object_id: min.saturating_add(*missing),
        }));
    }
    Ok(Ok(verified))
}

fn group_signatures<S: Source>(img: &Image<S>, group: u32) -> Vec<&Descriptor> {
    img.descriptors()
        .filter(|d| d.data_type == DataType::Signature && d.link() == Link::Group(group))
        .collect()
}

/// Verifies every object group of `img` against `keys`, following the
/// reference rules (sylabs/sif `pkg/integrity`): a data object outside
/// every group fails the image; a group passes only when at least one
/// linked signature verifies with one of the keys (digests of header,
/// descriptors and data matching) and no linked signature is bad. Errors are
/// only for failures to read the image; verdicts are in the report.
pub fn verify_image<S: Source>(img: &Image<S>, keys: &[VerifyingKey]) -> Result<VerifyReport> {
    let keys: Vec<(String, VerifyingKey)> = keys.iter().map(|k| (keyid(k), *k)).collect();
    let mut groups = Vec::new();
    for g in img.group_ids() {
        let objects = img.group_objects(g).iter().map(|d| d.id).collect();
        let sigs = group_signatures(img, g);
        let mut report = GroupReport {
            group: g,
            objects,
            signature_ids: sigs.iter().map(|d| d.id).collect(),
            signatures: Vec::new(),
            verified_by: Vec::new(),
            failure: None,
        };
        for s in &sigs {
            let keyids = signature_data(img, s)
                .and_then(|data| parse_envelope(s.id, &data))
                .map(|env| env.signatures.into_iter().map(|x| x.keyid).collect())
                .unwrap_or_default();
            let (verdict, verified_by, failure) = match verify_signature(img, g, s, &keys)? {
                Ok(kids) => (Verdict::Verified, kids, None),
                Err(f) if f.is_inconclusive() => (Verdict::UnknownKey, Vec::new(), Some(f)),
                Err(f) => (Verdict::Bad, Vec::new(), Some(f)),
            };
            report.verified_by.extend(verified_by.iter().cloned());
            report.signatures.push(SignatureReport {
                signature_id: s.id,
                keyids,
                verified_by,
                verdict,
                failure,
            });
        }
        report.verified_by.sort();
        report.verified_by.dedup();
        let bad = report
            .signatures
            .iter()
            .find(|s| s.verdict == Verdict::Bad)
            .and_then(|s| s.failure.clone());
        report.failure = if let Some(b) = bad {
            Some(b)
        } else if report.verified_by.is_empty() {
            Some(if sigs.is_empty() {
                VerifyFailure::Unsigned { group: g }
            } else {
                report
                    .signatures
                    .iter()
                    .find_map(|s| s.failure.clone())
                    .unwrap_or(VerifyFailure::Unsigned { group: g })
            })
        } else {
            None
        };
        groups.push(report);
    }
    let ungrouped: Vec<u32> = img
        .descriptors()
        .filter(|d| d.data_type != DataType::Signature && d.group().is_none())
        .map(|d| d.id)
        .collect();
    let ungrouped_failure = ungrouped
        .first()
        .map(|&object_id| VerifyFailure::UngroupedObject { object_id });
    Ok(VerifyReport {
        groups,
        ungrouped,
        ungrouped_failure,
    })
}

/// What kind of signature an object holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureKind {
    /// A DSSE envelope with these keyids.
    Dsse {
        /// Keyids in the envelope, in order.
        keyids: Vec<String>,
    },
    /// A PGP clear-signed message.
    Pgp,
    /// Anything else (malformed).
    Unknown,
}

/// One signature object, as listed without any keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureListing {
    /// Signature object ID.
    pub signature_id: u32,
    /// What it is linked to (normally a group).
    pub link: Link,
    /// Its format and keyids.
    pub kind: SignatureKind,
}

/// Lists every signature object and its keyids without verifying anything
/// (for showing who signed an image and whether that key is trusted).
pub fn list_signatures<S: Source>(img: &Image<S>) -> Result<Vec<SignatureListing>> {
    let mut out = Vec::new();
    for d in img
        .descriptors()
        .filter(|d| d.data_type == DataType::Signature)
    {
        let kind = match signature_data(img, d).and_then(|data| parse_envelope(d.id, &data)) {
            Ok(env) => SignatureKind::Dsse {
                keyids: env.signatures.into_iter().map(|s| s.keyid).collect(),
            },
            Err(VerifyFailure::NotDsse { .. }) => SignatureKind::Pgp,
            Err(_) => SignatureKind::Unknown,
        };
        out.push(SignatureListing {
            signature_id: d.id,
            link: d.link(),
            kind,
        });
    }
    Ok(out)
}
