//! The dashboard, namespace, Sparkplug inspector and settings pages in a real browser
//! (headless Chromium) against `sparkedge demo`, as an engineer uses them. Each test saves a
//! screenshot of every page it checks under `target/browser-screenshots/<test>/`.

use std::path::Path;

use system_tests::browser::Browser;
use system_tests::{Appliance, add_web_user, import_model};

const PASSWORD: &str = "correct horse battery";

/// A demo appliance with the admin `anna`, and a browser logged in as her.
struct Session {
    app: Appliance,
    browser: Browser,
    base: String,
}

impl Session {
    /// With the demo model, or the model already imported into `data`.
    async fn start(data: &Path, test: &str) -> Session {
        add_web_user(data, "anna", "admin", PASSWORD);
        let mut app = Appliance::start(data, &[]);
        app.stdout_until("Press Ctrl-C");
        Session::log_in(app, test).await
    }

    /// A browser logged in to `app` as `anna` (added to its data directory already).
    async fn log_in(app: Appliance, test: &str) -> Session {
        let base = format!("http://127.0.0.1:{}", app.web_port);
        let browser = Browser::start(test).await;
        browser.goto(&format!("{base}/login")).await;
        browser.fill("#username", "anna").await;
        browser.fill("#password", PASSWORD).await;
        browser.click(r#"form[action="/login"] button"#).await;
        browser.wait_for_page_text("anna (admin)").await;
        Session { app, browser, base }
    }

    /// Scrolls the element matched by `css` into the middle of the window (a screenshot shows
    /// the window only), then saves the screenshot `name`.
    async fn screenshot_of(&self, css: &str, name: &str) {
        self.browser.find(css).await;
        self.browser
            .client()
            .execute(
                "document.querySelector(arguments[0]).scrollIntoView({block: 'center'})",
                vec![css.into()],
            )
            .await
            .unwrap_or_else(|e| panic!("scroll to {css}: {e}"));
        self.browser.screenshot(name).await;
    }

    async fn goto(&self, path: &str) {
        self.browser.goto(&format!("{}{path}", self.base)).await;
    }

    /// `path` fetched by the page's own script, with the browser's session: what a link
    /// the user clicks would download.
    async fn fetch(&self, path: &str) -> String {
        let script = "const done = arguments[arguments.length - 1];
            fetch(arguments[0], {credentials: 'same-origin'})
              .then(r => r.text().then(t => done(r.status + ' ' + t)))
              .catch(e => done('0 ' + e));";
        let answer = self
            .browser
            .client()
            .execute_async(script, vec![path.into()])
            .await
            .unwrap_or_else(|e| panic!("fetch {path}: {e}"));
        let answer = answer.as_str().unwrap_or_default().to_owned();
        let (status, body) = answer.split_once(' ').unwrap_or((&answer, ""));
        assert_eq!(status, "200", "GET {path}: {body}");
        body.to_owned()
    }
}

/// The dashboard shows the embedded broker, the Sparkplug session on it and the demo device
/// online, and keeps them current without a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_broker_and_the_demo_device() {
    let data = tempfile::tempdir().unwrap();
    let s = Session::start(data.path(), "dashboard").await;
    s.goto("/").await;
    // Rendered at once; the broker's address arrives with the sampler's first second and
    // the page's refresh, not a reload.
    let listen = format!("127.0.0.1:{}", s.app.mqtt_port);
    s.browser
        .wait_for_text("#b-listen", "broker address", |t| t == listen)
        .await;
    // Our own Sparkplug and UNS clients are connected to it.
    s.browser
        .wait_for_text("#tile-clients .big", "MQTT clients", |t| {
            t.parse::<u32>().is_ok_and(|n| n >= 1)
        })
        .await;
    s.browser
        .wait_for_text("#refresh", "refreshed", |t| t.starts_with("as of "))
        .await;
    // The demo PLC and the session on the embedded broker, as the appliance reports them.
    s.browser
        .wait_for_text("#devices", "the demo PLC online", |t| {
            t.contains("demo-plc") && t.contains("simulator") && t.contains("online")
        })
        .await;
    s.browser
        .wait_for_text("#tile-devices .big", "devices online", |t| t == "1 / 1")
        .await;
    s.browser
        .wait_for_text("#sessions", "the embedded session online", |t| {
            t.contains("embedded") && t.contains("online") && t.contains(&listen)
        })
        .await;
    // Samples keep coming: the count on the page goes up without a reload.
    let samples = || async {
        s.browser
            .wait_for_text("#devices td.num", "samples", |t| t.parse::<u64>().is_ok())
            .await
            .parse::<u64>()
            .unwrap_or_default()
    };
    let first = samples().await;
    s.browser
        .wait_for_text("#devices td.num", "samples go up", |t| {
            t.parse::<u64>().is_ok_and(|n| n > first)
        })
        .await;
    s.browser.screenshot("dashboard").await;

