//! The web UI in a real browser (headless Chromium): what an engineer sees and does.

use system_tests::Appliance;
use system_tests::browser::Browser;

/// A fresh appliance as its first user meets it: the printed one-time link creates the admin
/// (there is no default password), the namespace page shows live values changing, and
/// logging out and in again works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_creates_the_admin_and_the_namespace_page_shows_live_values_changing() {
    let data = tempfile::tempdir().unwrap();
    let mut appliance = Appliance::start(data.path(), &[]);
    let printed = appliance.stdout_until("first login");
    let setup_link = printed
        .last()
        .and_then(|line| line.split_whitespace().find(|w| w.starts_with("http://")))
        .unwrap_or_else(|| panic!("no setup link in {printed:?}"))
        .to_owned();
    let base = format!("http://127.0.0.1:{}", appliance.web_port);
    let browser = Browser::start("first-run-and-namespace").await;

    // Without a user every page leads to setup.
    browser.goto(&format!("{base}/")).await;
    browser.wait_for_page_text("Create the admin account").await;
    browser.goto(&setup_link).await;
    browser.fill("#username", "anna").await;
    browser.fill("#password", "correct horse battery").await;
    browser.fill("#password2", "correct horse battery").await;
    browser.screenshot("setup").await;
    browser.click(r#"form[action="/setup"] button"#).await;

    // Setup logs the admin in and leads to the dashboard; the tags are on the namespace page.
    browser.wait_for_page_text("anna (admin)").await;
    browser.wait_for_page_text("Dashboard").await;
    browser.goto(&format!("{base}/namespace")).await;
    browser
        .wait_for_page_text("acme/plant-a/packaging/line3/filler/temperature")
        .await;
    // The demo PLC's counter goes up every second: the value on the page must change
    // without a reload (server-sent events, which need the session too).
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

    // Log out, and back in with the password just chosen.
    browser.click("nav.account button").await;
    browser.wait_for_page_text("Log in").await;
    browser.goto(&format!("{base}/users")).await;
    browser.wait_for_page_text("User name").await;
    assert!(
        browser.current_url().await.contains("/login?next=/users"),
        "{}",
        browser.current_url().await
    );
    browser.fill("#username", "anna").await;
    browser.fill("#password", "correct horse battery").await;
    browser.screenshot("login").await;
    browser.click(r#"form[action="/login"] button"#).await;
    browser.wait_for_page_text("Add a user").await;
    browser.screenshot("users").await;
    browser.close().await;
}
