//! The dashboard in a real browser: Debian's headless Chromium driven through chromedriver
//! (WebDriver, with fantoccini). A real research session runs on the embedded services while
//! the page is open: the page follows it without reloading, ends with the session, and its
//! leaderboard rows and chart marks match the registry. A candidate injected through the
//! page's form is evaluated and shown as the person's. Markup in a goal never runs. A full
//! screenshot of the session page is kept (`RA_SCREENSHOT_DIR`, CI keeps it).
//!
//! Needs `chromium` and `chromium-driver` (Debian packages): skipped loudly without them,
//! failed under `RA_REQUIRE_TEST_DEPS=1`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use ra_integration_tests::records::SessionRecords;
use ra_proto::common::v1 as common;
use ra_proto::planner::v1 as pb;
use ra_proto::planner::v1::planner_service_client::PlannerServiceClient;
use ra_proto::registry::v1 as reg;
use ra_proto::registry::v1::registry_service_client::RegistryServiceClient;
use serde_json::{Value, json};

/// chromedriver and a headless Chromium session it drives; the driver dies with the test.
struct Browser {
    client: Client,
    driver: tokio::process::Child,
}

fn program(variable: &str, default: &str) -> Option<PathBuf> {
    let path = std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from);
    path.is_file().then_some(path)
}

async fn browser(test: &str) -> Option<Browser> {
    let (Some(chromium), Some(chromedriver)) = (
        program("RA_CHROMIUM", "/usr/bin/chromium"),
        program("RA_CHROMEDRIVER", "/usr/bin/chromedriver"),
    ) else {
        ra_integration_tests::skip_or_fail(
            test,
            "no Chromium: install Debian's chromium and chromium-driver (or set RA_CHROMIUM and RA_CHROMEDRIVER)",
        );
        return None;
    };
    let port = ra_integration_tests::free_port();
    let driver = tokio::process::Command::new(&chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start chromedriver");
    let capabilities: serde_json::Map<String, Value> = serde_json::from_value(json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,2400", "--no-first-run", "--disable-extensions"],
        }
    }))
    .expect("capabilities");
    let started = Instant::now();
    let client = loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => break client,
            Err(error) if started.elapsed() < Duration::from_secs(30) => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("chromedriver on port {port} did not start a browser: {error}"),
        }
    };
    Some(Browser { client, driver })
}

impl Browser {
    async fn close(mut self) {
        let _ = self.client.close().await;
        let _ = self.driver.kill().await;
    }

