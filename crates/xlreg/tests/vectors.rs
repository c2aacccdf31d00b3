//! The reference test vectors of spec §15, one test per fact.
//!
//! These are the interoperability contract: every vector was checked
//! against the original Go code, so passing them means byte compatibility
//! with Go peers for the handshake, the session layer, the protobuf bodies,
//! the member signature and regCred.dat. The vectors are read in place from
//! `shared/spec/testdata` (see `common::vectors_dir`).

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;
use xlreg::goconfig::GoRegistryConfig;
use xlreg::regcred::RegCred;
use xlreg::wire::internals::{aes_cbc_raw, sha1, AesMode};
use xlreg::wire::{
    digest_input, verify_token, DecimalVersion, Hello, HelloReply, PrivateKey, PublicKey,
    SessionKey, Tag, Token, WireError, XlRegMsg,
};

use common::{read, read_text, vectors_dir};

// ---------------------------------------------------------------------------
// helpers

fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
    b.try_into()
        .unwrap_or_else(|_| panic!("expected {N} bytes, got {}", b.len()))
}

/// `testdata/current/vectors.json` and the vector folder.
fn current() -> Option<(PathBuf, Value)> {
    let dir = vectors_dir()?;
    let json = read(&dir, "current/vectors.json");
    let v: Value = serde_json::from_slice(&json).expect("vectors.json is valid JSON");
    Some((dir, v))
}

/// A value by dotted path, e.g. `hello.key1`.
fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| {
        v.get(k)
            .unwrap_or_else(|| panic!("vectors.json has no {path:?}"))
    })
}

fn text<'a>(v: &'a Value, path: &str) -> &'a str {
    get(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string"))
}

fn hexv(v: &Value, path: &str) -> Vec<u8> {
    hex_of(text(v, path), path)
}

fn hex_of(s: &str, what: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_else(|e| panic!("{what} is not hex: {e}"))
}

/// The registry key of the current vectors (`server_rsa_private_key_file`,
/// relative to `current/`).
fn server_key(dir: &Path, v: &Value) -> PrivateKey {
    let rel = text(v, "server_rsa_private_key_file");
    let pem = std::fs::read(dir.join("current").join(rel)).expect("server key file");
    PrivateKey::from_pem(&pem).expect("server key parses")
}

/// The session key. `session_messages.aes_key` is not hex but a reference
/// to another field ("hello_reply.key2"); accept either form.
fn session_key(v: &Value) -> SessionKey {
    let s = text(v, "session_messages.aes_key");
    let key = match hex::decode(s) {
        Ok(b) => b,
        Err(_) => hexv(v, s),
    };
    SessionKey(arr(&key))
}

fn messages(v: &Value) -> &Vec<Value> {
    get(v, "session_messages.messages")
        .as_array()
        .expect("messages is a list")
}

fn tag_for_label(label: &str) -> Tag {
    match label {
        "Member" => Tag::Member,
        "MemberOK" => Tag::MemberOk,
        "Create" => Tag::Create,
        "CreateReply" => Tag::CreateReply,
        "Join" => Tag::Join,
        "JoinReply" => Tag::JoinReply,
        "GetCluster" => Tag::GetCluster,
        "ClusterMembers" => Tag::ClusterMembers,
        "Bye" => Tag::Bye,
        "Ack" => Tag::Ack,
        "Error" => Tag::Error,
        other => panic!("unknown message label {other:?}"),
    }
}

fn message<'a>(v: &'a Value, label: &str) -> &'a Value {
    messages(v)
        .iter()
        .find(|m| m["label"] == label)
        .unwrap_or_else(|| panic!("no {label} message"))
}

fn body(v: &Value, label: &str) -> XlRegMsg {
    XlRegMsg::from_bytes(&hexv(message(v, label), "protobuf")).expect("body decodes")
}

// ---------------------------------------------------------------------------
// §15.3 current-protocol vectors: Hello / HelloReply

