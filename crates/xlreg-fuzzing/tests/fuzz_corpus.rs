//! Replays the committed fuzz seed corpus (`fuzz/corpus/<target>/*`) and
//! any crash reproducers (`fuzz/regressions/<target>/*`) through the same
//! target functions the cargo-fuzz binaries call, so that plain
//! `cargo test` exercises them without cargo-fuzz.
//!
//! Regenerate the seed corpus (after changing an input format) with
//! `cargo test -p xlreg-fuzzing --test fuzz_corpus -- --ignored write_seed_corpus`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use xlreg_fuzzing::{run, seed_corpus, TARGETS};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Files of `dir/<target>/`, sorted.
fn files(dir: &Path, target: &str) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir.join(target)) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

fn replay(path: &Path, target: &str) {
    let data = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let r = std::panic::catch_unwind(|| run(target, &data));
    match r {
        Ok(true) => {}
        Ok(false) => panic!("no target {target}"),
        Err(_) => panic!("target {target} failed on {}", path.display()),
    }
}

#[test]
fn every_target_has_a_seed_corpus_and_it_passes() {
    let corpus = fuzz_dir().join("corpus");
    let mut total = 0;
    for (target, _) in TARGETS {
        let fs = files(&corpus, target);
        assert!(
            !fs.is_empty(),
            "no seed corpus for target {target} in {}",
            corpus.display()
        );
        let mut replayed = 0;
        for f in &fs {
            replay(f, target);
            replayed += 1;
        }
        assert!(replayed >= 1, "no corpus file replayed for {target}");
        total += replayed;
    }
    // Every corpus folder belongs to a target.
    let names: BTreeSet<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    for e in fs::read_dir(&corpus).expect("corpus dir") {
        let n = e.expect("entry").file_name().to_string_lossy().into_owned();
        assert!(names.contains(&n), "corpus folder {n} has no target");
    }
    eprintln!("replayed {total} corpus files");
}

#[test]
fn committed_corpus_is_exactly_what_the_generator_writes() {
    // Every generated seed is committed byte for byte, and every committed
    // file is a generated seed: a format change that forgot to rewrite the
    // corpus (`write_seed_corpus`) fails here.
    let corpus = fuzz_dir().join("corpus");
    let mut want: BTreeSet<(String, String)> = BTreeSet::new();
    for (target, name, data) in seed_corpus() {
        let p = corpus.join(target).join(&name);
        let got = fs::read(&p).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run the ignored test write_seed_corpus)",
                p.display()
            )
        });
        assert!(
            got == data,
            "{} differs from the generator's seed",
            p.display()
        );
        want.insert((target.to_string(), name));
    }
    for (target, _) in TARGETS {
        for f in files(&corpus, target) {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                want.contains(&(target.to_string(), name)),
                "{} is not a generated seed (stale corpus file?)",
                f.display()
            );
        }
    }
    assert!(!want.is_empty());
}

#[test]
fn crash_regressions_pass() {
    let dir = fuzz_dir().join("regressions");
    for (target, _) in TARGETS {
        for f in files(&dir, target) {
            replay(&f, target);
        }
    }
}

#[test]
fn freshly_generated_seeds_pass() {
    // The generator's output, without touching the files: catches a
    // generator or format change that the committed corpus misses.
    let seeds = seed_corpus();
    assert!(seeds == seed_corpus(), "the seed corpus is deterministic");
    for (target, name, data) in seeds {
        let r = std::panic::catch_unwind(|| run(target, &data));
        assert!(matches!(r, Ok(true)), "{target}/{name}");
    }
}

#[test]
fn reference_vectors_pass_the_parsers() {
    // The Go regCred and reg.config examples of the spec, when present.
    let root = std::env::var_os("XLREG_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/spec/testdata")
        });
    let mut seen = 0;
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let target = if name.to_lowercase().contains("regcred") && name.ends_with(".dat") {
                "regcred"
            } else if name == "reg.config" {
                "goconfig"
            } else {
                continue;
            };
            replay(&p, target);
            seen += 1;
        }
    }
    eprintln!("replayed {seen} reference files");
    if std::env::var("XLREG_REQUIRE_VECTORS").as_deref() == Ok("1") {
        assert!(
            seen > 0,
            "XLREG_REQUIRE_VECTORS=1 but no reference regCred/reg.config file was found"
        );
    }
}