    async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Runs `script` until `done` accepts its value, or panics after `limit`.
    async fn until(
        &self,
        what: &str,
        limit: Duration,
        script: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            let value = self.eval(script).await;
            if done(&value) {
                return value;
            }
            assert!(
                started.elapsed() < limit,
                "{what}: still {value} after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// A screenshot of the page, kept where CI collects them.
    async fn keep_screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = std::env::var_os("RA_SCREENSHOT_DIR").map_or_else(
            || std::env::temp_dir().join("research-agent-screenshots"),
            PathBuf::from,
        );
        std::fs::create_dir_all(&dir).expect("screenshot folder");
        let path = dir.join(name);
        std::fs::write(&path, png).expect("write screenshot");
        eprintln!("screenshot: {}", path.display());
        path
    }
}

async fn stack() -> (ra_cli::Stack, tempfile::TempDir) {
    ra_integration_tests::offline_stack(|options| options.max_concurrent_jobs = 2).await
}

fn terminal(state: pb::ResearchState) -> bool {
    !matches!(
        state,
        pb::ResearchState::Running | pb::ResearchState::Stopping | pb::ResearchState::Unspecified
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_session_page_follows_a_real_session_and_matches_the_registry() {
    let test = "the_session_page_follows_a_real_session_and_matches_the_registry";
    let Some(browser) = browser(test).await else {
        return;
    };
    let (stack, _root) = stack().await;
    let base = stack.dashboard_url().expect("dashboard");
    let mut planner = PlannerServiceClient::connect(stack.planner_url())
        .await
        .expect("planner");
    let mut registry = RegistryServiceClient::connect(stack.registry_url())
        .await
        .expect("registry");
    // The README's first session at a fixed 8 epochs (the cap the planner would scale up for
    // this small set): several candidates, tens of seconds on 2 cores, so the page is watched
    // while it runs.
    let started = planner
        .start_research(pb::StartResearchRequest {
            goal_text: "a model for synthetic-text with at least 90% accuracy within 10 candidates"
                .into(),
            seed: 4,
            max_epochs: 8,
            ..Default::default()
        })
        .await
        .expect("StartResearch")
        .into_inner();
    let id = started.research_id;

    // The list links to the session; a click opens it.
    browser
        .client
        .goto(&format!("{base}/"))
        .await
        .expect("open the list");
    browser
        .client
        .find(Locator::Css(&format!("tr[data-id='{id}'] a")))
        .await
        .expect("the session is listed")
        .click()
        .await
        .expect("click");
    let url = browser.client.current_url().await.expect("url");
    assert!(url.path().ends_with(&format!("/sessions/{id}")), "{url}");

    // The page follows the session without reloading: a mark set now survives while the
    // page's position and rows grow, until the session's end arrives.
    let first = browser
        .eval(
            "window.__kept = true; return Number(document.querySelector('main').dataset.position);",
        )
        .await;
    let first = first.as_f64().expect("a position");
    let live = browser
        .until(
            "the page follows the session's records",
            Duration::from_secs(240),
            "return { kept: window.__kept === true, position: Number(document.querySelector('main').dataset.position), rows: document.querySelectorAll('tr.candidate-row').length, status: document.querySelector('[data-status]').dataset.status };",
            |v| v["position"].as_f64().is_some_and(|p| p > first + 3.0) && v["rows"].as_u64().is_some_and(|r| r >= 1),
        )
        .await;
    assert_eq!(
        live["kept"],
        json!(true),
        "updated in place, not reloaded: {live}"
    );

    // The session ends; the page says so without a reload.
    let started = Instant::now();
    let status = loop {
        let status = planner
            .get_research(pb::GetResearchRequest {
                research_id: id.clone(),
            })
            .await
            .expect("GetResearch")
            .into_inner();
        if terminal(status.state()) {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the session did not end"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let expected = status
        .state()
        .as_str_name()
        .trim_start_matches("RESEARCH_STATE_")
        .to_owned();
    let ended = browser
        .until(
            "the page shows the session's end",
            Duration::from_secs(60),
            "return { kept: window.__kept === true, status: document.querySelector('[data-status]').dataset.status, live: document.querySelector('main').hasAttribute('data-live') };",
            |v| v["status"].as_str() == Some(expected.as_str()),
        )
        .await;
    assert_eq!(ended["kept"], json!(true), "{ended}");

    // Every leaderboard row and CI bar carries the registry's latest evaluation of its candidate.
    let evaluations = SessionRecords::read(&mut registry, &id).await.evaluations;
    let mut latest: HashMap<String, common::Aggregate> = HashMap::new();
    for evaluation in evaluations {
        if let Some(aggregate) = evaluation.aggregate.filter(|a| a.n > 0) {
            latest.insert(evaluation.candidate_id, aggregate);
        }
    }
    let marks = browser
        .eval(
            "return { rows: Array.from(document.querySelectorAll('tr.candidate-row[data-mean]')).map(r => [r.dataset.candidate, Number(r.dataset.mean), Number(r.dataset.ciLow), Number(r.dataset.ciHigh)]), bars: Array.from(document.querySelectorAll('svg.ci-chart g.ci-bar')).map(g => [g.dataset.candidate, Number(g.dataset.mean)]), curves: document.querySelectorAll('svg.curves-chart g.curve polyline, svg.curves-chart g.curve circle').length, target: Number(document.querySelector('svg.ci-chart line.target').dataset.value) };",
        )
        .await;
    let rows = marks["rows"].as_array().expect("rows");
    assert_eq!(
        rows.len(),
        latest.len(),
        "one row per evaluated candidate: {marks}"
    );
    for row in rows {
        let candidate = row[0].as_str().expect("id");
        let aggregate = &latest[candidate];
        for (index, expected) in [
            (1, aggregate.mean),
            (2, aggregate.ci_low),
            (3, aggregate.ci_high),
        ] {
            let shown = row[index].as_f64().expect("number");
            assert!(
                (shown - expected).abs() <= 1e-12 * expected.abs().max(1.0),
                "{candidate}: {shown} vs {expected}"
            );
        }
    }
    assert_eq!(
        marks["bars"].as_array().map(Vec::len),
        Some(latest.len()),
        "{marks}"
    );
    assert!(marks["curves"].as_u64().is_some_and(|c| c >= 1), "{marks}");
    assert_eq!(marks["target"], json!(0.9));

    let shot = browser.keep_screenshot("dashboard-session.png").await;
    assert!(
        std::fs::metadata(&shot).expect("kept").len() > 10_000,
        "a real page"
    );
    browser.close().await;
    stack.stop().await.expect("stack stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markup_in_a_goal_is_shown_and_never_runs() {
    let test = "markup_in_a_goal_is_shown_and_never_runs";
    let Some(browser) = browser(test).await else {
        return;
    };
    let (stack, _root) = stack().await;
    let base = stack.dashboard_url().expect("dashboard");
    let mut registry = RegistryServiceClient::connect(stack.registry_url())
        .await
        .expect("registry");
    let goal = "<script>window.__ran = 1</script><img src=x onerror=\"window.__ran = 2\"> 90% — ✓";
    let experiment = registry
        .create_experiment(reg::CreateExperimentRequest {
            name: "escaping".into(),
            goal: Some(common::ResearchGoal {
                text: goal.into(),
                dataset: "iris".into(),
                ..Default::default()
            }),
            config_json: "{}".into(),
            ..Default::default()
        })
        .await
        .expect("experiment")
        .into_inner();
    for path in ["/".to_owned(), format!("/sessions/{}", experiment.id)] {
        browser
            .client
            .goto(&format!("{base}{path}"))
            .await
            .expect("open");
        let seen = browser
            .eval("return { ran: window.__ran === undefined ? null : window.__ran, text: (document.querySelector('#goal') || document.querySelector('tr.session a')).textContent };")
            .await;
        assert_eq!(seen["ran"], Value::Null, "{path}: the markup ran");
        assert_eq!(seen["text"].as_str(), Some(goal), "{path}: shown as text");
    }
    // An unknown session is a 404 page in the browser too.
    let unknown = ra_client::ids::EntityKind::Experiment.new_id();
    browser
        .client
        .goto(&format!("{base}/sessions/{unknown}"))
        .await
        .expect("open");
    let heading = browser
        .eval("return document.querySelector('h1').textContent;")
        .await;
    assert_eq!(heading.as_str(), Some("404 · Not found"));
    browser.close().await;
    stack.stop().await.expect("stack stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_candidate_injected_through_the_page_is_evaluated_as_theirs() {
    let test = "a_candidate_injected_through_the_page_is_evaluated_as_theirs";
    let Some(browser) = browser(test).await else {
        return;
    };
    let (stack, _root) = stack().await;
    let base = stack.dashboard_url().expect("dashboard");
    let mut planner = PlannerServiceClient::connect(stack.planner_url())
        .await
        .expect("planner");
    let mut registry = RegistryServiceClient::connect(stack.registry_url())
        .await
        .expect("registry");
    // Unreachable: the session runs its six candidates, time enough to inject one.
    let started = planner
        .start_research(pb::StartResearchRequest {
            goal_text:
                "an MLP for synthetic-tabular with at least 99.9% accuracy within 6 candidates"
                    .into(),
            seed: 11,
            ..Default::default()
        })
        .await
        .expect("StartResearch")
        .into_inner();
    let id = started.research_id;
    let page = format!("{base}/sessions/{id}");
    browser.client.goto(&page).await.expect("open the session");
    // The form is prefilled with the best (or latest) candidate once there is one; a person
    // edits it: here, a new name and a learning rate of their own.
    let spec = browser
        .until(
            "the inject form is prefilled",
            Duration::from_secs(120),
            "const t = document.querySelector('#inject-form textarea'); return t ? t.value : '';",
            |v| v.as_str().is_some_and(|s| s.contains("\"model\"")),
        )
        .await;
    let mut spec: Value =
        serde_json::from_str(spec.as_str().expect("text")).expect("the prefilled spec is JSON");
    spec["model"]["name"] = json!("erins-pick");
    spec["train"]["learning_rate"] = json!(0.003);
    browser
        .client
        .execute(
            "document.querySelector('#inject-form textarea').value = arguments[0]; document.querySelector('#inject-form input[name=by]').value = 'erin';",
            vec![json!(serde_json::to_string_pretty(&spec).expect("json"))],
        )
        .await
        .expect("fill the form");
    browser
        .client
        .find(Locator::Css("#inject-form button[type=submit]"))
        .await
        .expect("the inject button")
        .click()
        .await
        .expect("submit");
    let result = browser
        .until(
            "the action's result page",
            Duration::from_secs(30),
            "const r = document.querySelector('#action-result'); return r ? r.textContent : '';",
            |v| v.as_str().is_some_and(|s| !s.is_empty()),
        )
        .await;
    assert!(
        result
            .as_str()
            .is_some_and(|s| s.starts_with("Candidate queued")),
        "{result}"
    );

    // The session's page shows erin's candidate evaluated, with who proposed it.
    browser
        .client
        .goto(&page)
        .await
        .expect("back to the session");
    let shown = browser
        .until(
            "erin's candidate is evaluated on the page",
            Duration::from_secs(300),
            "const s = Array.from(document.querySelectorAll('section.candidate')).find(s => s.textContent.includes('proposed by erin')); if (!s) return null; const row = document.querySelector(`tr.candidate-row[data-candidate='${s.id}']`); return { id: s.id, strategy: row ? row.children[2].textContent : null, mean: row ? row.dataset.mean : null };",
            |v| v["mean"].is_string(),
        )
        .await;
    assert_eq!(shown["strategy"], json!("user"), "{shown}");
    let candidate = shown["id"].as_str().expect("id").to_owned();
    let evaluations = SessionRecords::read(&mut registry, &id).await.evaluations;
    let recorded = evaluations
        .iter()
        .rev()
        .find(|e| e.candidate_id == candidate)
        .and_then(|e| e.aggregate.clone())
        .expect("the registry has its evaluation");
    let mean: f64 = shown["mean"]
        .as_str()
        .and_then(|m| m.parse().ok())
        .expect("a number");
    assert!(
        (mean - recorded.mean).abs() < 1e-12,
        "{mean} vs {}",
        recorded.mean
    );
    browser.keep_screenshot("dashboard-injected.png").await;
    let _ = planner
        .stop_research(pb::StopResearchRequest {
            research_id: id,
            reason: "test over".into(),
        })
        .await;
    browser.close().await;
    stack.stop().await.expect("stack stops");
}