#[test]
fn oaep_decrypts_hello_ciphertext_to_44_byte_plaintext() {
    let Some((dir, v)) = current() else { return };
    let key = server_key(&dir, &v);
    assert_eq!(key.bits(), 1024);
    let ct = hexv(&v, "hello.ciphertext");
    assert_eq!(ct.len(), 128);
    let pt = key.oaep_decrypt(&ct).unwrap();
    assert_eq!(pt.len(), 44);
    assert_eq!(pt, hexv(&v, "hello.plaintext"));
}

#[test]
fn hello_opens_to_key1_salt1_and_version_1_2_3_4() {
    let Some((dir, v)) = current() else { return };
    let h = Hello::open(&server_key(&dir, &v), &hexv(&v, "hello.ciphertext")).unwrap();
    assert_eq!(h.key1.to_vec(), hexv(&v, "hello.key1"));
    assert_eq!(h.salt1.to_vec(), hexv(&v, "hello.salt1"));
    assert_eq!(
        u64::from(h.version.0),
        get(&v, "hello.version1_u32").as_u64().unwrap()
    );
    assert_eq!(h.version.to_string(), text(&v, "hello.version1_str"));
    assert_eq!(h.version.to_wire(), [1, 2, 3, 4]);
    assert_eq!(h.to_plaintext().to_vec(), hexv(&v, "hello.plaintext"));
}

#[test]
fn seeded_oaep_reproduces_hello_ciphertext() {
    let Some((dir, v)) = current() else { return };
    let public = server_key(&dir, &v).public();
    let seed: [u8; 20] = arr(&hexv(&v, "hello.oaep_seed"));
    let ct = public
        .oaep_encrypt_with_seed(&hexv(&v, "hello.plaintext"), &seed)
        .unwrap();
    assert_eq!(ct, hexv(&v, "hello.ciphertext"));
}

#[test]
fn hello_reply_wire_opens_with_key1() {
    let Some((_, v)) = current() else { return };
    let key1: [u8; 32] = arr(&hexv(&v, "hello.key1"));
    let wire = hexv(&v, "hello_reply.wire");
    assert_eq!(wire.len(), 64);
    let r = HelloReply::open(&key1, &wire).unwrap();
    assert_eq!(r.key2.to_vec(), hexv(&v, "hello_reply.key2"));
    assert_eq!(r.salt2.to_vec(), hexv(&v, "hello_reply.salt2"));
    assert_eq!(
        u64::from(r.version.0),
        get(&v, "hello_reply.version2_u32").as_u64().unwrap()
    );
    assert_eq!(r.version.to_string(), text(&v, "hello_reply.version2_str"));
    assert_eq!(r.version, xlreg::wire::GO_SERVER_VERSION);
    assert_eq!(r.to_plaintext().to_vec(), hexv(&v, "hello_reply.plaintext"));
    // Any other key1 fails (strict padding makes a false accept unlikely).
    assert!(HelloReply::open(&[0u8; 32], &wire).is_err());
}

#[test]
fn hello_reply_reseals_to_exact_wire() {
    let Some((_, v)) = current() else { return };
    let key1: [u8; 32] = arr(&hexv(&v, "hello.key1"));
    let iv: [u8; 16] = arr(&hexv(&v, "hello_reply.iv"));
    let r = HelloReply {
        key2: arr(&hexv(&v, "hello_reply.key2")),
        salt2: arr(&hexv(&v, "hello_reply.salt2")),
        version: text(&v, "hello_reply.version2_str").parse().unwrap(),
    };
    let wire = r.seal_with_iv(&key1, &iv);
    assert_eq!(wire, hexv(&v, "hello_reply.wire"));
    let padded = hexv(&v, "hello_reply.padded_plaintext");
    assert_eq!(padded.len(), 48);
    assert_eq!(&padded[..44], &r.to_plaintext()[..]);
    assert_eq!(&padded[44..], &[4, 4, 4, 4]);
    let raw = aes_cbc_raw(AesMode::Encrypt, &key1, &iv, &padded).unwrap();
    assert_eq!(raw, wire[16..]);
}

// ---------------------------------------------------------------------------
// §15.3 member token and signature

