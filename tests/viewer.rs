//! The viewer and the API client as a person meets them, through the real binaries:
//!
//! - `folio parse --format both` writes `document.html`; opened in a headless Chromium, it draws
//!   one box per block, and a real click on the table's box shows the table's cells;
//! - `folio serve` + `folio work` (CPU `ocr` engine) on RabbitMQ and SeaweedFS: the same checks on
//!   the viewer opened from a signed link (page images served through the API), and the ways a
//!   link is refused (none, tampered, another document, expired);
//! - `folio submit --wait -o DIR` against them writes `folio parse`'s layout; its exit codes.
//!
//! Chromium is required: without it these tests fail (`scripts/test` installs it). The service
//! tests are skipped with a note when the servers are not configured, failed under
//! `FOLIO_INTEGRATION=1`; they take turns with the other service tests (see `service_support`).

mod common;
#[allow(unused_imports)] // `wait_for`, re-exported for the fault tests
mod service_support;
mod triggers_support;

use folio_test_support::browser::Browser;
use serde_json::Value;
use service_support::http::Framing;
use service_support::*;
use std::path::Path;
use triggers_support::corpus;

/// A scanned table (PubTabNet; 28 rows × 4 columns): the `ocr` engine finds one table block in it.
const TABLE_PNG: &str = "tables/pubtabnet_PMC4840965_004_00.png";
const VIEW_SECRET: &str = "viewer-test-secret-0123456789abcdef";

