//! The status page in a real browser: Debian's headless Chromium driven
//! through chromedriver (WebDriver, via fantoccini) against a real
//! `xlreg serve --http`.
//!
//! The page must list a cluster while it forms (live, without a reload),
//! show every member when it is complete, refuse a delete without the
//! admin token and perform it with the token. The test saves a screenshot
//! (`$CARGO_TARGET_TMPDIR/status-page.png`; also `docs/status-page.png`
//! with `XLREG_SAVE_SCREENSHOT=1`).
//!
//! Without chromium or chromedriver the test prints a visible SKIPPED line
//! and passes, unless `XLREG_REQUIRE_BROWSER=1` (set by `.ci/browser.sh`),
//! which makes it fail instead.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use xlreg::client::{boot, create_cluster_as};
use xlreg::client::{BootOptions, ClientOptions, ClusterRef, ClusterSpec};
use xlreg::regcred::RegCred;
use xlreg::testing::{keys, member_identity};

/// Kills and reaps its child when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tool(env: &str, default: &str) -> Option<PathBuf> {
    let p = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    p.is_file().then_some(p)
}

/// chromium and chromedriver, or a loud skip (a failure when required).
fn browser() -> Option<(PathBuf, PathBuf)> {
    let chromium = tool("XLREG_CHROMIUM", "/usr/bin/chromium");
    let driver = tool("XLREG_CHROMEDRIVER", "/usr/bin/chromedriver");
    if let (Some(c), Some(d)) = (&chromium, &driver) {
        return Some((c.clone(), d.clone()));
    }
    let msg = "SKIPPED: browser test needs /usr/bin/chromium and /usr/bin/chromedriver \
               (apt-get install chromium chromium-driver, or source .ci/browser.sh)";
    if std::env::var("XLREG_REQUIRE_BROWSER").as_deref() == Ok("1") {
        panic!("{msg} and XLREG_REQUIRE_BROWSER=1");
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "\n!!!!!!!!!! {msg} !!!!!!!!!!\n");
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `xlreg serve --http`: the child, its regCred, its HTTP URL and token.
fn serve(dir: &Path) -> (Reaped, RegCred, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xlreg"))
        .args(["serve", "--listen", "127.0.0.1:0", "--key-bits", "1024"])
        .args(["--http", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("XLREG_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let child = Reaped(child);
    let (mut regcred, mut http, mut token) = (None, None, None);
    for line in out.lines() {
        let line = line.unwrap();
        if let Some(p) = line.strip_prefix("regCred: ") {
            regcred = Some(RegCred::load(p).unwrap());
        } else if let Some(u) = line.strip_prefix("http on ") {
            http = Some(u.to_string());
        } else if let Some(p) = line.strip_prefix("admin token: ") {
            token = Some(std::fs::read_to_string(p).unwrap().trim().to_string());
            break;
        }
    }
    (
        child,
        regcred.expect("serve printed its regCred"),
        http.expect("serve printed its HTTP address"),
        token.expect("serve printed its token file"),
    )
}

async fn chrome(chromium: &Path, driver: &Path, profile: &Path) -> (Reaped, Client) {
    let port = free_port();
    let child = Reaped(
        Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match ClientBuilder::native()
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(c) => return (child, c),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("chromedriver at {url}: {e}"),
        }
    }
}

/// Wait (the page updating itself, no reload) until `css` has `want` as
/// its text.
async fn wait_text(c: &Client, css: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                if t.trim() == want {
                    return;
                }
                last = t;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css}: wanted {want:?}, last saw {last:?}");
}

fn member(name: &str) -> xlreg::client::NodeIdentity {
    let k = || keys::generate_key(1024, keys::KeyGen::Fast).unwrap();
    member_identity(name, k(), k(), vec!["127.0.0.1:9".into()]).unwrap()
}

/// Click the Delete button of `cluster`'s row, after typing `token` (if
/// any) into its token field.
async fn delete(c: &Client, cluster: &str, token: Option<&str>) {
    let form = format!("tr.cluster[data-name=\"{cluster}\"] form.delete");
    if let Some(t) = token {
        let input = c
            .find(Locator::Css(&format!("{form} input[name=token]")))
            .await
            .unwrap();
        // Focus inside the table pauses the live refresh, so the form
        // stays the one we type into.
        input.click().await.unwrap();
        input.send_keys(t).await.unwrap();
    }
    c.find(Locator::Css(&format!("{form} button")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_a_forming_cluster_live_and_deletes_only_with_the_token() {
    let Some((chromium, driver)) = browser() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_server, rc, http, token) = serve(&dir.path().join("data"));
    let (_driver, c) = chrome(&chromium, &driver, &dir.path().join("profile")).await;

    c.goto(&http).await.unwrap();
    c.find(Locator::Css("#no-clusters")).await.unwrap();
    let id = c.find(Locator::Css("#identity code")).await.unwrap();
    assert_eq!(id.text().await.unwrap(), rc.id.to_hex());

    // A cluster of three forms: the page follows without a reload.
    let info = create_cluster_as(
        &rc,
        &member("admin"),
        &ClusterSpec::new("forming", 3),
        &ClientOptions::default(),
    )
    .await
    .unwrap();
    let row = "tr.cluster[data-name=\"forming\"]";
    wait_text(&c, &format!("{row} td.count"), "0/3").await;
    wait_text(&c, "#stats span:first-child", "1 cluster(s)").await;
    let boot_one = |name: &str| {
        let (rc, m) = (rc.clone(), member(name));
        tokio::spawn(async move {
            let opts = BootOptions {
                wait: Some(Duration::from_secs(30)),
                ..BootOptions::default()
            };
            boot(&rc, &ClusterRef::Id(info.id), &m, &opts).await
        })
    };
    let first = boot_one("alpha");
    wait_text(&c, &format!("{row} td.count"), "1/3").await;
    assert!(!first.is_finished(), "alpha waits for the others");
    let rest = [boot_one("bravo"), boot_one("charlie")];
    wait_text(&c, &format!("{row} td.count"), "3/3").await;
    wait_text(&c, "#stats span:nth-child(2)", "3 member(s)").await;
    for t in std::iter::once(first).chain(rest) {
        assert!(t.await.unwrap().unwrap().is_complete());
    }
    c.find(Locator::Css("details[data-name=\"forming\"] summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let names = c
        .find_all(Locator::Css(
            "details[data-name=\"forming\"] tr.member td:nth-child(2)",
        ))
        .await
        .unwrap();
    let mut seen = Vec::new();
    for n in names {
        seen.push(n.text().await.unwrap());
    }
    seen.sort();
    assert_eq!(seen, ["alpha", "bravo", "charlie"]);

    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    std::fs::write(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png"),
        &png,
    )
    .unwrap();
    if std::env::var("XLREG_SAVE_SCREENSHOT").as_deref() == Ok("1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/status-page.png");
        std::fs::write(docs, &png).unwrap();
    }

    // Delete without the token, then with a wrong one: refused, kept.
    delete(&c, "forming", None).await;
    wait_text(&c, "#refused", "admin token required").await;
    c.goto(&http).await.unwrap();
    delete(&c, "forming", Some("not-the-token-at-all")).await;
    wait_text(&c, "#refused", "admin token refused").await;
    c.goto(&http).await.unwrap();
    wait_text(&c, &format!("{row} td.count"), "3/3").await;

    // With the token: gone, and the page says so.
    delete(&c, "forming", Some(&token)).await;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#no-clusters"))
        .await
        .unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/");
    c.close().await.unwrap();
}