fn member_token(v: &Value) -> Token {
    Token {
        name: Some(text(v, "member.name").as_bytes().to_vec()),
        attrs: get(v, "member.attrs").as_u64(),
        id: Some(hexv(v, "member.id")),
        comms_key: Some(hexv(v, "member.comms_key_spki_der")),
        sig_key: Some(hexv(v, "member.sig_key_spki_der")),
        my_ends: get(v, "member.my_ends")
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap().as_bytes().to_vec())
            .collect(),
        dig_sig: Some(hexv(v, "member.dig_sig")),
    }
}

fn member_private(dir: &Path, v: &Value, field: &str) -> PrivateKey {
    let name = text(v, &format!("member.{field}"));
    PrivateKey::from_pem(&read(dir, &format!("current/{name}"))).unwrap()
}

#[test]
fn member_private_keys_match_their_spki_ders() {
    let Some((dir, v)) = current() else { return };
    let ck = member_private(&dir, &v, "comms_private_key_file");
    let sk = member_private(&dir, &v, "sig_private_key_file");
    for (k, f) in [
        (ck, "member.comms_key_spki_der"),
        (sk, "member.sig_key_spki_der"),
    ] {
        let der = hexv(&v, f);
        assert_eq!(der.len(), 162);
        assert_eq!(k.public().to_spki_der(), der);
        assert_eq!(PublicKey::from_spki_der(&der).unwrap(), k.public());
    }
}

#[test]
fn member_digest_input_is_rebuilt_exactly() {
    let Some((_, v)) = current() else { return };
    let m = digest_input(&member_token(&v));
    assert_eq!(m.len(), 368);
    assert_eq!(m, hexv(&v, "member.digest_input"));
    assert_eq!(sha1(&m).to_vec(), hexv(&v, "member.sha1_digest"));
}

#[test]
fn member_signature_is_reproduced_and_verifies() {
    let Some((dir, v)) = current() else { return };
    let sk = member_private(&dir, &v, "sig_private_key_file");
    let m = hexv(&v, "member.digest_input");
    let sig = sk.sign_sha1(&m).unwrap();
    assert_eq!(
        sig,
        hexv(&v, "member.dig_sig"),
        "PKCS#1 v1.5 is deterministic"
    );
    let sig_pub = PublicKey::from_spki_der(&hexv(&v, "member.sig_key_spki_der")).unwrap();
    sig_pub.verify_sha1(&m, &sig).unwrap();
    let mut bad = m.clone();
    bad[0] ^= 1;
    assert!(matches!(
        sig_pub.verify_sha1(&bad, &sig),
        Err(WireError::BadSignature)
    ));
    let vt = verify_token(&member_token(&v)).unwrap();
    assert_eq!(vt.id.unwrap().as_bytes(), hexv(&v, "member.id"));
}

#[test]
fn member_message_carries_the_member_token_and_it_verifies() {
    let Some((_, v)) = current() else { return };
    let msg = body(&v, "Member");
    assert_eq!(msg.member_specs.as_ref(), Some(&member_token(&v)));
    verify_token(msg.member_specs.as_ref().unwrap()).unwrap();
}

// ---------------------------------------------------------------------------
// §15.3 session messages

#[test]
fn session_vectors_cover_all_eleven_messages_in_order() {
    let Some((_, v)) = current() else { return };
    let labels: Vec<&str> = messages(&v)
        .iter()
        .map(|m| m["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "Member",
            "MemberOK",
            "Create",
            "CreateReply",
            "Join",
            "JoinReply",
            "GetCluster",
            "ClusterMembers",
            "Bye",
            "Ack",
            "Error"
        ]
    );
}