    // A PLC that does not answer stands out, with the reason in full.
    let closed = system_tests::free_port();
    let added = s
        .browser
        .client()
        .execute_async(
            "const [port, done] = arguments;
             (async () => {
               const d = await sparkedge.api('POST', '/api/devices', {name: 'press-plc',
                 driver: 'modbus-tcp', host: '127.0.0.1', port, timeout_ms: 300, offline_after: 1});
               const t = await sparkedge.api('POST', '/api/tags', {device: 'press-plc',
                 location: 'packaging/line3', name: 'press-force', datatype: 'uint16', address: 'hr:0'});
               done(d.status + ' ' + t.status);
             })();",
            vec![closed.into()],
        )
        .await
        .expect("add a device through the API");
    assert_eq!(added, "201 201");
    s.browser
        .wait_for_text("#devices tr.row-bad", "the unreachable PLC marked", |t| {
            t.contains("press-plc") && t.contains("offline") && t.contains(&closed.to_string())
        })
        .await;
    s.browser.find("#tile-devices.bad").await;
    s.browser
        .wait_for_text("#tile-devices .big", "devices online", |t| t == "1 / 2")
        .await;
    s.browser.screenshot("dashboard-device-offline").await;
    s.browser.close().await;
}

/// The inspector lists the demo node's births and shows the DBIRTH's metrics with their
/// aliases; the filter narrows the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_shows_the_demo_dbirth_with_its_metrics_and_aliases() {
    let data = tempfile::tempdir().unwrap();
    let s = Session::start(data.path(), "sparkplug-inspector").await;
    s.goto("/sparkplug").await;
    s.browser
        .wait_for_text("#births", "the births", |t| {
            t.contains("NBIRTH") && t.contains("DBIRTH") && t.contains("demo-plc")
        })
        .await;
    s.browser.screenshot("births").await;
    s.browser.click(r#"#births a[href*="DBIRTH"]"#).await;
    s.browser
        .wait_for_text("#birth-status", "the DBIRTH decoded", |t| {
            t.starts_with("DBIRTH · seq") && t.contains("6 metrics")
        })
        .await;
    let table = s
        .browser
        .wait_for_text("#metrics tbody", "the metrics", |t| {
            t.contains("packaging/line3/filler/temperature")
        })
        .await;
    for expected in [
        "Float",
        "engUnit=degC",
        "packaging/line3/filler/bottles",
        "UInt32",
    ] {
        assert!(table.contains(expected), "{expected:?} not in {table}");
    }
    // Every metric has its alias, each used once: the alias map.
    s.browser
        .wait_for_text("#alias-check", "the alias check", |t| {
            t.contains("6 aliases, each used once")
        })
        .await;
    let aliases = s
        .browser
        .client()
        .execute(
            "return [...document.querySelectorAll('#metrics tbody tr td:nth-child(2)')].map(td => td.textContent)",
            vec![],
        )
        .await
        .expect("read the alias column");
    let mut aliases: Vec<u64> = aliases
        .as_array()
        .expect("a list")
        .iter()
        .map(|a| {
            a.as_str()
                .and_then(|a| a.parse().ok())
                .expect("a numeric alias")
        })
        .collect();
    aliases.sort_unstable();
    aliases.dedup();
    assert_eq!(aliases.len(), 6, "{aliases:?}");
    // Unique across the node too: its NBIRTH's metrics take none of the device's aliases.
    s.browser.click("#check-node").await;
    s.browser
        .wait_for_text("#node-check", "the node-wide alias check", |t| {
            t.contains("6 aliases over 12 metrics in 2 births, each used once")
        })
        .await;
    s.screenshot_of("#birth", "dbirth").await;

    s.browser.fill("#filter", "bottles").await;
    s.browser
        .wait_for_text("#count", "the filter applied", |t| {
            t.starts_with("rows 1–1 of 1 (filtered from 6)")
        })
        .await;
    s.browser.screenshot("dbirth-filtered").await;
    s.browser.close().await;
}

