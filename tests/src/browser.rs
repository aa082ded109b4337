//! A real browser for UI tests: Debian's headless Chromium driven over WebDriver by
//! chromedriver (`apt install chromium chromium-driver`; `.ci/run` installs both).
//!
//! Every wait polls a condition against a deadline. Each test saves a screenshot of every
//! page it checks under `target/browser-screenshots/<test>/`, so a reviewer (or a failed CI
//! run) can see what the browser saw.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::{DEADLINE, KillOnDrop, free_port};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// One headless Chromium session; chromedriver is killed when this is dropped.
#[derive(Debug)]
pub struct Browser {
    client: Client,
    screenshots: PathBuf,
    _profile: tempfile::TempDir,
    _driver: KillOnDrop,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium; screenshots go to a folder named `test`.
    pub async fn start(test: &str) -> Browser {
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
            "browser tests need Debian's chromium and chromium-driver: \
             apt-get install chromium chromium-driver"
        );
        let port = free_port();
        let driver = KillOnDrop::spawn(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "chromedriver",
        );
        let url = format!("http://127.0.0.1:{port}");
        let profile = tempfile::tempdir().expect("browser profile directory");
        // The flags a sandboxed CI machine needs: no sandbox as root, no GPU, and no
        // background connections to Google, which this closed network refuses.
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-quic",
                    "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }
        });
        let capabilities = match capabilities {
            serde_json::Value::Object(map) => map,
            _ => unreachable!("a JSON object literal"),
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let deadline = Instant::now() + DEADLINE;
        // chromedriver takes a moment to listen: retry the session until the deadline.
        let client = loop {
            match ClientBuilder::new(connector.clone())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "no WebDriver session within {DEADLINE:?}: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await; // polling a condition
                }
            }
        };
        let screenshots = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/browser-screenshots")
            .join(test);
        let _ = std::fs::remove_dir_all(&screenshots);
        std::fs::create_dir_all(&screenshots).expect("screenshot folder");
        Browser {
            client,
            screenshots,
            _profile: profile,
            _driver: driver,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    pub async fn current_url(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("current URL")
            .to_string()
    }

    /// Types `text` into the field matched by `css`, replacing what was there.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clear {css}: {e}"));
        field
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Chooses the option with value `value` in the `<select>` matched by `css`.
    pub async fn select(&self, css: &str, value: &str) {
        self.find(css)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("select {value:?} in {css}: {e}"));
    }

    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// The element matched by `css`, waiting (bounded) for it to appear.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self.client.find(Locator::Css(css)).await {
                Ok(element) => return element,
                Err(e) => {
                    if Instant::now() >= deadline {
                        let _ = self.screenshot("failed-find").await;
                        panic!("no element {css} within {DEADLINE:?}: {e}");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await; // polling a condition
                }
            }
        }
    }

    /// The text of the element matched by `css` once `condition` holds for it.
    pub async fn wait_for_text(
        &self,
        css: &str,
        what: &str,
        condition: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + DEADLINE;
        let mut last = String::new();
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = element.text().await
            {
                if condition(&text) {
                    return text;
                }
                last = text;
            }
            if Instant::now() >= deadline {
                let _ = self.screenshot("failed-wait").await;
                panic!("{what}: {css} still reads {last:?} after {DEADLINE:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await; // polling a condition
        }
    }

    /// Waits until the page's text contains `text`.
    pub async fn wait_for_page_text(&self, text: &str) {
        self.wait_for_text("body", &format!("page shows {text:?}"), |t| {
            t.contains(text)
        })
        .await;
    }

    /// Saves a PNG of the window as `<n>-<name>.png`; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let count = std::fs::read_dir(&self.screenshots).map_or(0, |d| d.count());
        let path = self
            .screenshots
            .join(format!("{:02}-{name}.png", count + 1));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Ends the WebDriver session (chromedriver goes when this is dropped).
    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