#[test]
fn every_session_message_seals_to_exact_wire_and_opens_back() {
    let Some((_, v)) = current() else { return };
    let key = session_key(&v);
    assert_eq!(key.0.to_vec(), hexv(&v, "hello_reply.key2"));
    for m in messages(&v) {
        let label = m["label"].as_str().unwrap();
        let pb = hexv(m, "protobuf");
        let iv: [u8; 16] = arr(&hexv(m, "iv"));
        let wire = hexv(m, "wire");
        assert_eq!(&wire[..16], &iv, "{label}: the IV is the wire prefix");
        assert_eq!(key.seal_body_with_iv(&iv, &pb), wire, "{label}: seal");
        assert_eq!(key.open_body(&wire).unwrap(), pb, "{label}: open");
        assert_eq!(
            key.open(&wire).unwrap().tag(),
            Some(tag_for_label(label)),
            "{label}"
        );
        assert_eq!(wire.len(), 16 + 16 * (pb.len() / 16 + 1), "{label}: length");
    }
}

#[test]
fn every_padded_field_is_strict_pkcs7_of_its_protobuf() {
    let Some((_, v)) = current() else { return };
    let key = session_key(&v);
    for m in messages(&v) {
        let label = m["label"].as_str().unwrap();
        let pb = hexv(m, "protobuf");
        let padded = hexv(m, "padded");
        let n = 16 - pb.len() % 16;
        assert_eq!(padded.len(), pb.len() + n, "{label}");
        assert_eq!(&padded[..pb.len()], &pb[..], "{label}");
        assert!(
            padded[pb.len()..].iter().all(|&b| b as usize == n),
            "{label}"
        );
        let iv: [u8; 16] = arr(&hexv(m, "iv"));
        let raw = aes_cbc_raw(AesMode::Encrypt, &key.0, &iv, &padded).unwrap();
        assert_eq!(raw, hexv(m, "wire")[16..], "{label}");
    }
}

#[test]
fn every_protobuf_body_reencodes_byte_identically() {
    let Some((_, v)) = current() else { return };
    for m in messages(&v) {
        let label = m["label"].as_str().unwrap();
        let pb = hexv(m, "protobuf");
        let msg = XlRegMsg::from_bytes(&pb).unwrap();
        assert_eq!(msg.tag(), Some(tag_for_label(label)), "{label}: op");
        assert_eq!(msg.to_bytes(), pb, "{label}: re-encoding");
    }
}

#[test]
fn session_message_fields_match_their_descriptions() {
    let Some((_, v)) = current() else { return };
    let cid = hexv(&v, "session_messages.cluster_id");
    let member_id = hexv(&v, "member.id");

    let ok = body(&v, "MemberOK");
    assert_eq!(ok.member_id.as_ref(), Some(&member_id));
    assert_eq!(ok.member_attrs, Some(5));

    let c = body(&v, "Create");
    assert_eq!(c.cluster_name.as_deref(), Some(&b"clusterA"[..]));
    assert_eq!(
        (c.cluster_max_size, c.cluster_attrs, c.end_point_count),
        (Some(3), Some(0), Some(2))
    );
    for label in ["CreateReply", "JoinReply"] {
        let r = body(&v, label);
        assert_eq!(r.cluster_id.as_ref(), Some(&cid), "{label}");
        assert_eq!(
            (r.cluster_max_size, r.cluster_attrs, r.end_point_count),
            (Some(3), Some(0), Some(2))
        );
    }
    assert_eq!(body(&v, "Join").cluster_id.as_ref(), Some(&cid));
    let g = body(&v, "GetCluster");
    assert_eq!((g.cluster_id.as_ref(), g.which), (Some(&cid), Some(7)));

    let cm = body(&v, "ClusterMembers");
    assert_eq!((cm.cluster_id.as_ref(), cm.which), (Some(&cid), Some(1)));
    let mut expected = member_token(&v);
    expected.dig_sig = None;
    assert_eq!(
        cm.tokens,
        vec![expected],
        "the member's token without DigSig"
    );
    assert!(cm.tokens_match_which());

    assert_eq!(
        body(&v, "Error").err_text(),
        "invalid msg type for current state"
    );
}