/// Live values change on the namespace page; an admin adds a line and renames a cell, and
/// the tags move with it (their UNS topics on the page change); removing a line that holds
/// tags is refused with the tags named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_namespace_page_is_live_and_an_admin_edits_the_tree() {
    let data = tempfile::tempdir().unwrap();
    let s = Session::start(data.path(), "namespace").await;
    s.goto("/namespace").await;
    // The demo PLC's bottles counter (tag 3) goes up every second.
    let first = s
        .browser
        .wait_for_text("#v3", "bottles counter shows a value", |t| {
            t.parse::<u64>().is_ok()
        })
        .await;
    s.browser
        .wait_for_text("#v3", "bottles counter changes", |t| {
            t != first && t.parse::<u64>().is_ok()
        })
        .await;
    s.browser
        .wait_for_text("#live-status", "live", |t| t.contains("live"))
        .await;
    s.browser.screenshot("live").await;

    // Add a line to the area.
    s.browser
        .click(r#"details.area[data-path="packaging"] > details.edit > summary"#)
        .await;
    s.browser
        .fill(
            r#"form.ns-add[data-parent="packaging"] input[name="name"]"#,
            "line4",
        )
        .await;
    s.browser.screenshot("add-line").await;
    s.browser
        .click(r#"form.ns-add[data-parent="packaging"] button"#)
        .await;
    s.browser
        .find(r#"details.line[data-path="packaging/line4"]"#)
        .await;

    // Rename the cell: its tags move.
    s.browser
        .click(r#"details.cell[data-path="packaging/line3/filler"] > details.edit > summary"#)
        .await;
    s.browser
        .fill(
            r#"form.ns-rename[data-path="packaging/line3/filler"] input[name="to"]"#,
            "filler2",
        )
        .await;
    s.browser
        .click(r#"form.ns-rename[data-path="packaging/line3/filler"] button"#)
        .await;
    s.browser
        .wait_for_text("#tree", "the tags under their new topics", |t| {
            t.contains("acme/plant-a/packaging/line3/filler2/temperature")
                && !t.contains("acme/plant-a/packaging/line3/filler/temperature")
        })
        .await;
    // Still live under the new names.
    let moved = s
        .browser
        .wait_for_text("#v3", "bottles counter after the move", |t| {
            t.parse::<u64>().is_ok()
        })
        .await;
    s.browser
        .wait_for_text("#v3", "bottles counter changes after the move", |t| {
            t != moved && t.parse::<u64>().is_ok()
        })
        .await;
    s.browser.screenshot("renamed").await;

    // A line with tags cannot go: the API's refusal names them, and the line stays.
    s.browser
        .click(r#"details.line[data-path="packaging/line3"] > details.edit > summary"#)
        .await;
    s.browser
        .click(r#"form.ns-remove[data-path="packaging/line3"] button"#)
        .await;
    s.browser
        .wait_for_text(
            r#"form.ns-remove[data-path="packaging/line3"] .form-errors"#,
            "the refusal",
            |t| t.contains("tags[packaging/line3/filler2/temperature].location"),
        )
        .await;
    s.screenshot_of(
        r#"form.ns-remove[data-path="packaging/line3"]"#,
        "remove-refused",
    )
    .await;
    s.goto("/namespace").await;
    s.browser
        .find(r#"details.line[data-path="packaging/line3"]"#)
        .await;
    s.browser.close().await;
}

/// Settings: the model is exported, an edited copy imported with a preview of the change and
/// applied; a copy with an error is refused with its field named, and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_export_preview_apply_and_a_refused_import() {
    let data = tempfile::tempdir().unwrap();
    let s = Session::start(data.path(), "settings").await;
    s.goto("/settings").await;
    s.browser.wait_for_page_text("Process configuration").await;
    s.browser
        .wait_for_text("#runtime", "the process configuration", |t| {
            t.contains("sparkedge demo")
        })
        .await;
    s.browser.screenshot("settings").await;

    // Export: what the link downloads.
    let href = s
        .browser
        .find("#export")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let exported = s.fetch(&href).await;
    assert!(exported.contains("unit = \"mm\""), "{exported}");

    // An edited copy: the level in centimetres.
    let edited = data.path().join("edited.toml");
    std::fs::write(
        &edited,
        exported.replacen("unit = \"mm\"", "unit = \"cm\"", 1),
    )
    .unwrap();
    s.browser
        .find("#import-file")
        .await
        .send_keys(&edited.display().to_string())
        .await
        .unwrap();
    s.browser.click("#preview").await;
    s.browser
        .wait_for_text("#import-preview", "the preview", |t| {
            t.contains("changed (1): packaging/line3/filler/level")
        })
        .await;
    s.screenshot_of("#import-preview", "import-preview").await;
    s.browser.click("#apply-import").await;
    s.browser
        .wait_for_text("#import-applied", "the import applied", |t| {
            t.contains("Imported edited.toml") && t.contains("packaging/line3/filler/level")
        })
        .await;
    s.browser.screenshot("import-applied").await;
    let running = s.fetch(&href).await;
    assert!(running.contains("unit = \"cm\""), "{running}");

    // A copy with an error: every error with field, value and reason; no apply; nothing
    // changed.
    let broken = data.path().join("broken.toml");
    std::fs::write(
        &broken,
        running.replacen("datatype = \"int32\"", "datatype = \"int33\"", 1),
    )
    .unwrap();
    s.browser
        .find("#import-file")
        .await
        .send_keys(&broken.display().to_string())
        .await
        .unwrap();
    s.browser.click("#preview").await;
    let errors = s
        .browser
        .wait_for_text("#import-errors", "the errors", |t| t.contains("int33"))
        .await;
    assert!(errors.contains("tag[1].datatype"), "{errors}");
    s.browser
        .wait_for_text("#import-result", "the refusal", |t| {
            t.contains("broken.toml cannot be imported; nothing was changed")
        })
        .await;
    assert!(
        s.browser
            .client()
            .find(fantoccini::Locator::Css("#apply-import"))
            .await
            .is_err(),
        "an import with errors offers no apply"
    );
    s.screenshot_of("#import-result", "import-refused").await;
    assert_eq!(
        s.fetch(&href).await,
        running,
        "the refused import changed the model"
    );

    // Scan classes: a bad period is named beside its field; a good one is saved.
    s.browser.click("#add-scan-class").await;
    s.browser
        .fill(r#"input[name="scan_class[0].name"]"#, "fast")
        .await;
    s.browser
        .fill(r#"input[name="scan_class[0].period_ms"]"#, "0")
        .await;
    s.browser
        .click(r#"#scan-classes button[type="submit"]"#)
        .await;
    s.browser
        .wait_for_text(
            r#"#scan-classes input[name="scan_class[0].period_ms"] + .field-error"#,
            "the period's error",
            |t| t.contains("milliseconds"),
        )
        .await;
    s.screenshot_of("#scan-classes", "scan-class-refused").await;
    s.browser
        .fill(r#"input[name="scan_class[0].period_ms"]"#, "100")
        .await;
    s.browser
        .click(r#"#scan-classes button[type="submit"]"#)
        .await;
    s.browser
        .wait_for_text("#scan-class-rows", "the saved scan class", |t| {
            t.contains("0 tags")
        })
        .await;
    s.screenshot_of("#scan-classes", "scan-class-saved").await;
    let saved = s.fetch(&href).await;
    assert!(
        saved.contains("[[scan_class]]\nname = \"fast\"\nperiod_ms = 100\n"),
        "{saved}"
    );
    s.browser.close().await;
}

/// A device of 10,000 metrics: its DBIRTH is fetched once and shown 200 rows at a time;
/// paging and the filter work on the whole birth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dbirth_of_ten_thousand_metrics_stays_usable() {
    let data = tempfile::tempdir().unwrap();
    let mut model = String::from(
        "[namespace]\nenterprise = \"acme\"\nsite = \"plant-a\"\n[sparkplug]\nedge_node_id = \"big\"\n\
         [[area]]\nname = \"packaging\"\n[[area.line]]\nname = \"line3\"\ncells = [\"filler\"]\n\
         [[device]]\nname = \"big-plc\"\ndriver = \"simulator\"\nperiod_ms = 1000\n",
    );
    for i in 0..10_000 {
        model.push_str(&format!(
            "[[tag]]\ndevice = \"big-plc\"\nlocation = \"packaging/line3/filler\"\nname = \"t{i:05}\"\n\
             datatype = \"float32\"\naddress = \"sine\"\n"
        ));
    }
    import_model(data.path(), &model);
    let s = Session::start(data.path(), "sparkplug-inspector-10000").await;
    s.goto("/sparkplug?birth=spBv1.0/plant-a/DBIRTH/big/big-plc")
        .await;
    s.browser
        .wait_for_text("#count", "the first page", |t| t == "rows 1–200 of 10,000")
        .await;
    let rows = s
        .browser
        .client()
        .execute(
            "return document.querySelectorAll('#metrics tbody tr').length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(rows, 200, "only one page of rows is in the table");
    s.browser.click("#next").await;
    s.browser
        .wait_for_text("#count", "the second page", |t| {
            t == "rows 201–400 of 10,000"
        })
        .await;
    s.browser
        .wait_for_text("#metrics tbody", "the second page's rows", |t| {
            t.contains("packaging/line3/filler/t00200")
        })
        .await;
    s.browser.screenshot("page-2").await;
    s.browser.fill("#filter", "t0999").await;
    s.browser
        .wait_for_text("#count", "the filter", |t| {
            t == "rows 1–10 of 10 (filtered from 10,000)"
        })
        .await;
    s.browser
        .wait_for_text("#alias-check", "the alias check", |t| {
            t.contains("10,000 aliases, each used once")
        })
        .await;
    s.browser.screenshot("filtered").await;
    s.browser.close().await;
}

/// A model of 10,000 tags: the namespace page holds the tree only; opening a cell shows its
/// first 200 tags, live; the next page is live too (the stream follows the rows shown). The
/// device's table shows 200 rows and finds tags by name, live as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_of_ten_thousand_tags_stays_usable() {
    let data = tempfile::tempdir().unwrap();
    let mut model = String::from(
        "[namespace]\nenterprise = \"acme\"\nsite = \"plant-a\"\n\
         [[area]]\nname = \"packaging\"\n[[area.line]]\nname = \"line3\"\ncells = [\"filler\"]\n\
         [[device]]\nname = \"big-plc\"\ndriver = \"simulator\"\nperiod_ms = 1000\n",
    );
    for i in 0..10_000 {
        model.push_str(&format!(
            "[[tag]]\ndevice = \"big-plc\"\nlocation = \"packaging/line3/filler\"\nname = \"t{i:05}\"\n\
             datatype = \"float32\"\naddress = \"sine\"\n"
        ));
    }
    import_model(data.path(), &model);
    let s = Session::start(data.path(), "ten-thousand-tags").await;
    let live_rows = "return document.querySelectorAll('[data-live]').length";

    s.goto("/namespace").await;
    s.browser
        .find(r#"details.cell[data-path="packaging/line3/filler"]:not([open])"#)
        .await;
    let rows = s.browser.client().execute(live_rows, vec![]).await.unwrap();
    assert_eq!(rows, 0, "no tag is on the page before its node is opened");
    s.browser
        .click(r#"details.line[data-path="packaging/line3"] > summary"#)
        .await;
    s.browser
        .click(r#"details.cell[data-path="packaging/line3/filler"] > summary"#)
        .await;
    let cell = r#"div.tags[data-location="packaging/line3/filler"]"#;
    s.browser
        .wait_for_text(cell, "the first page", |t| {
            t.contains("rows 1–200 of 10,000")
        })
        .await;
    let rows = s.browser.client().execute(live_rows, vec![]).await.unwrap();
    assert_eq!(rows, 200);
    let first = s
        .browser
        .wait_for_text("#v0", "t00000's value", |t| t.parse::<f32>().is_ok())
        .await;
    s.browser
        .wait_for_text("#v0", "t00000 changes", |t| {
            t != first && t.parse::<f32>().is_ok()
        })
        .await;
    s.browser.screenshot("cell-open").await;
    s.browser
        .click(&format!(r#"{cell} .pager button[data-page="2"]"#))
        .await;
    s.browser
        .wait_for_text(cell, "the second page", |t| {
            t.contains("rows 201–400 of 10,000") && t.contains("t00200")
        })
        .await;
    let first = s
        .browser
        .wait_for_text("#v200", "t00200's value", |t| t.parse::<f32>().is_ok())
        .await;
    s.browser
        .wait_for_text("#v200", "t00200 changes", |t| {
            t != first && t.parse::<f32>().is_ok()
        })
        .await;
    s.browser.screenshot("cell-page-2").await;

    s.goto("/devices/big-plc").await;
    s.browser
        .wait_for_text("#tag-count", "the first page", |t| {
            t == "rows 1–200 of 10,000"
        })
        .await;
    s.browser
        .fill(r#"#tag-filter input[name="filter"]"#, "t0999")
        .await;
    s.browser
        .click(r#"#tag-filter button[type="submit"]"#)
        .await;
    s.browser
        .wait_for_text("#tag-count", "the filter", |t| {
            t == "rows 1–10 of 10 (filtered from 10,000)"
        })
        .await;
    let value = r#"tr[data-tag="packaging/line3/filler/t09999"] td.value"#;
    let first = s
        .browser
        .wait_for_text(value, "t09999's value", |t| t.parse::<f32>().is_ok())
        .await;
    s.browser
        .wait_for_text(value, "t09999 changes", |t| {
            t != first && t.parse::<f32>().is_ok()
        })
        .await;
    s.browser.screenshot("device-filtered").await;
    s.browser.close().await;
}

/// With the service's defaults (anonymous MQTT off), an admin lets SCADA in and sends the
/// Sparkplug births to the plant's broker from the settings page alone: an MQTT user for
/// the SCADA client, then a northbound broker (Debian's Mosquitto), whose session births
/// there at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_lets_scada_in_and_adds_a_northbound_broker_from_the_settings_page() {
    let data = tempfile::tempdir().unwrap();
    import_model(
        data.path(),
        &uns_model::file::to_toml(&uns_model::file::demo_model()),
    );
    add_web_user(data.path(), "anna", "admin", PASSWORD);
    let plant = system_tests::Mosquitto::start(system_tests::free_port()).await;
    let s = Session::log_in(
        Appliance::run_with_mqtt(data.path(), "", ""),
        "connect-scada",
    )
    .await;
    let (app, browser) = (&s.app, &s.browser);
    let mqtt_port = app.mqtt_port;
    s.goto("/settings").await;
    browser
        .wait_for_text("#mqtt-anonymous", "the anonymous MQTT note", |t| {
            t.contains("refused")
        })
        .await;

    // An MQTT user for SCADA: a short password is refused beside its field, then it is added.
    browser.fill("#mqtt-name", "scada").await;
    browser.fill("#mqtt-password", "short").await;
    browser.select("#mqtt-access", "publish").await;
    browser
        .click(r#"#mqtt-user-form button[type="submit"]"#)
        .await;
    browser
        .wait_for_text(
            "#mqtt-user-form .field-error",
            "the password's error",
            |t| t.contains("8 to 128 characters"),
        )
        .await;
    browser.fill("#mqtt-password", "scada password").await;
    browser
        .click(r#"#mqtt-user-form button[type="submit"]"#)
        .await;
    browser
        .wait_for_text("#mqtt-users", "the new MQTT user", |t| {
            t.contains("scada") && t.contains("publish and subscribe")
        })
        .await;
    browser.screenshot("mqtt-user-added").await;
    // SCADA logs in to the embedded broker and sees the node's birth.
    let mut options = rumqttc::MqttOptions::new("scada", "127.0.0.1", mqtt_port);
    options.set_credentials("scada", "scada password");
    let (scada, mut events) = rumqttc::AsyncClient::new(options, 10);
    scada
        .subscribe(
            "$sparkplug/certificates/spBv1.0/+/NBIRTH/#",
            rumqttc::QoS::AtMostOnce,
        )
        .await
        .unwrap();
    let birth = tokio::time::timeout(system_tests::DEADLINE, async {
        loop {
            match events.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => return p.topic,
                Ok(_) => {}
                Err(e) => panic!("scada's connection: {e}"),
            }
        }
    })
    .await
    .expect("SCADA sees the NBIRTH");
    assert!(birth.ends_with("/NBIRTH/sparkedge"), "{birth}");

    // A northbound broker: a bad URL is named, then the plant's broker gets the births.
    let mut host = system_tests::Observer::connect(plant.port, "plant-scada", None).await;
    host.subscribe("spBv1.0/#").await;
    browser.fill("#nb-new-name", "plant").await;
    browser
        .fill("#nb-new-servers", "http://127.0.0.1:1883")
        .await;
    browser
        .click(r#"#northbound-add-form button[type="submit"]"#)
        .await;
    browser
        .wait_for_text(
            "#northbound-add-form .field-error",
            "the URL's error",
            |t| t.contains("mqtt://"),
        )
        .await;
    browser.screenshot("northbound-refused").await;
    browser
        .fill(
            "#nb-new-servers",
            &format!("mqtt://127.0.0.1:{}", plant.port),
        )
        .await;
    browser
        .click(r#"#northbound-add-form button[type="submit"]"#)
        .await;
    browser
        .wait_for_text("#northbound", "the new northbound broker", |t| {
            t.contains("plant") && t.contains(&format!("mqtt://127.0.0.1:{}", plant.port))
        })
        .await;
    browser.screenshot("northbound-added").await;
    let nbirth = host
        .next_where("NBIRTH on the plant's broker", |m| {
            m.topic.contains("/NBIRTH/")
        })
        .await;
    assert_eq!(nbirth.topic, "spBv1.0/plant-a/NBIRTH/sparkedge");
    s.browser.close().await;
}
