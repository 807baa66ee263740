//! Bearer-token auth against the real registry. Debian's docker-registry
//! has no token server, so the test runs a tiny one: a thread serving
//! `GET /token?...` that checks Basic credentials and answers
//! `{"token": JWT}`, the JWT signed (RS256, `openssl dgst`) by a key whose
//! self-signed certificate is the registry's `rootcertbundle` and rides in
//! the token's `x5c` header.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use vessel_tests::{assert_error, ok, stderr, TestRegistry, TestRoot};

const ISSUER: &str = "vessel-test-issuer";
const SERVICE: &str = "vessel-test-registry";
const USER: &str = "ann";
const PASSWORD: &str = "s3cret";

fn b64(bytes: &[u8], url: bool) -> String {
    let table: &[u8; 64] = if url {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(table[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
        if !url {
            out.push_str(&"=="[..3 - chunk.len()]);
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let o = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(o.status.success(), "openssl {args:?}: {}", stderr(&o));
    o.stdout
}

/// A signed JWT granting `access` (`[(repository, [actions])]`).
fn token(pki: &Path, access: &[(String, Vec<String>)]) -> String {
    let der = std::fs::read(pki.join("cert.der")).unwrap();
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [b64(&der, false)]});
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": USER, "aud": SERVICE,
        "exp": now + 600, "nbf": now - 60, "iat": now - 60,
        "jti": format!("{now}-{}", access.len()),
        "access": access.iter().map(|(name, actions)| serde_json::json!({
            "type": "repository", "name": name, "actions": actions,
        })).collect::<Vec<_>>(),
    });
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes(), true),
        b64(claims.to_string().as_bytes(), true)
    );
    let input = tempfile::NamedTempFile::new_in(pki).unwrap();
    std::fs::write(input.path(), &signing_input).unwrap();
    let sig = openssl(
        pki,
        &[
            "dgst",
            "-sha256",
            "-sign",
            "key.pem",
            input.path().to_str().unwrap(),
        ],
    );
    format!("{signing_input}.{}", b64(&sig, true))
}

/// Serves tokens on a free port until the process ends; returns the realm.
fn token_server(pki: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let realm = format!("http://{}/token", listener.local_addr().unwrap());
    let good = format!(
        "Basic {}",
        b64(format!("{USER}:{PASSWORD}").as_bytes(), false)
    );
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let mut authorized = false;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("authorization") && v.trim() == good {
                        authorized = true;
                    }
                }
            }
            let target = line.split_whitespace().nth(1).unwrap_or("");
            let query = target.split_once('?').map_or("", |(_, q)| q);
            // scope=repository:NAME:pull,push (several scopes may come).
            let access: Vec<(String, Vec<String>)> = query
                .split('&')
                .filter_map(|kv| kv.strip_prefix("scope="))
                .map(percent_decode)
                .filter_map(|s| {
                    let rest = s.strip_prefix("repository:")?;
                    let (name, actions) = rest.rsplit_once(':')?;
                    Some((
                        name.to_owned(),
                        actions.split(',').map(str::to_owned).collect(),
                    ))
                })
                .collect();
            let (status, body) = if authorized {
                let t = token(&pki, &access);
                (
                    "200 OK",
                    serde_json::json!({"token": t, "access_token": t}).to_string(),
                )
            } else {
                (
                    "401 Unauthorized",
                    r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#.to_owned(),
                )
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    realm
}

#[test]
fn bearer_token_auth_login_push_pull_and_a_wrong_password() {
    let pki = tempfile::tempdir().unwrap();
    openssl(
        pki.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "1",
            "-subj",
            "/CN=vessel test token issuer",
        ],
    );
    openssl(
        pki.path(),
        &[
            "x509", "-in", "cert.pem", "-outform", "DER", "-out", "cert.der",
        ],
    );
    let realm = token_server(pki.path().to_owned());
    let reg = TestRegistry::start_with(&format!(
        "auth:\n  token:\n    realm: {realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    \
         rootcertbundle: {}\n",
        pki.path().join("cert.pem").display()
    ));
    let root = TestRoot::new();
    let work = tempfile::tempdir().unwrap();
    let img = work.path().join("img.sif");
    std::fs::write(
        &img,
        (0..300_000u32)
            .flat_map(u32::to_le_bytes)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let img_s = img.to_str().unwrap();
    let r = reg.reference("team/tok:v1");

    // No credentials: the token server refuses, the registry wants a login.
    assert_error(
        &reg.vessel(&root, &["push", "--insecure", img_s, &r]),
        255,
        &[&reg.host, "team/tok"],
    );
    let login = |password: &str| {
        let mut c = root
            .vessel()
            .env("DOCKER_CONFIG", reg.docker_config())
            .args([
                "registry",
                "login",
                "--insecure",
                "--username",
                USER,
                "--password-stdin",
            ])
            .arg(&reg.host)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(c.stdin.take().unwrap(), "{password}").unwrap();
        c.wait_with_output().unwrap()
    };
    assert_error(&login("wrong"), 255, &[&reg.host]);
    assert!(!reg.docker_config().join("config.json").exists());
    ok(&login(PASSWORD));

    // With the stored credentials: a token per operation, push and pull.
    ok(&reg.vessel(&root, &["push", "--insecure", img_s, &r]));
    let out = work.path().join("out.sif");
    ok(&reg.vessel(&root, &["pull", "--insecure", out.to_str().unwrap(), &r]));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&img).unwrap());
}