#[test]
fn session_bodies_match_the_spec_table() {
    let Some((_, v)) = current() else { return };
    let cid = text(&v, "session_messages.cluster_id");
    let cases = [
        ("Bye", "080b".to_string()),
        ("Ack", "080c".to_string()),
        (
            "Join",
            "08076a142e9f09d7c22655a88fafed3cd28a24c5013c2f29".to_string(),
        ),
        (
            "Create",
            "08057208636c75737465724178038001008801 02".replace(' ', ""),
        ),
        ("CreateReply", format!("08066a14{cid}7803800100880102")),
        ("JoinReply", format!("08086a14{cid}7803800100880102")),
        ("GetCluster", format!("08096a14{cid}a00107")),
        (
            "MemberOK",
            "08044a14f3a2ce77113bf7412c684f2cb159d538d060f6305005".to_string(),
        ),
        (
            "Error",
            format!(
                "080dba0122{}",
                hex::encode("invalid msg type for current state")
            ),
        ),
    ];
    for (label, want) in cases {
        assert_eq!(text(message(&v, label), "protobuf"), want, "{label}");
    }
    let wire_lens: Vec<usize> = messages(&v).iter().map(|m| hexv(m, "wire").len()).collect();
    assert_eq!(wire_lens, [560, 48, 48, 64, 48, 64, 48, 448, 32, 32, 64]);
}

// ---------------------------------------------------------------------------
// §15.1 legacy Hello/HelloReply vectors and §15.2 regCred vectors, for both
// the xlReg_go and the xlreg_py folders.

mod legacy {
    use super::*;

    pub fn dir(imp: &str) -> Option<PathBuf> {
        Some(vectors_dir()?.join(imp).join("helloAndReply"))
    }

    pub fn key(d: &Path) -> PrivateKey {
        PrivateKey::from_pem(&read(d, "key-rsa")).expect("key-rsa parses")
    }

    pub fn key_rsa_pub_and_pem_match_key_rsa(imp: &str) {
        let Some(d) = dir(imp) else { return };
        let k = key(&d);
        assert_eq!(k.bits(), 1024);
        let from_ssh = PublicKey::from_ssh_line(&read_text(&d, "key-rsa.pub")).unwrap();
        let from_pem = PublicKey::from_pem(&read(&d, "key-rsa.pem")).unwrap();
        assert_eq!(from_ssh, k.public());
        assert_eq!(from_pem, k.public());
        assert_eq!(k.public().to_spki_der().len(), 162);
        assert_eq!(k.public().to_pem().as_bytes(), read(&d, "key-rsa.pem"));
        // e = 65537 (the blob's mpint e is 01 00 01).
        assert_eq!(&k.public().to_ssh_blob()[11..18], &[0, 0, 0, 3, 1, 0, 1]);
        let pub_line = read_text(&d, "key-rsa.pub");
        assert!(pub_line.starts_with(&k.public().to_ssh_line()));
    }

    pub fn oaep_decrypts_hello_encrypted_to_60_byte_hello_data(imp: &str) {
        let Some(d) = dir(imp) else { return };
        let ct = read(&d, "hello-encrypted");
        assert_eq!(ct.len(), 128);
        let pt = key(&d).oaep_decrypt(&ct).unwrap();
        assert_eq!(pt.len(), 60);
        assert_eq!(pt, read(&d, "hello-data"));
    }

    pub fn hello_data_is_iv1_key1_salt1_version1(imp: &str) {
        let Some(d) = dir(imp) else { return };
        let parts: Vec<u8> = ["iv1", "key1", "salt1", "version1"]
            .iter()
            .flat_map(|f| read(&d, f))
            .collect();
        assert_eq!(parts, read(&d, "hello-data"));
    }

    pub fn version_bytes_match_decimal_version_strings(imp: &str) {
        let Some(d) = dir(imp) else { return };
        for (bin, s, want) in [
            ("version1", "version1.str", "1.2.3.4"),
            ("version2", "version2.str", "5.6.7.8"),
        ] {
            let bytes: [u8; 4] = arr(&read(&d, bin));
            let text = read_text(&d, s);
            assert_eq!(text, want);
            assert_eq!(DecimalVersion::from_wire(bytes).to_string(), text);
            assert_eq!(text.parse::<DecimalVersion>().unwrap().to_wire(), bytes);
        }
        assert_eq!(
            read(&d, "version1"),
            [1, 2, 3, 4],
            "a is the first wire byte"
        );
    }