#[test]
#[ignore = "writes fuzz/corpus; run by hand after changing an input format"]
fn write_seed_corpus() {
    let corpus = fuzz_dir().join("corpus");
    for (target, _) in TARGETS {
        let d = corpus.join(target);
        if d.is_dir() {
            for f in files(&corpus, target) {
                fs::remove_file(f).expect("remove old seed");
            }
        }
        fs::create_dir_all(&d).expect("mkdir");
    }
    for (target, name, data) in seed_corpus() {
        fs::write(corpus.join(target).join(&name), data).expect("write seed");
    }
}

#[test]
fn state_machine_seeds_reach_every_reply() {
    let mut seen = String::new();
    for f in files(&fuzz_dir().join("corpus"), "server_session") {
        let data = fs::read(&f).expect("read");
        for line in xlreg_fuzzing::server_session_trace(&data) {
            seen.push_str(&line);
            seen.push('\n');
        }
    }
    for want in [
        "Some(RegCredReply)",
        "Some(MemberOk)",
        "Some(CreateReply)",
        "Some(JoinReply)",
        "tokens)",
        "Some(Ack)",
        "Error(cluster is full)",
        "Error(invalid msg type for current state)",
        "Error(message tag out of range)",
        "Error(unexpected message type)",
        "Error(registry storage failure; request not applied)",
        "Error(registry is shutting down)",
        "Error(crypto/rsa: verification error)",
    ] {
        assert!(seen.contains(want), "no seed reaches {want}:\n{seen}");
    }
    if std::env::var_os("FUZZ_TRACE").is_some() {
        eprintln!("{seen}");
    }
}

/// Regression (found by `server_session`): the token budget of a legacy
/// GetCluster must keep the sealed reply within `legacy_reply_limit` for
/// every limit (not only multiples of 16) and for reads by name (whose
/// reply echoes a cluster ID the request did not carry).
#[test]
fn legacy_reply_budget_keeps_every_limit() {
    use std::sync::Arc;
    use xlreg::registry::{Answer, GetCluster, Members, Request, Selection};
    use xlreg::server::internals::{Effect, ServerSession, SessionConfig};
    use xlreg::wire::internals::sealed_len;
    use xlreg::wire::{Framing, NodeId, Token, Which, XlRegMsg, GO_SERVER_VERSION};

    let cid = NodeId::from_bytes(&[7; 32]).unwrap();
    let by_id = XlRegMsg::get_cluster(&cid, Which::ALL);
    let mut by_name = XlRegMsg::get_cluster(&cid, Which::ALL);
    by_name.cluster_id = None;
    by_name.cluster_name = Some(b"c".to_vec());
    for limit in 200..1300usize {
        for get in [&by_id, &by_name] {
            let cfg = SessionConfig {
                allow_anonymous_reads: true,
                legacy_reply_limit: limit,
                registry_token: Token::default(),
                version: GO_SERVER_VERSION,
                hold: std::time::Duration::ZERO,
                idle_timeout: std::time::Duration::from_secs(60),
                key_limits: Default::default(),
            };
            let mut s = ServerSession::new(Framing::Legacy, Arc::new(cfg));
            let m = XlRegMsg::member(xlreg_fuzzing::test_token(0));
            assert!(matches!(
                s.on_message(m),
                Effect::Call(Request::Register { .. })
            ));
            s.on_answer(Ok(Answer::Registered(
                NodeId::from_bytes(&[1; 20]).unwrap(),
            )));
            let Effect::Call(Request::GetCluster(GetCluster { budget, .. })) =
                s.on_message(get.clone())
            else {
                panic!("GetCluster refused")
            };
            // Tokens filling the budget to the byte, and the widest Which.
            let mut fields = vec![0xaa, 0x01];
            let mut n = budget.saturating_sub(3);
            while 2 + prost::encoding::encoded_len_varint(n as u64) + n > budget {
                n -= 1;
            }
            prost::encoding::encode_varint(n as u64, &mut fields);
            fields.resize(fields.len() + n, 0);
            let sel = Selection {
                which: Which(1 << 63),
                token_fields: fields,
            };
            let members = Members {
                cluster_id: cid,
                selection: sel,
                complete: true,
            };
            let Effect::Reply { body, .. } = s.on_answer(Ok(Answer::Members(members))) else {
                panic!("no reply")
            };
            assert!(
                sealed_len(body.len()) <= limit,
                "limit {limit}: {} bytes",
                sealed_len(body.len())
            );
        }
    }
}
