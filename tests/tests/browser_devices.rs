//! The main flow of the Devices and Tags pages in a real browser (headless Chromium), against
//! a real Modbus PLC simulator: what an OT engineer does the first time, from the browser
//! alone. Screenshots of every page checked go to `target/browser-screenshots/devices-flow/`.

use std::process::Command;

use system_tests::browser::Browser;
use system_tests::{Appliance, KillOnDrop, free_port, sparkedge_binary};

/// A CSV of three tags, the last row's `datatype` as given.
fn csv(last_datatype: &str) -> String {
    format!(
        "device,location,name,datatype,address,unit,writable\n\
         press-plc,packaging/line3,uptime,uint16,hr:100,s,\n\
         press-plc,packaging/line3,setpoint,uint16,hr:10,m/min,yes\n\
         press-plc,packaging/line3/filler,fill_level,{last_datatype},hr:106,%,\n"
    )
}

/// First run through the setup link; a Modbus TCP device added and its connection tested (a
/// wrong port first, refused in the network's words);
/// a tag added through the form (a bad address refused beside the field first), its
/// registers shown under every byte order and the right one picked; a CSV with one bad row
/// reported by row and column and nothing imported, then the fixed file imported; live
/// values changing; a value written to the PLC and coming back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engineer_connects_a_modbus_plc_maps_its_tags_and_writes_a_value() {
    let plc_port = free_port();
    let _plc = KillOnDrop::spawn(
        Command::new(sparkedge_binary()).args([
            "sim",
            "modbus",
            "--listen",
            &format!("127.0.0.1:{plc_port}"),
        ]),
        "sparkedge sim modbus",
    );
    let data = tempfile::tempdir().unwrap();
    let mut appliance = Appliance::start(data.path(), &[]);
    let printed = appliance.stdout_until("first login");
    let setup_link = printed
        .last()
        .and_then(|line| line.split_whitespace().find(|w| w.starts_with("http://")))
        .unwrap_or_else(|| panic!("no setup link in {printed:?}"))
        .to_owned();
    let base = format!("http://127.0.0.1:{}", appliance.web_port);
    let browser = Browser::start("devices-flow").await;

    // First run: the admin's password, through the printed one-time link.
    browser.goto(&setup_link).await;
    browser.fill("#username", "anna").await;
    browser.fill("#password", "correct horse battery").await;
    browser.fill("#password2", "correct horse battery").await;
    browser.click(r#"form[action="/setup"] button"#).await;
    browser.wait_for_page_text("anna (admin)").await;

    // The device list: the demo's simulated PLC.
    browser.goto(&format!("{base}/devices")).await;
    browser.wait_for_page_text("demo-plc").await;
    browser.screenshot("devices").await;

    // A Modbus TCP device pointing at the simulator; the connection tested before saving.
    browser.click("#add-device").await;
    browser.wait_for_page_text("Test connection").await;
    browser.fill("#d-name", "press-plc").await;
    browser.select("#d-driver", "modbus-tcp").await;
    browser.fill("#d-host", "127.0.0.1").await;
    browser.fill("#d-period_ms", "200").await;
    // A port nobody listens on: the test says what the network said.
    browser.fill("#d-port", &free_port().to_string()).await;
    browser.click("#test-connection").await;
    browser
        .wait_for_text("#test-result", "the connection test fails", |t| {
            t.starts_with("✗") && t.contains("refused")
        })
        .await;
    browser.screenshot("device-new-refused").await;
    browser.fill("#d-port", &plc_port.to_string()).await;
    browser.click("#test-connection").await;
    browser
        .wait_for_text("#test-result", "the connection test succeeds", |t| {
            t.starts_with("✓ Connected")
        })
        .await;
    browser.screenshot("device-new-tested").await;
    browser.click("#save-device").await;
    browser
        .wait_for_page_text("No tags on this device yet")
        .await;
    assert!(browser.current_url().await.ends_with("/devices/press-plc"));
    browser.screenshot("device-page").await;

    // A tag through the form: a bad address is refused beside the field, nothing saved.
    browser.click("#add-tag").await;
    browser.wait_for_page_text("Decode preview").await;
    browser.fill("#t-name", "temperature").await;
    browser.select("#t-location", "packaging/line3").await;
    browser.select("#t-datatype", "float32").await;
    browser.fill("#t-address", "hr:70000").await;
    browser.fill("#t-unit", "°C").await;
    browser.click("#save-tag").await;
    browser
        .wait_for_text(
            "#t-address + .field-error",
            "the bad address is named beside its field",
            |t| t.contains("0 to 65535"),
        )
        .await;
    browser.screenshot("tag-field-error").await;

    // The registers at hr:110 under every order: the simulator stores that sine low word
    // first, so only CDAB reads as a value between 0 and 100.
    browser.fill("#t-address", "hr:110").await;
    browser.click("#preview-read").await;
    browser
        .wait_for_text("#preview-orders", "the decode preview", |t| {
            t.contains("CDAB") && t.contains("DCBA")
        })
        .await;
    let selected = browser
        .wait_for_text("#preview-orders tr.selected", "the tag's order", |t| {
            !t.is_empty()
        })
        .await;
    assert!(selected.starts_with("ABCD"), "{selected}");
    let cdab = browser
        .wait_for_text(
            r#"#preview-orders tr[data-order="CDAB"] td:nth-child(3)"#,
            "CDAB decodes",
            |t| t.parse::<f64>().is_ok(),
        )
        .await;
    let value: f64 = cdab.parse().unwrap();
    assert!((0.0..=100.0).contains(&value), "CDAB reads {value}");
    browser.screenshot("decode-preview").await;
    browser
        .click(r#"#preview-orders tr[data-order="CDAB"] button"#)
        .await;
    browser
        .wait_for_text("#preview-orders tr.selected", "CDAB is chosen", |t| {
            t.starts_with("CDAB")
        })
        .await;
    // Read once through the device as the form has it now, unsaved.
    browser.click("#test-read").await;
    browser
        .wait_for_text("#read-result", "the test read", |t| t.contains("(good)"))
        .await;
    browser.screenshot("test-read").await;
    browser.click("#save-tag").await;
    browser
        .wait_for_text(
            r#"tr[data-tag="packaging/line3/temperature"] td.value"#,
            "the new tag's live value",
            |t| t.parse::<f64>().is_ok_and(|v| (0.0..=100.0).contains(&v)),
        )
        .await;

    // CSV import: one bad row is named by row and column, and nothing is imported.
    let bad = data.path().join("tags-bad.csv");
    std::fs::write(&bad, csv("flaot32")).unwrap();
    browser.goto(&format!("{base}/tags/import")).await;
    browser.wait_for_page_text("Import tags from CSV").await;
    browser
        .find("#csv-file")
        .await
        .send_keys(bad.to_str().unwrap())
        .await
        .unwrap();
    browser
        .wait_for_text("#csv-file-info", "the file is read", |t| {
            t.contains("4 lines")
        })
        .await;
    browser.click("#csv-preview").await;
    let error = browser
        .wait_for_text("#import-errors tbody tr", "the bad row", |t| {
            t.contains("flaot32")
        })
        .await;
    // Row 4 of the file (the header is row 1), its datatype column, the value written.
    let cells: Vec<&str> = error.split_whitespace().take(3).collect();
    assert_eq!(cells, ["4", "datatype", "flaot32"], "{error}");
    browser
        .wait_for_text("#import-result", "nothing imported", |t| {
            t.contains("1 problem in 1 row. Nothing was imported")
        })
        .await;
    assert!(
        !browser
            .find("#csv-import")
            .await
            .is_enabled()
            .await
            .unwrap()
    );
    browser.screenshot("csv-bad-row").await;
    browser.goto(&format!("{base}/devices/press-plc")).await;
    browser.wait_for_page_text("temperature").await;
    let tags = browser
        .wait_for_text("#tags tbody", "the device's tags", |_| true)
        .await;
    assert!(!tags.contains("uptime"), "a row was imported: {tags}");

    // The fixed file: previewed, then imported.
    let good = data.path().join("tags.csv");
    std::fs::write(&good, csv("float32")).unwrap();
    browser.goto(&format!("{base}/tags/import")).await;
    browser
        .find("#csv-file")
        .await
        .send_keys(good.to_str().unwrap())
        .await
        .unwrap();
    browser
        .wait_for_text("#csv-file-info", "the file is read", |t| {
            t.contains("4 lines")
        })
        .await;
    browser.click("#csv-preview").await;
    browser
        .wait_for_text("#import-result", "the preview", |t| {
            t.contains("3 rows are valid: 3 added, 0 changed, 0 removed")
        })
        .await;
    browser.screenshot("csv-preview").await;
    browser.click("#csv-import").await;
    browser
        .wait_for_text("#import-result", "the import", |t| {
            t.contains("Imported 3 rows")
        })
        .await;
    browser.screenshot("csv-imported").await;

    // Live values on the device page: the PLC's seconds counter goes up.
    browser.goto(&format!("{base}/devices/press-plc")).await;
    let uptime = r#"tr[data-tag="packaging/line3/uptime"] td.value"#;
    let first = browser
        .wait_for_text(uptime, "uptime shows a value", |t| t.parse::<u64>().is_ok())
        .await;
    browser
        .wait_for_text(uptime, "uptime changes", |t| {
            t != first && t.parse::<u64>().is_ok()
        })
        .await;
    browser.screenshot("live-values").await;

    // Write 42 to the writable register, confirm, and see it come back from the PLC.
    browser
        .click(r#"tr[data-tag="packaging/line3/setpoint"] button.write"#)
        .await;
    browser.fill("#write-value", "42").await;
    browser.click("#write-next").await;
    browser
        .wait_for_text("#write-question", "the confirmation", |t| {
            t == "Write 42 to packaging/line3/setpoint on press-plc?"
        })
        .await;
    browser.screenshot("write-confirm").await;
    browser.click("#write-send").await;
    browser
        .wait_for_text("#write-result", "the PLC's confirmation", |t| {
            t.contains("press-plc confirmed the write")
        })
        .await;
    browser
        .wait_for_text("#write-live", "the written value read back", |t| t == "42")
        .await;
    browser.screenshot("write-done").await;
    browser.click("#write-done .write-close").await;
    browser
        .wait_for_text(
            r#"tr[data-tag="packaging/line3/setpoint"] td.value"#,
            "the table shows the written value",
            |t| t == "42",
        )
        .await;
    browser.close().await;
}

/// An OPC UA server browsed from the device page: the tree opens one level per click, ticked
/// variables become tags named after their display names with the server's types, a refused
/// name is marked in its row (and nothing added), and the added tags stream live values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engineer_browses_an_opc_ua_server_and_adds_ticked_variables_as_tags() {
    let server_port = free_port();
    let _server = KillOnDrop::spawn(
        Command::new(sparkedge_binary()).args([
            "sim",
            "opcua",
            "--listen",
            &format!("127.0.0.1:{server_port}"),
        ]),
        "sparkedge sim opcua",
    );
    let data = tempfile::tempdir().unwrap();
    let mut appliance = Appliance::start(data.path(), &[]);
    let printed = appliance.stdout_until("first login");
    let setup_link = printed
        .last()
        .and_then(|line| line.split_whitespace().find(|w| w.starts_with("http://")))
        .unwrap_or_else(|| panic!("no setup link in {printed:?}"))
        .to_owned();
    let base = format!("http://127.0.0.1:{}", appliance.web_port);
    let browser = Browser::start("opc-ua-browse").await;
    browser.goto(&setup_link).await;
    browser.fill("#username", "anna").await;
    browser.fill("#password", "correct horse battery").await;
    browser.fill("#password2", "correct horse battery").await;
    browser.click(r#"form[action="/setup"] button"#).await;
    browser.wait_for_page_text("anna (admin)").await;

    // The device: only the OPC UA settings show once the driver is chosen.
    browser.goto(&format!("{base}/devices/new")).await;
    browser.wait_for_page_text("Test connection").await;
    browser.fill("#d-name", "line-opc").await;
    browser.select("#d-driver", "opc-ua").await;
    assert!(!browser.find("#d-host").await.is_displayed().await.unwrap());
    browser
        .fill(
            "#d-endpoint",
            &format!("opc.tcp://127.0.0.1:{server_port}/"),
        )
        .await;
    browser.click("#test-connection").await;
    browser
        .wait_for_text("#test-result", "the connection test succeeds", |t| {
            t.starts_with("✓ Connected")
        })
        .await;
    browser.screenshot("device-new-opc-ua").await;
    browser.click("#save-device").await;
    browser
        .wait_for_page_text("No tags on this device yet")
        .await;

    // Objects › Sim › Changing, one level per click.
    browser.click("#browse-open").await;
    browser.click(r#"button[aria-label="expand Sim"]"#).await;
    browser
        .click(r#"button[aria-label="expand Changing"]"#)
        .await;
    browser.click(r#"input[aria-label="select Double"]"#).await;
    browser.click(r#"input[aria-label="select Int32"]"#).await;
    browser
        .wait_for_text("#browse-count", "two selected", |t| t == "2 selected")
        .await;
    let first = browser
        .find(r#"#browse-selected input[name="[0].name"]"#)
        .await;
    assert_eq!(
        first.prop("value").await.unwrap().as_deref(),
        Some("Double")
    );
    let types = browser
        .wait_for_text("#browse-selected tbody", "the server's types", |_| true)
        .await;
    assert!(
        types.contains("float64") && types.contains("int32"),
        "{types}"
    );

    // A name the model refuses is marked in its row, and neither tag is added.
    browser
        .fill(r#"#browse-selected input[name="[0].name"]"#, "line speed")
        .await;
    browser.click("#browse-add").await;
    browser
        .wait_for_text(
            r#"#browse-selected input[name="[0].name"] + .field-error"#,
            "the refused name is marked in its row",
            |t| t.contains("letters, digits"),
        )
        .await;
    browser.screenshot("browse-refused-name").await;
    browser
        .fill(r#"#browse-selected input[name="[0].name"]"#, "line_speed")
        .await;
    browser.click("#browse-add").await;

    // Added: the page reloads with both tags, their values streaming from the server.
    let speed = r#"tr[data-tag="packaging/line3/line_speed"] td.value"#;
    let first = browser
        .wait_for_text(speed, "line_speed shows a value", |t| {
            t.parse::<f64>().is_ok()
        })
        .await;
    browser
        .wait_for_text(speed, "line_speed changes", |t| {
            t != first && t.parse::<f64>().is_ok()
        })
        .await;
    browser
        .wait_for_text(
            r#"tr[data-tag="packaging/line3/Int32"] td.value"#,
            "Int32 shows a value",
            |t| t.parse::<i64>().is_ok(),
        )
        .await;
    browser
        .wait_for_text(
            r#"[data-device-state="line-opc"]"#,
            "the device reports online",
            |t| t == "online",
        )
        .await;
    browser.screenshot("browse-added").await;
    browser.close().await;
}
