//! The web UI in a real browser (headless Chromium): what an engineer sees and does.

use system_tests::Appliance;
use system_tests::browser::Browser;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_namespace_page_shows_live_values_changing() {
    let data = tempfile::tempdir().unwrap();
    let appliance = Appliance::start(data.path(), &[]);
    let base = format!("http://127.0.0.1:{}", appliance.web_port);
    let browser = Browser::start("namespace-live").await;

    browser.goto(&format!("{base}/")).await;
    browser
        .wait_for_page_text("acme/plant-a/packaging/line3/filler/temperature")
        .await;
    // The demo PLC's counter goes up every second: the value on the page must change
    // without a reload (server-sent events).
    let first = browser
        .wait_for_text("#v3", "bottles counter shows a value", |t| {
            t.parse::<u64>().is_ok()
        })
        .await;
    browser.screenshot("namespace").await;
    browser
        .wait_for_text("#v3", "bottles counter changes", |t| {
            t != first && t.parse::<u64>().is_ok()
        })
        .await;
    browser.close().await;
}
