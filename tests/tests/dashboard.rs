//! dashboard-svc over HTTP, against the embedded services on real gRPC: a session's records
//! written into the registry (candidates, trials in every end state, metrics, evaluations, an
//! LLM exchange with markup in it, an artifact) and read back from every page — the list and
//! its filters, the session's leaderboard and charts against the registry's numbers, the Welch
//! comparison, downloads, the live event stream — and the error pages for unknown ids, bad
//! queries, cross-site actions and a read-only dashboard.

use std::collections::HashMap;
use std::time::Duration;

use ra_integration_tests::fixtures;
use ra_proto::common::v1 as common;
use ra_proto::registry::v1 as reg;
use ra_proto::registry::v1::registry_service_client::RegistryServiceClient;
use tonic::transport::Channel;

const GOAL: &str = "an MLP for iris <script>alert('goal')</script> ≥ 90% — ünïcödé";
const LLM_ANSWER: &str = "<script>alert('llm')</script>{\"layers\": []}";

async fn stack() -> (ra_cli::Stack, tempfile::TempDir) {
    ra_integration_tests::offline_stack(|_| {}).await
}

/// What a session's records were written as, to compare the pages with.
struct Written {
    experiment_id: String,
    /// Candidate id → (mean, ci_low, ci_high, p) of its evaluation, if any.
    evaluations: HashMap<String, (f64, f64, f64, f64)>,
    candidates: Vec<String>,
    /// Trial id → (state, points written).
    trials: HashMap<String, (&'static str, usize)>,
    evaluation_ids: Vec<String>,
    artifact: (String, Vec<u8>),
}

async fn write_session(
    registry: &mut RegistryServiceClient<Channel>,
    goal: &str,
    means: &[f64],
) -> Written {
    let experiment = registry
        .create_experiment(reg::CreateExperimentRequest {
            name: "dashboard test".into(),
            goal: Some(common::ResearchGoal {
                text: goal.into(),
                dataset: "iris".into(),
                target: Some(common::Target {
                    metric: "val_accuracy".into(),
                    threshold: 0.9,
                    direction: common::Direction::Maximize as i32,
                    open_ended: false,
                }),
                confidence: 0.95,
                num_seeds: 3,
                max_seeds: 5,
                budget: Some(common::Budget {
                    max_candidates: 5,
                    max_total_seeds: 20,
                    max_wall_seconds: 600,
                }),
                model_family: String::new(),
            }),
            config_json: r#"{"strategy":"evolution"}"#.into(),
            ..Default::default()
        })
        .await
        .expect("create experiment")
        .into_inner();
    let mut written = Written {
        experiment_id: experiment.id.clone(),
        evaluations: HashMap::new(),
        candidates: Vec::new(),
        trials: HashMap::new(),
        evaluation_ids: Vec::new(),
        artifact: (String::new(), Vec::new()),
    };
    // One more candidate than means: the last is never evaluated.
    for index in 0..=means.len() {
        let candidate = registry
            .create_candidate(reg::CreateCandidateRequest {
                experiment_id: experiment.id.clone(),
                model: Some(fixtures::mlp()),
                train: Some(fixtures::adam(0.01)),
                rationale: format!("candidate {index}: <b>bold</b> idea"),
                parent_id: written.candidates.first().cloned().unwrap_or_default(),
                strategy: "evolution".into(),
                ..Default::default()
            })
            .await
            .expect("create candidate")
            .into_inner();
        written.candidates.push(candidate.id.clone());
        let Some(&mean) = means.get(index) else {
            continue;
        };
        let mut trial_ids = Vec::new();
        for (seed, state) in [
            (0, common::TrialState::Succeeded),
            (1, common::TrialState::Succeeded),
            (2, common::TrialState::Pruned),
            (3, common::TrialState::Failed),
        ] {
            // Two finished seeds at mean ± 0.01: Welch has a variance to work with.
            let final_value = mean + if seed == 0 { -0.01 } else { 0.01 };
            let trial = registry
                .create_trial(reg::CreateTrialRequest {
                    candidate_id: candidate.id.clone(),
                    seed,
                    state: common::TrialState::Running as i32,
                    device: "flex".into(),
                    ..Default::default()
                })
                .await
                .expect("create trial")
                .into_inner();
            let epochs = match state {
                common::TrialState::Succeeded => 5,
                common::TrialState::Pruned => 2,
                _ => 0,
            };
            let points: Vec<_> = (1..=epochs)
                .map(|epoch| fixtures::point("val_accuracy", epoch, mean - 0.1 / epoch as f64))
                .collect();
            registry
                .update_trial(reg::UpdateTrialRequest {
                    id: trial.id.clone(),
                    state: Some(state as i32),
                    usage: Some(common::ResourceUsage {
                        wall_seconds: 1.5,
                        cpu_seconds: 2.5,
                        peak_rss_bytes: 64 * 1024 * 1024,
                        output_bytes: 100,
                    }),
                    final_metrics: if epochs > 0 {
                        HashMap::from([("val_accuracy".to_owned(), final_value)])
                    } else {
                        HashMap::new()
                    },
                    exit_reason: if state == common::TrialState::Failed {
                        common::ExitReason::OutOfMemory as i32
                    } else {
                        common::ExitReason::Completed as i32
                    },
                    message: (state == common::TrialState::Failed)
                        .then(|| "killed at the memory limit".to_owned()),
                    points,
                    ..Default::default()
                })
                .await
                .expect("finish trial");
            let name = match state {
                common::TrialState::Succeeded => "succeeded",
                common::TrialState::Pruned => "pruned",
                _ => "failed",
            };
            written
                .trials
                .insert(trial.id.clone(), (name, epochs as usize));
            trial_ids.push(trial.id);
        }
        let (low, high, p) = (
            mean - 0.02,
            mean + 0.02,
            if mean > 0.9 { 0.01 } else { 0.6 },
        );
        let evaluation = registry
            .create_evaluation(reg::CreateEvaluationRequest {
                candidate_id: candidate.id.clone(),
                trial_ids,
                target: Some(common::Target {
                    metric: "val_accuracy".into(),
                    threshold: 0.9,
                    direction: common::Direction::Maximize as i32,
                    open_ended: false,
                }),
                aggregate: Some(common::Aggregate {
                    metric: "val_accuracy".into(),
                    n: 3,
                    mean,
                    std_dev: 0.01,
                    min: mean - 0.01,
                    max: mean + 0.01,
                    std_error: 0.006,
                    ci_low: low,
                    ci_high: high,
                    confidence: 0.95,
                }),
                decision: if mean > 0.9 {
                    common::GoalDecision::Achieved
                } else {
                    common::GoalDecision::NotAchieved
                } as i32,
                p_value: p,
                explanation: "test".into(),
                ..Default::default()
            })
            .await
            .expect("create evaluation")
            .into_inner();
        written.evaluation_ids.push(evaluation.id);
        written
            .evaluations
            .insert(candidate.id.clone(), (mean, low, high, p));
    }
    for (action, reasoning, inputs) in [
        (
            "llm_exchange",
            format!("LLM try 1: accepted\n\n--- response ---\n{LLM_ANSWER}"),
            r#"{"prompt_tokens": 1200, "completion_tokens": 150, "latency_ms": 3400, "accepted": true}"#,
        ),
        (
            "continue",
            "No candidate reached the goal yet <i>italic</i>.".to_owned(),
            r#"{"candidates": 2}"#,
        ),
    ] {
        registry
            .create_decision(reg::CreateDecisionRequest {
                experiment_id: experiment.id.clone(),
                action: action.into(),
                reasoning,
                inputs_json: inputs.into(),
                candidate_id: written.candidates[0].clone(),
                ..Default::default()
            })
            .await
            .expect("create decision");
    }
    let content = b"# report\nwith bytes \x00\x01\x02".to_vec();
    let upload = futures::stream::iter([reg::UploadArtifactRequest {
        metadata: Some(reg::ArtifactMetadata {
            name: "report.md".into(),
            content_type: "text/markdown".into(),
            experiment_id: experiment.id.clone(),
            ..Default::default()
        }),
        data: content.clone(),
    }]);
    let artifact = registry
        .upload_artifact(upload)
        .await
        .expect("upload artifact")
        .into_inner();
    written.artifact = (artifact.sha256, content);
    written
}

/// Every value of attribute `name` on elements whose opening tag contains `marker` (several
/// markers joined by `&&` must all be there).
fn attributes(html: &str, marker: &str, name: &str) -> Vec<String> {
    html.split('<')
        .map(|tag| tag.split('>').next().unwrap_or(tag))
        .filter(|tag| marker.split("&&").all(|m| tag.contains(m)))
        .filter_map(|tag| {
            let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
            let end = tag[start..].find('"')? + start;
            Some(tag[start..end].to_owned())
        })
        .collect()
}

async fn get(http: &reqwest::Client, url: &str) -> (u16, String) {
    let response = http.get(url).send().await.expect("GET");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_show_what_the_registry_holds() {
    let (stack, _root) = stack().await;
    let base = stack.dashboard_url().expect("the stack serves a dashboard");
    let mut registry = RegistryServiceClient::connect(stack.registry_url())
        .await
        .expect("registry");
    let session = write_session(&mut registry, GOAL, &[0.85, 0.95]).await;
    let other = write_session(&mut registry, "digits mlp", &[0.7]).await;
    let http = reqwest::Client::new();

    // The list: both sessions, their best means; filters and sorting in the query.
    let (status, list) = get(&http, &format!("{base}/")).await;
    assert_eq!(status, 200, "{list}");
    let ids = attributes(&list, "tr class=\"session\"", "data-id");
    assert_eq!(
        ids,
        [other.experiment_id.clone(), session.experiment_id.clone()],
        "newest first"
    );
    let means = attributes(&list, "best-mean", "data-mean");
    assert_eq!(means, ["0.7", "0.95"]);
    let (_, sorted) = get(&http, &format!("{base}/?sort=best")).await;
    assert_eq!(
        attributes(&sorted, "tr class=\"session\"", "data-id"),
        [session.experiment_id.clone(), other.experiment_id.clone()]
    );
    let (_, filtered) = get(&http, &format!("{base}/?q=DIGITS")).await;
    assert_eq!(
        attributes(&filtered, "tr class=\"session\"", "data-id"),
        std::slice::from_ref(&other.experiment_id)
    );
    let (_, by_status) = get(&http, &format!("{base}/?status=succeeded")).await;
    assert!(attributes(&by_status, "tr class=\"session\"", "data-id").is_empty());
    let (status, bad) = get(&http, &format!("{base}/?status=finished")).await;
    assert_eq!(status, 400, "{bad}");
    assert!(bad.contains("running, paused, succeeded"), "{bad}");

    // The session: the leaderboard and the CI chart carry the registry's numbers.
    let page_url = format!("{base}/sessions/{}", session.experiment_id);
    let (status, page) = get(&http, &page_url).await;
    assert_eq!(status, 200, "{page}");
    let rows = attributes(&page, "candidate-row", "data-candidate");
    assert_eq!(rows.len(), 3, "every candidate has a row");
    assert_eq!(rows[0], session.candidates[1], "the best mean ranks first");
    assert_eq!(
        rows[2], session.candidates[2],
        "the unevaluated candidate ranks last"
    );
    for (candidate, (mean, low, high, p)) in &session.evaluations {
        let marker = format!("data-candidate=\"{candidate}\"");
        for (attribute, expected) in [
            ("data-mean", mean),
            ("data-ci-low", low),
            ("data-ci-high", high),
            ("data-p", p),
        ] {
            let found = attributes(&page, &format!("candidate-row&&{marker}"), attribute);
            assert_eq!(found, [expected.to_string()], "{attribute} of {candidate}");
        }
        let bar = attributes(&page, &format!("ci-bar\" {marker}"), "data-mean");
        assert_eq!(bar, [mean.to_string()], "CI bar of {candidate}");
        // Holm across the two evaluated candidates, from evaluator-svc.
        let holm = attributes(&page, &format!("candidate-row&&{marker}"), "data-holm-p");
        let holm: f64 = holm.first().and_then(|h| h.parse().ok()).expect("a Holm p");
        assert!(holm >= *p && holm <= 1.0, "Holm p {holm} vs p {p}");
    }
    assert_eq!(
        attributes(&page, "line class=\"target\"", "data-value")[0],
        "0.9"
    );
    // One line per seed that reported points, drawn with its state; the failed seed is in
    // the trials table.
    for (trial, (state, points)) in &session.trials {
        let curve_marker = format!("g class=\"curve&&data-trial=\"{trial}\"");
        let curve = attributes(&page, &curve_marker, "data-state");
        if *points > 0 {
            assert_eq!(curve, [state.to_string()], "curve of {trial}");
            assert_eq!(
                attributes(&page, &curve_marker, "data-points"),
                [points.to_string()]
            );
        } else {
            assert!(curve.is_empty());
        }
        let row = attributes(
            &page,
            &format!("tr class=\"trial\" data-trial=\"{trial}\""),
            "data-state",
        );
        assert_eq!(row, [state.to_string()], "trial row of {trial}");
    }
    assert!(page.contains("out of memory") && page.contains("killed at the memory limit"));
    assert!(page.contains("64.0 MiB"), "peak memory shown");
    // The spec: parameters and FLOPs from shape inference (4·64+64 + 64·3+3 = 515).
    assert!(page.contains("data-parameters=\"515\""), "{page}");
    // The LLM exchange readable, and every piece of user or model text escaped.
    assert!(page.contains("tokens 1200 → 150 · 3400 ms"), "{page}");
    for raw in [
        "<script>alert('goal')",
        "<script>alert('llm')",
        "<b>bold</b>",
        "<i>italic</i>",
    ] {
        assert!(!page.contains(raw), "{raw} is escaped");
    }
    assert!(page.contains("&lt;script&gt;alert('llm')&lt;/script&gt;"));
    assert!(page.contains("ünïcödé"));
    // A running session is live; a fragment is only the live part.
    assert!(
        page.contains("data-live=\"/sessions/"),
        "running sessions follow their events"
    );
    let (_, fragment) = get(&http, &format!("{page_url}?fragment=1")).await;
    assert!(
        fragment.starts_with("<main") && !fragment.contains("<html"),
        "{fragment}"
    );

    // Compare two candidates: Welch from evaluator-svc.
    let (status, compared) = get(
        &http,
        &format!(
            "{page_url}/compare?a={}&b={}",
            session.candidates[1], session.candidates[0]
        ),
    )
    .await;
    assert_eq!(status, 200, "{compared}");
    let better = attributes(&compared, "table id=\"comparison\"", "data-better");
    assert_eq!(better, ["a"], "0.95 ± 0.01 beats 0.85 ± 0.01 over 3 seeds");
    let difference: f64 = attributes(&compared, "table id=\"comparison\"", "data-mean-difference")
        [0]
    .parse()
    .expect("number");
    assert!((difference - 0.1).abs() < 1e-9, "{difference}");
    // And two sessions by their best candidates.
    let (status, sessions_compared) = get(
        &http,
        &format!(
            "{base}/compare?a={}&b={}",
            session.experiment_id, other.experiment_id
        ),
    )
    .await;
    assert_eq!(status, 200, "{sessions_compared}");
    assert_eq!(
        attributes(&sessions_compared, "tr class=\"side\"", "data-evaluation"),
        [
            session.evaluation_ids[1].clone(),
            other.evaluation_ids[0].clone()
        ]
    );
    let (status, _) = get(
        &http,
        &format!(
            "{page_url}/compare?a={}&b={}",
            session.candidates[2], session.candidates[0]
        ),
    )
    .await;
    assert_eq!(status, 400, "an unevaluated candidate cannot be compared");

    // Artifacts download byte for byte.
    let (sha, content) = &session.artifact;
    let response = http
        .get(format!("{base}/artifacts/{sha}"))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/markdown")
    );
    assert_eq!(response.bytes().await.expect("bytes").to_vec(), *content);

    // Unknown ids and pages: a 404 page that names what was asked.
    let unknown = ra_client::ids::EntityKind::Experiment.new_id();
    for path in [
        format!("/sessions/{unknown}"),
        "/sessions/not-an-id".to_owned(),
        "/sessions/%3Cscript%3E".to_owned(),
        format!("/artifacts/{}", "0".repeat(64)),
        "/artifacts/zz".to_owned(),
        "/no/such/page".to_owned(),
        format!(
            "/sessions/{}/compare?a={}&b=cand_{}",
            session.experiment_id,
            session.candidates[0],
            "1".repeat(32)
        ),
    ] {
        let (status, body) = get(&http, &format!("{base}{path}")).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(
            body.contains("Not found") && !body.contains("<script>"),
            "{path}: {body}"
        );
    }

    stack.stop().await.expect("stack stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_page_hears_records_as_they_land_and_actions_are_guarded() {
    let (stack, _root) = stack().await;
    let base = stack.dashboard_url().expect("the stack serves a dashboard");
    let mut registry = RegistryServiceClient::connect(stack.registry_url())
        .await
        .expect("registry");
    let session = write_session(&mut registry, "live session", &[0.8]).await;
    let http = reqwest::Client::new();

    let (_, page) = get(&http, &format!("{base}/sessions/{}", session.experiment_id)).await;
    let position = attributes(&page, "main data-live", "data-position")[0].clone();
    let mut events = http
        .get(format!(
            "{base}/sessions/{}/events?after={position}",
            session.experiment_id
        ))
        .send()
        .await
        .expect("event stream");
    assert_eq!(
        events
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    // A record lands: the stream names it; the session ends: the stream says so.
    registry
        .create_decision(reg::CreateDecisionRequest {
            experiment_id: session.experiment_id.clone(),
            action: "continue".into(),
            reasoning: "live".into(),
            inputs_json: "{}".into(),
            ..Default::default()
        })
        .await
        .expect("decision");
    registry
        .update_experiment(reg::UpdateExperimentRequest {
            id: session.experiment_id.clone(),
            status: Some(reg::ExperimentStatus::Exhausted as i32),
            summary: Some("budget spent".into()),
            labels: HashMap::new(),
        })
        .await
        .expect("end the session");
    let mut received = String::new();
    while !received.contains("event: end") {
        let chunk = tokio::time::timeout(Duration::from_secs(20), events.chunk())
            .await
            .expect("events arrive")
            .expect("read")
            .expect("the stream stays open until the end event");
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        received.contains("event: record") && received.contains("data: decision"),
        "{received}"
    );
    assert!(received.contains("data: experiment"), "{received}");
    // The ended session's page is not live and states its summary.
    let (_, ended) = get(&http, &format!("{base}/sessions/{}", session.experiment_id)).await;
    assert!(
        !ended.contains("data-live="),
        "an ended session is not followed"
    );
    assert!(ended.contains("budget spent") && ended.contains("EXHAUSTED"));

    // Actions: refused from another site, and refused on a session the planner does not run.
    let pause = format!("{base}/sessions/{}/pause", session.experiment_id);
    let response = http
        .post(&pause)
        .header("origin", "https://elsewhere.example")
        .form(&[("reason", "x")])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 403);
    let response = http
        .post(&pause)
        .form(&[("reason", "x")])
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    let body = response.text().await.expect("body");
    assert!(matches!(status, 400 | 404), "{status}: {body}");
    assert!(body.contains("planner-svc"), "{body}");
    // Every other action endpoint: bad forms are 400 pages naming the problem; good ones reach
    // the planner, which refuses a session it is not running.
    let post = |path: &str, form: Vec<(&'static str, String)>| {
        let http = http.clone();
        let url = format!("{base}/sessions/{}/{path}", session.experiment_id);
        async move {
            let response = http.post(url).form(&form).send().await.expect("POST");
            let status = response.status().as_u16();
            (status, response.text().await.expect("body"))
        }
    };
    let (status, body) = post("inject", vec![("spec", "{not json".into())]).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("is not a {&quot;model&quot;: ModelSpec"),
        "{body}"
    );
    let spec = serde_json::json!({
        "model": ra_spec::ModelSpec::try_from(&fixtures::mlp()).expect("spec"),
        "train": ra_spec::TrainSpec::try_from(&fixtures::adam(0.01)).expect("train"),
    })
    .to_string();
    let (status, body) = post("inject", vec![("spec", spec), ("by", "<b>eve</b>".into())]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not running in this planner"), "{body}");
    let (status, body) = post("budget", vec![("max_candidates", "many".into())]).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("max_candidates = &quot;many&quot; is not a whole number"),
        "{body}"
    );
    let (status, body) = post("budget", vec![("max_candidates", "3".into())]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not running in this planner"), "{body}");
    let (status, body) = post("resume", Vec::new()).await;
    assert_eq!(status, 400, "an ended session cannot resume: {body}");
    assert!(
        body.contains("only paused or interrupted sessions can be resumed"),
        "{body}"
    );
    let (status, body) = get(&http, &format!("{base}/healthz")).await;
    assert_eq!((status, body.as_str()), (200, "ok"));

    stack.stop().await.expect("stack stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_command_serves_a_state_folder_read_only() {
    let (stack, root) = stack().await;
    let mut registry = RegistryServiceClient::connect(stack.registry_url())
        .await
        .expect("registry");
    let session = write_session(&mut registry, "kept session", &[0.92]).await;
    stack.stop().await.expect("stack stops");

    // A read-only dashboard over the same folder (the CLI's `dashboard` starts one this way).
    let reopened = ra_integration_tests::offline_stack_at(root.path(), |options| {
        options.dashboard = Some(true);
    })
    .await;
    let base = reopened.dashboard_url().expect("dashboard");
    let http = reqwest::Client::new();
    let (status, page) = get(&http, &format!("{base}/sessions/{}", session.experiment_id)).await;
    assert_eq!(status, 200);
    assert!(
        !page.contains("id=\"actions\""),
        "no actions offered read-only"
    );
    let response = http
        .post(format!("{base}/sessions/{}/pause", session.experiment_id))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 403);
    assert!(response.text().await.expect("body").contains("read-only"));
    reopened.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_configured_the_pages_ask_for_one() {
    let registry = ra_integration_tests::RegistryUnderTest::start().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "# who may look\nresearcher abcdefghijklmnop0123\n").expect("tokens");
    let mut config = dashboard_svc::DashboardConfig::default();
    config.dashboard.registry_url = registry.endpoint();
    config.dashboard.evaluator_url = String::new();
    config.dashboard.planner_url = String::new();
    config.server.auth.tokens_file = tokens;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let shutdown = ra_serve::Shutdown::new();
    let served = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { dashboard_svc::run(&config, listener, shutdown).await }
    });
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    // No token: a page sends the browser to the sign-in form; an action is refused.
    let response = http.get(format!("{base}/")).send().await.expect("GET");
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(
        response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some("/login")
    );
    let (status, form) = get(&http, &format!("{base}/login")).await;
    assert_eq!(status, 200);
    assert!(form.contains("name=\"token\""), "{form}");
    let unknown = ra_client::ids::EntityKind::Experiment.new_id();
    let response = http
        .post(format!("{base}/sessions/{unknown}/pause"))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 401);
    // A wrong token is refused; the right one sets the cookie that opens the pages.
    let response = http
        .post(format!("{base}/login"))
        .form(&[("token", "not-the-token-at-all")])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 401);
    let response = http
        .post(format!("{base}/login"))
        .form(&[("token", "abcdefghijklmnop0123")])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 303);
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a cookie")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().expect("name=value").to_owned();
    let response = http
        .get(format!("{base}/"))
        .header("cookie", &pair)
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status().as_u16(), 200);
    // A bearer token works as well (scripts), a wrong one does not.
    let response = http
        .get(format!("{base}/"))
        .bearer_auth("abcdefghijklmnop0123")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status().as_u16(), 200);
    let response = http
        .get(format!("{base}/"))
        .bearer_auth("wrong-wrong-wrong-wrong")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status().as_u16(), 401);
    shutdown.trigger();
    served.await.expect("task").expect("served");
    registry.stop().await.expect("registry stops");
}
