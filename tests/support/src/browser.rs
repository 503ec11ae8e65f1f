//! A real headless Chromium (Debian's `chromium`) driven over the DevTools protocol, for tests
//! that look at pages as a person would: open a URL, evaluate script, click at a point with real
//! mouse events (so hit-testing decides what is clicked), take a screenshot.
//!
//! The protocol client is deliberately small: a WebSocket (tungstenite) carrying JSON commands
//! and matching answers by id; every event is skipped. CDP crates type every event of one
//! protocol revision and fail on what a newer Chromium sends; this one reads only the answers to
//! the five commands it sends, so it keeps working as Debian updates Chromium.
//!
//! A missing browser fails the test (with what to install), it never skips it.

use base64::Engine as _;
use serde_json::{json, Value};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// Viewport of every page, in CSS pixels.
pub const VIEWPORT: (u32, u32) = (1400, 1000);

/// The browser binary: `$FOLIO_CHROMIUM`, else `chromium` on the `PATH` (panics when absent).
pub fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("FOLIO_CHROMIUM") {
        return PathBuf::from(path);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "chromium is not installed: `apt-get install -y chromium` (scripts/test installs it), \
             or set FOLIO_CHROMIUM to a Chromium binary"
        )
    })
}

/// One headless Chromium with one page (tab); killed when dropped.
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
}

impl Browser {
    /// Start Chromium with a fresh profile and open a blank page of [`VIEWPORT`].
    pub fn launch() -> Browser {
        let profile = tempfile::tempdir().expect("profile folder");
        let binary = chromium();
        let child = Command::new(&binary)
            .args([
                "--headless=new",
                // Tests run as root in containers, where Chromium's sandbox cannot start.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-port=0",
                &format!("--window-size={},{}", VIEWPORT.0, VIEWPORT.1),
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        // Chromium writes the port it picked and the browser's WebSocket path to this file.
        let port_file = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(60);
        let (port, path) = loop {
            let text = std::fs::read_to_string(&port_file).unwrap_or_default();
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                break (port.trim().to_string(), path.trim().to_string());
            }
            assert!(
                Instant::now() < deadline,
                "{} wrote no DevToolsActivePort within 60 s",
                binary.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let (ws, _) = tungstenite::connect(format!("ws://127.0.0.1:{port}{path}"))
            .expect("connect to Chromium's DevTools socket");
        let mut browser = Browser {
            child,
            _profile: profile,
            ws,
            session: String::new(),
            next_id: 0,
        };
        let target = browser.call("Target.createTarget", json!({ "url": "about:blank" }));
        let target_id = target["targetId"].as_str().expect("targetId").to_string();
        let attached = browser.call(
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
        );
        browser.session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_string();
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": VIEWPORT.0, "height": VIEWPORT.1, "deviceScaleFactor": 1, "mobile": false }),
        );
        browser
    }

    /// Send a command (to the page once attached) and return its `result`; a protocol error
    /// fails the test.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        self.ws
            .send(Message::text(message.to_string()))
            .unwrap_or_else(|e| panic!("sending {method}: {e}"));
        loop {
            let frame = self
                .ws
                .read()
                .unwrap_or_else(|e| panic!("waiting for the answer to {method}: {e}"));
            let Message::Text(text) = frame else {
                continue;
            };
            let answer: Value = serde_json::from_str(text.as_str()).expect("DevTools sends JSON");
            if answer["id"].as_u64() != Some(id) {
                continue; // an event, or the answer to nothing we wait for
            }
            if let Some(error) = answer.get("error") {
                panic!("{method} failed: {error}");
            }
            return answer["result"].clone();
        }
    }

    /// Open `url` and wait until the page has loaded (its images too).
    pub fn goto(&mut self, url: &str) {
        let nav = self.call("Page.navigate", json!({ "url": url }));
        if let Some(error) = nav.get("errorText").and_then(Value::as_str) {
            panic!("opening {url}: {error}");
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        // `complete` only after the navigation committed: the old document may still answer.
        while !(self.eval("document.readyState") == "complete"
            && self.eval("location.href") != "about:blank")
        {
            assert!(Instant::now() < deadline, "{url} did not load within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The value of a JavaScript expression (promises awaited); a thrown exception fails the test.
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expression} threw: {e}");
        }
        r["result"]["value"].clone()
    }

    /// A left click at viewport point (`x`, `y`): move, press, release, as a mouse does.
    pub fn click(&mut self, x: f64, y: f64) {
        for (kind, buttons) in [("mouseMoved", 0), ("mousePressed", 1), ("mouseReleased", 0)] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "buttons": buttons, "clickCount": 1 }),
            );
        }
    }

    /// A PNG of the viewport.
    pub fn screenshot(&mut self) -> Vec<u8> {
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let data = shot["data"].as_str().expect("screenshot data");
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("screenshot is base64")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.ws.close(None);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