    pub fn reply_data_is_iv2_key2_salt2_version2_salt1_padding(imp: &str) {
        let Some(d) = dir(imp) else { return };
        assert_eq!(read(&d, "padding"), [0x0c; 12]);
        let parts: Vec<u8> = ["iv2", "key2", "salt2", "version2", "salt1", "padding"]
            .iter()
            .flat_map(|f| read(&d, f))
            .collect();
        assert_eq!(parts.len(), 80);
        assert_eq!(parts, read(&d, "reply-data"));
    }

    pub fn raw_aes_cbc_with_key1_iv1_maps_reply_data_to_reply_encrypted(imp: &str) {
        let Some(d) = dir(imp) else { return };
        let key1: [u8; 32] = arr(&read(&d, "key1"));
        let iv1: [u8; 16] = arr(&read(&d, "iv1"));
        let data = read(&d, "reply-data");
        let enc = read(&d, "reply-encrypted");
        assert_eq!(
            aes_cbc_raw(AesMode::Encrypt, &key1, &iv1, &data).unwrap(),
            enc
        );
        assert_eq!(
            aes_cbc_raw(AesMode::Decrypt, &key1, &iv1, &enc).unwrap(),
            data
        );
        // reply-data is correctly PKCS#7 padded: the strict opener takes it.
        let opened = xlreg::wire::internals::aes_cbc_open(&key1, &iv1, &enc).unwrap();
        assert_eq!(opened, data[..68]);
    }

    pub fn legacy_60_byte_hello_plaintext_is_rejected_by_hello_decoder(imp: &str) {
        let Some(d) = dir(imp) else { return };
        assert!(matches!(
            Hello::from_plaintext(&read(&d, "hello-data")),
            Err(WireError::BadHelloPlaintext(60))
        ));
        assert!(matches!(
            Hello::open(&key(&d), &read(&d, "hello-encrypted")),
            Err(WireError::BadHelloPlaintext(60))
        ));
    }
}

mod regcred_vec {
    use super::*;

    pub fn dir(imp: &str) -> Option<PathBuf> {
        Some(vectors_dir()?.join(imp).join("regCred"))
    }

    pub fn load(d: &Path) -> RegCred {
        RegCred::load(d.join("regCred.dat")).unwrap()
    }

    pub fn name_matches_name_str(imp: &str) {
        let Some(d) = dir(imp) else { return };
        assert_eq!(load(&d).name, read_text(&d, "name.str"));
        assert_eq!(load(&d).name, "xlReg");
    }

    pub fn id_matches_id_file(imp: &str) {
        let Some(d) = dir(imp) else { return };
        let id = read(&d, "id");
        assert_eq!(id.len(), 32);
        assert_eq!(load(&d).id.as_bytes(), id);
    }

    pub fn keys_match_ck_and_sk_pub_files(imp: &str) {
        let Some(d) = dir(imp) else { return };
        let rc = load(&d);
        for (k, f) in [(&rc.comms_key, "ck-rsa.pub"), (&rc.sig_key, "sk-rsa.pub")] {
            let line = read_text(&d, f);
            assert_eq!(line.len(), 380);
            assert_eq!(&PublicKey::from_ssh_line(&line).unwrap(), k, "{f}");
            assert_eq!(k.to_ssh_line(), line, "{f}: our writer reproduces the line");
            assert_eq!(k.bits(), 2048);
        }
        assert_ne!(rc.comms_key, rc.sig_key);
    }

    pub fn endpoints_match_endpoints_file(imp: &str) {
        let Some(d) = dir(imp) else { return };
        let file = read_text(&d, "endPoints");
        let file = file.strip_suffix('\n').unwrap_or(&file);
        let want: Vec<&str> = file.split('\n').collect();
        let got: Vec<String> = load(&d)
            .endpoints
            .iter()
            .map(|e| format!("TcpEndPoint: {e}"))
            .collect();
        assert_eq!(got, want);
    }