#[test]
fn parse_writes_a_viewer_that_chromium_shows_with_one_box_per_block() {
    let out = tempfile::tempdir().expect("temp dir");
    let input = folio_test_support::corpus(TABLE_PNG);
    let o = common::parse_quietly(&[&input], out.path(), &["--format", "both"]);
    assert!(
        o.status.success(),
        "folio parse: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let dir = out.path().join("pubtabnet_PMC4840965_004_00");
    let doc: Value = serde_json::from_slice(&std::fs::read(dir.join("document.json")).unwrap())
        .expect("document.json");
    let html = std::fs::read_to_string(dir.join("document.html")).expect("document.html");
    assert!(
        html.contains("src=\"data:image/png;base64,"),
        "the page image is embedded"
    );
    check_viewer(
        &format!("file://{}", dir.join("document.html").display()),
        &doc,
        "offline",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_viewer_opens_from_a_signed_link_and_refuses_bad_ones() {
    let Some(stack) = Stack::new("viewer").await else {
        return;
    };
    let api = stack.serve(&[("FOLIO_VIEW_SECRET", VIEW_SECRET)]);
    let _worker = stack.worker("worker").await;
    let id = upload_table(&api).await;
    api.wait_assembled(&id, 300).await;
    let doc = api.get(&format!("/v1/documents/{id}/result")).await.json();

    let link = api
        .get(&format!("/v1/documents/{id}/view-link?expires_in=600"))
        .await;
    assert_eq!(link.status, 200, "{}", link.text());
    let path = link.json()["path"].as_str().expect("path").to_string();
    assert!(path.starts_with(&format!(
        "/v1/documents/{id}/view?tenant={}&expires=",
        stack.tenant
    )));

    // Refusals, each with its code.
    let view = format!("/v1/documents/{id}/view");
    let r = api.get_as(None, &view).await;
    assert_eq!((r.status, r.error_code().as_str()), (401, "unauthorized"));
    let tampered = flip_last_char(&path);
    let r = api.get_as(None, &tampered).await;
    assert_eq!((r.status, r.error_code().as_str()), (401, "link_invalid"));
    let other_doc = path.replace(&id, "0190b4c2-7f4e-7a1b-9c3d-1234567890ab");
    let r = api.get_as(None, &other_doc).await;
    assert_eq!((r.status, r.error_code().as_str()), (401, "link_invalid"));
    let r = api.get_as(None, &format!("{path}&extra=1")).await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "bad_query"));
    for bad in ["0", "86401"] {
        let r = api
            .get(&format!("/v1/documents/{id}/view-link?expires_in={bad}"))
            .await;
        assert_eq!((r.status, r.error_code().as_str()), (400, "bad_expires_in"));
    }
    let short = api
        .get(&format!("/v1/documents/{id}/view-link?expires_in=1"))
        .await
        .json();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = api.get_as(None, short["path"].as_str().unwrap()).await;
    assert_eq!((r.status, r.error_code().as_str()), (401, "link_expired"));
    let r = api.get_as(Some(&stack.other_key), &view).await;
    assert_eq!(r.status, 404, "another tenant's key sees no document");

    // With the key: the page, its policy, and image links that work without the key.
    let r = api.get(&view).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let policy = r.header("content-security-policy").expect("a CSP header");
    assert!(policy.contains("script-src 'sha256-") && policy.contains("default-src 'none'"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    let page = r.text();
    let start = page
        .find("src=\"pages/1/image?")
        .expect("page 1's image link")
        + 5;
    let src = &page[start..start + page[start..].find('"').unwrap()];
    let image = api
        .get_as(
            None,
            &format!("/v1/documents/{id}/{}", src.replace("&amp;", "&")),
        )
        .await;
    assert_eq!(image.status, 200, "{}", image.text());
    assert_eq!(image.header("content-type"), Some("image/png"));
    assert!(image.body.starts_with(b"\x89PNG"));

    let url = format!("http://{}{path}", api.addr);
    tokio::task::spawn_blocking(move || check_viewer(&url, &doc, "served"))
        .await
        .expect("the browser checks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folio_submit_uploads_follows_and_writes_the_parse_layout() {
    let Some(stack) = Stack::new("submit").await else {
        return;
    };
    let api = stack.serve(&[]);
    let _worker = stack.worker("worker").await;
    let server = format!("http://{}", api.addr);
    let out = tempfile::tempdir().expect("temp dir");
    let input = folio_test_support::corpus(TABLE_PNG);
    let input_s = input.to_str().unwrap().to_string();

    let o = submit(&[
        &input_s,
        "--server",
        &server,
        "--api-key",
        &stack.key,
        "--wait",
        "-o",
        out.path().to_str().unwrap(),
        "-q",
    ])
    .await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let id = String::from_utf8(o.stdout).unwrap().trim().to_string();
    let dir = out.path().join("pubtabnet_PMC4840965_004_00");
    let read_json = |p: &Path| -> Value {
        serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
            .expect("JSON")
    };
    let doc = api.get(&format!("/v1/documents/{id}/result")).await.json();
    assert_eq!(read_json(&dir.join("document.json")), doc);
    let page1 = api.get(&format!("/v1/documents/{id}/pages/1")).await.json();
    assert_eq!(read_json(&dir.join("pages/00001.json")), page1);
    assert_eq!(
        std::fs::read_to_string(dir.join("document.md")).unwrap(),
        doc["markdown"].as_str().unwrap()
    );
    let html = std::fs::read_to_string(dir.join("document.html")).unwrap();
    assert!(html.contains("src=\"data:image/png;base64,") && html.contains("id=\"b-1-1\""));

    // Exit codes as `folio parse`: the key refused 2, a file refused 3, no server 5.
    let o = submit(&[
        &input_s,
        "--server",
        &server,
        "--api-key",
        "not-a-key-0123456789",
    ])
    .await;
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("unauthorized"));
    let text = out.path().join("notes.txt");
    std::fs::write(&text, "not a document").unwrap();
    let o = submit(&[
        text.to_str().unwrap(),
        "--server",
        &server,
        "--api-key",
        &stack.key,
    ])
    .await;
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let nobody = format!(
        "http://127.0.0.1:{}",
        folio_test_support::services::free_port()
    );
    let o = submit(&[&input_s, "--server", &nobody, "--api-key", &stack.key]).await;
    assert_eq!(
        o.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = submit(&[&input_s, "--server", "ftp://example.invalid"]).await;
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

async fn upload_table(api: &Api) -> String {
    let r = api
        .upload_as(
            Some(&api.key),
            &corpus(TABLE_PNG),
            "image/png",
            "?filename=table.png",
            Framing::Length,
        )
        .await;
    assert_eq!(r.status, 202, "upload: {}", r.text());
    r.json()["document_id"].as_str().unwrap().to_string()
}

async fn submit(args: &[&str]) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        common::folio()
            .arg("submit")
            .args(&args)
            .env_remove("FOLIO_API_KEY")
            .env_remove("FOLIO_SERVER")
            .output()
            .expect("folio submit runs")
    })
    .await
    .expect("join")
}

fn flip_last_char(s: &str) -> String {
    let mut out = s.to_string();
    let last = out.pop().expect("not empty");
    out.push(if last == '0' { '1' } else { '0' });
    out
}

/// Open `url` in Chromium and check it against `doc`: one drawn box per block, every page image
/// loaded, and a real click on the first table block's box shows that table's cells. Saves a
/// screenshot as `$CARGO_TARGET_TMPDIR/viewer-{name}.png`.
fn check_viewer(url: &str, doc: &Value, name: &str) {
    let pages = doc["pages"].as_array().expect("pages");
    let blocks: Vec<(u64, usize, &Value)> = pages
        .iter()
        .flat_map(|p| {
            let page = p["page"].as_u64().expect("page number");
            p["blocks"]
                .as_array()
                .expect("blocks")
                .iter()
                .enumerate()
                .map(move |(i, b)| (page, i + 1, b))
        })
        .collect();
    let mut browser = Browser::launch();
    browser.goto(url);
    let boxes = browser.eval("document.querySelectorAll('svg g.blk > rect.box').length");
    assert_eq!(
        boxes.as_u64(),
        Some(blocks.len() as u64),
        "one box per block"
    );
    let images =
        browser.eval("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)");
    assert_eq!(
        images,
        Value::Array(vec![Value::Bool(true); pages.len()]),
        "every page image loads"
    );

    let (page, n, table) = blocks
        .iter()
        .find(|(_, _, b)| b["kind"] == "table" && b["table"]["cells"].is_array())
        .copied()
        .expect("the ocr engine finds a table block in the PubTabNet scan");
    let detail = format!("d-{page}-{n}");
    assert_eq!(
        browser.eval(&format!("document.getElementById('{detail}').hidden")),
        true
    );
    // A point of the table's box where the table's box is what a click hits (boxes may overlap).
    let point = browser.eval(&format!(
        "(() => {{
            const g = document.getElementById('b-{page}-{n}');
            g.scrollIntoView({{block: 'center'}});
            const r = g.querySelector('rect.box').getBoundingClientRect();
            for (const fy of [0.5, 0.25, 0.75, 0.1, 0.9]) for (const fx of [0.5, 0.25, 0.75, 0.1, 0.9]) {{
                const x = r.left + r.width * fx, y = r.top + r.height * fy;
                const hit = document.elementFromPoint(x, y);
                if (hit && hit.closest('g.blk') === g) return [x, y];
            }}
            return null;
        }})()"
    ));
    let (x, y) = (
        point[0].as_f64().expect("a visible point of the table box"),
        point[1].as_f64().unwrap(),
    );
    browser.click(x, y);
    let shown = browser.eval(&format!(
        "(() => {{
            const d = document.getElementById('{detail}');
            return {{
                hidden: d.hidden,
                visible: d.offsetParent !== null && d.getBoundingClientRect().height > 0,
                selected: document.getElementById('b-{page}-{n}').classList.contains('sel'),
                cells: Array.from(d.querySelectorAll('table.cells tr')).map(
                    tr => Array.from(tr.children).map(c => c.textContent)),
            }};
        }})()"
    ));
    assert_eq!(shown["hidden"], false, "{shown}");
    assert_eq!(shown["visible"], true, "{shown}");
    assert_eq!(shown["selected"], true, "{shown}");
    // The cells as the viewer must lay them out: by row, then column.
    let mut cells: Vec<(u64, u64, String)> = table["table"]["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["row"].as_u64().unwrap(),
                c["col"].as_u64().unwrap(),
                c["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    cells.sort();
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut last_row = None;
    for (row, _, text) in cells {
        if last_row != Some(row) {
            rows.push(Vec::new());
            last_row = Some(row);
        }
        rows.last_mut().unwrap().push(text);
    }
    assert!(!rows.is_empty(), "the table block has cells");
    assert_eq!(
        shown["cells"],
        serde_json::json!(rows),
        "the selected table's cells"
    );

    let png = browser.screenshot();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a screenshot of the viewer"
    );
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("viewer-{name}.png"));
    std::fs::write(&shot, &png).expect("write the screenshot");
    eprintln!("viewer screenshot: {}", shot.display());
}