    pub fn version_matches_version_str(imp: &str) {
        let Some(d) = dir(imp) else { return };
        assert_eq!(load(&d).version.to_string(), read_text(&d, "version.str"));
    }

    pub fn reserializes_byte_for_byte(imp: &str) {
        let Some(d) = dir(imp) else { return };
        let bytes = read(&d, "regCred.dat");
        assert_eq!(bytes.len(), 988);
        assert_eq!(load(&d).to_go_format().as_bytes(), bytes);
    }
}

macro_rules! per_implementation {
    ($module:ident, $imp:literal) => {
        mod $module {
            #[test]
            fn legacy_key_rsa_pub_and_pem_match_key_rsa() {
                super::legacy::key_rsa_pub_and_pem_match_key_rsa($imp);
            }
            #[test]
            fn legacy_oaep_decrypts_hello_encrypted_to_60_byte_hello_data() {
                super::legacy::oaep_decrypts_hello_encrypted_to_60_byte_hello_data($imp);
            }
            #[test]
            fn legacy_hello_data_is_iv1_key1_salt1_version1() {
                super::legacy::hello_data_is_iv1_key1_salt1_version1($imp);
            }
            #[test]
            fn legacy_version_bytes_match_decimal_version_strings() {
                super::legacy::version_bytes_match_decimal_version_strings($imp);
            }
            #[test]
            fn legacy_reply_data_is_iv2_key2_salt2_version2_salt1_padding() {
                super::legacy::reply_data_is_iv2_key2_salt2_version2_salt1_padding($imp);
            }
            #[test]
            fn legacy_raw_aes_cbc_with_key1_iv1_maps_reply_data_to_reply_encrypted() {
                super::legacy::raw_aes_cbc_with_key1_iv1_maps_reply_data_to_reply_encrypted($imp);
            }
            #[test]
            fn legacy_60_byte_hello_plaintext_is_rejected_by_hello_decoder() {
                super::legacy::legacy_60_byte_hello_plaintext_is_rejected_by_hello_decoder($imp);
            }
            #[test]
            fn regcred_name_matches_name_str() {
                super::regcred_vec::name_matches_name_str($imp);
            }
            #[test]
            fn regcred_id_matches_id_file() {
                super::regcred_vec::id_matches_id_file($imp);
            }
            #[test]
            fn regcred_keys_match_ck_and_sk_pub_files() {
                super::regcred_vec::keys_match_ck_and_sk_pub_files($imp);
            }
            #[test]
            fn regcred_endpoints_match_endpoints_file() {
                super::regcred_vec::endpoints_match_endpoints_file($imp);
            }
            #[test]
            fn regcred_version_matches_version_str() {
                super::regcred_vec::version_matches_version_str($imp);
            }
            #[test]
            fn regcred_reserializes_byte_for_byte() {
                super::regcred_vec::reserializes_byte_for_byte($imp);
            }
        }
    };
}

per_implementation!(xlreg_go, "xlReg_go");
per_implementation!(xlreg_py, "xlreg_py");

// ---------------------------------------------------------------------------
// §12.4 regCred example files and §15.4 server state

/// Every regCred file in testdata: the six distinct examples of §12.4 plus
/// the two byte-identical copies (xlreg_py's stockton, xlreg_py's testData).
const REGCRED_FILES: [&str; 8] = [
    "regCred-examples/xlReg_go/regCred.dat",
    "regCred-examples/xlReg_go/portlandRegCred.dat",
    "regCred-examples/xlReg_go/stockton.regCred.dat",
    "regCred-examples/xlreg_py/stockton.regCred.dat",
    "regCred-examples/xlreg_py/portland.regCred.dat",
    "xlReg_go/regCred/regCred.dat",
    "xlreg_py/regCred/regCred.dat",
    "server-state-example/regCred.dat",
];

#[test]
fn every_regcred_example_reserializes_byte_for_byte() {
    let Some(dir) = vectors_dir() else { return };
    for f in REGCRED_FILES {
        let bytes = read(&dir, f);
        let rc = RegCred::load(dir.join(f)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rc.to_go_format().as_bytes(), bytes, "{f}");
    }
}

#[test]
fn regcred_examples_match_the_spec_table() {
    let Some(dir) = vectors_dir() else { return };
    // file, ID prefix, ID suffix, ID length, endpoint, version, size (§12.4)
    let table = [
        (
            REGCRED_FILES[0],
            "1782e327",
            "4f7a",
            20,
            "192.168.152.254:56789",
            "1.9.20",
            969,
        ),
        (
            REGCRED_FILES[1],
            "839f8276",
            "bec7",
            20,
            "54.186.197.123:56789",
            "1.8.4",
            967,
        ),
        (
            REGCRED_FILES[2],
            "21b95b5c",
            "0c24",
            32,
            "50.18.104.7:55555",
            "0.4.3",
            988,
        ),
        (
            REGCRED_FILES[3],
            "21b95b5c",
            "0c24",
            32,
            "50.18.104.7:55555",
            "0.4.3",
            988,
        ),
        (
            REGCRED_FILES[4],
            "a8431273",
            "8343",
            32,
            "192.168.240.4:55555",
            "0.5",
            988,
        ),
        (
            REGCRED_FILES[5],
            "21b95b5c",
            "0c24",
            32,
            "50.18.104.7:56789",
            "0.4.3",
            988,
        ),
        (
            REGCRED_FILES[6],
            "a8431273",
            "8343",
            32,
            "192.168.240.4:55555",
            "0.5",
            988,
        ),
        (
            REGCRED_FILES[7],
            "89939aa9",
            "044f",
            20,
            "127.0.0.1:45678",
            "1.9.24",
            963,
        ),
    ];
    for (f, pre, suf, len, ep, ver, size) in table {
        let rc = RegCred::load(dir.join(f)).unwrap();
        let id = rc.id.to_hex();
        assert_eq!(rc.name, "xlReg", "{f}");
        assert!(id.starts_with(pre) && id.ends_with(suf), "{f}: {id}");
        assert_eq!(rc.id.as_bytes().len(), len, "{f}");
        assert_eq!(rc.endpoints, [ep], "{f}");
        assert_eq!(rc.connect_addr().unwrap(), ep, "{f}");
        assert_eq!(rc.version.to_string(), ver, "{f}");
        assert_eq!(read(&dir, f).len(), size, "{f}");
        for k in [&rc.comms_key, &rc.sig_key] {
            assert_eq!(k.bits(), 2048, "{f}");
            assert_eq!(
                &k.to_ssh_blob()[11..18],
                &[0, 0, 0, 3, 1, 0, 1],
                "{f}: e = 65537"
            );
        }
    }
    // The duplicates really are duplicates.
    assert_eq!(read(&dir, REGCRED_FILES[2]), read(&dir, REGCRED_FILES[3]));
    assert_eq!(read(&dir, REGCRED_FILES[4]), read(&dir, REGCRED_FILES[6]));
}

#[test]
fn server_state_example_reg_config_keys_match_its_regcred() {
    let Some(dir) = vectors_dir() else { return };
    let d = dir.join("server-state-example");
    let cfg = GoRegistryConfig::load(d.join("reg.config")).unwrap_or_else(|e| panic!("{e}"));
    let rc = RegCred::load(d.join("regCred.dat")).unwrap();
    assert_eq!(cfg.id, rc.id);
    assert_eq!(cfg.comms_key.public(), rc.comms_key);
    assert_eq!(cfg.sig_key.public(), rc.sig_key);
    assert_eq!(cfg.endpoints, rc.endpoints);
    // A Hello sealed with the published key opens with the config's key.
    let hello = Hello::new(DecimalVersion(0));
    let ct = hello.seal(&rc.comms_key).unwrap();
    assert_eq!(Hello::open(&cfg.comms_key, &ct).unwrap(), hello);
}
