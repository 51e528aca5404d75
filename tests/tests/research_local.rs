//! Research on a researcher's own files, end to end on the embedded services: a CSV named by
//! its path in the goal's words reaches its goal; parquet, image-folder and text files are
//! sessions too; an open-ended goal ("the lowest validation loss") ends COMPLETED with the best
//! candidate compared with the baseline and the runner-up, in the status, the decision log and
//! the report; bad files are refused when the session starts, with their codes.

use std::path::Path;
use std::sync::Arc;

use ra_integration_tests::records::{SessionRecords, watch_to_end};
use ra_proto::planner::v1 as pb;
use ra_proto::planner::v1::planner_service_client::PlannerServiceClient;
use ra_proto::registry::v1 as reg;
use ra_proto::registry::v1::registry_service_client::RegistryServiceClient;
use tonic::Code;

async fn stack() -> (ra_cli::Stack, tempfile::TempDir) {
    ra_integration_tests::offline_stack(|options| {
        options.max_concurrent_jobs = 2;
        options.session_defaults = Some(ra_integration_tests::short_sessions());
    })
    .await
}

/// Three well separated classes of two measurements, `rows` per class, with a header.
fn write_flowers(path: &Path, rows: usize) {
    let mut text = String::from("petal_length,petal_width,species\n");
    for i in 0..rows * 3 {
        let (species, base) = match i % 3 {
            0 => ("setosa", 1.0),
            1 => ("versicolor", 4.0),
            _ => ("virginica", 7.0),
        };
        let jitter = (i % 7) as f64 * 0.05;
        text.push_str(&format!(
            "{},{},{species}\n",
            base + jitter,
            base / 2.0 - jitter
        ));
    }
    std::fs::write(path, text).expect("write the CSV");
}

async fn start(
    planner: &mut PlannerServiceClient<tonic::transport::Channel>,
    goal: &str,
    dataset: &str,
) -> Result<String, tonic::Status> {
    let request = pb::StartResearchRequest {
        goal_text: goal.into(),
        overrides: Some(ra_proto::common::v1::ResearchGoal {
            dataset: dataset.into(),
            ..Default::default()
        }),
        seed: 5,
        ..Default::default()
    };
    Ok(planner
        .start_research(request)
        .await?
        .into_inner()
        .research_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_csv_named_in_the_goal_is_researched_and_recorded_by_its_path() {
    let (stack, root) = stack().await;
    let csv = root.path().join("my flowers.csv");
    write_flowers(&csv, 40);
    let renamed = root.path().join("mine.csv");
    std::fs::copy(&csv, &renamed).expect("copy");
    let mut planner = PlannerServiceClient::connect(stack.planner_url())
        .await
        .expect("planner");
    let mut registry = RegistryServiceClient::connect(stack.registry_url())
        .await
        .expect("registry");
    let goal = format!(
        "an MLP on {} with at least 80% accuracy within 3 candidates",
        renamed.display()
    );
    let id = start(&mut planner, &goal, "").await.expect("StartResearch");
    let (_, status) = watch_to_end(&mut planner, &id).await;
    assert_eq!(
        status.state(),
        pb::ResearchState::Succeeded,
        "{}",
        status.message
    );
    let goal = status.goal.expect("goal");
    assert_eq!(goal.dataset, format!("csv:{}", renamed.display()));
    let records = SessionRecords::read(&mut registry, &id).await;
    assert_eq!(
        records.experiment.status(),
        reg::ExperimentStatus::Succeeded
    );
    assert!(!records.evaluations.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parquet_image_folder_and_text_files_are_sessions_too() {
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    let (stack, root) = stack().await;
    let mut planner = PlannerServiceClient::connect(stack.planner_url())
        .await
        .expect("planner");

    let parquet = root.path().join("table.parquet");
    let schema = Arc::new(
        parse_message_type(
            "message schema { REQUIRED DOUBLE a; REQUIRED DOUBLE b; REQUIRED BYTE_ARRAY label (UTF8); }",
        )
        .expect("schema"),
    );
    let file = std::fs::File::create(&parquet).expect("create");
    let mut writer =
        SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::builder().build()))
            .expect("writer");
    let mut group = writer.next_row_group().expect("group");
    let a: Vec<f64> = (0..90)
        .map(|i| f64::from(i % 3) * 3.0 + f64::from(i % 5) * 0.1)
        .collect();
    let b: Vec<f64> = (0..90).map(|i| f64::from(i % 7) * 0.1).collect();
    let labels: Vec<ByteArray> = (0..90)
        .map(|i| ByteArray::from(["red", "green", "blue"][i % 3]))
        .collect();
    for values in [&a, &b] {
        let mut column = group.next_column().expect("column").expect("double column");
        column
            .typed::<DoubleType>()
            .write_batch(values, None, None)
            .expect("values");
        column.close().expect("close");
    }
    let mut column = group.next_column().expect("column").expect("label column");
    column
        .typed::<ByteArrayType>()
        .write_batch(&labels, None, None)
        .expect("labels");
    column.close().expect("close");
    group.close().expect("group");
    writer.close().expect("file");

    let pictures = root.path().join("pictures");
    for (class, shade) in [("dark", 10u8), ("light", 240u8)] {
        std::fs::create_dir_all(pictures.join(class)).expect("folder");
        for i in 0..12u32 {
            image::GrayImage::from_fn(10, 10, |x, y| {
                image::Luma([shade.wrapping_add(((x + y + i) % 5) as u8)])
            })
            .save(pictures.join(class).join(format!("{i}.png")))
            .expect("png");
        }
    }

    let reviews = root.path().join("reviews.jsonl");
    let lines: String = (0..80)
        .map(|i| {
            let (text, label) = if i % 2 == 0 {
                ("great wonderful lovely film", "pos")
            } else {
                ("awful boring dreadful film", "neg")
            };
            format!("{}\n", serde_json::json!({"text": text, "label": label}))
        })
        .collect();
    std::fs::write(&reviews, lines).expect("write");

    for (dataset, classes) in [
        (format!("parquet:{}", parquet.display()), 3),
        (format!("images:{}#size=8", pictures.display()), 2),
        (format!("text:{}", reviews.display()), 2),
    ] {
        let id = start(
            &mut planner,
            "a model with at least 60% accuracy within 1 candidates",
            &dataset,
        )
        .await
        .unwrap_or_else(|status| panic!("{dataset}: {status:?}"));
        let (_, status) = watch_to_end(&mut planner, &id).await;
        assert!(
            matches!(
                status.state(),
                pb::ResearchState::Succeeded | pb::ResearchState::Exhausted
            ),
            "{dataset}: {:?} {}",
            status.state(),
            status.message
        );
        assert_eq!(
            status.candidates_evaluated, 1,
            "{dataset}: {}",
            status.message
        );
        let best = status.leaderboard.first().expect("a leaderboard entry");
        assert!(
            best.aggregate.as_ref().is_some_and(|a| a.n >= 2),
            "{dataset}"
        );
        let _ = classes;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_open_ended_goal_ends_completed_with_the_best_compared_to_the_baseline_and_runner_up() {
    let (stack, root) = stack().await;
    let csv = root.path().join("flowers.csv");
    write_flowers(&csv, 30);
    let mut planner = PlannerServiceClient::connect(stack.planner_url())
        .await
        .expect("planner");
    let mut registry = RegistryServiceClient::connect(stack.registry_url())
        .await
        .expect("registry");
    let goal = format!(
        "the lowest validation loss on csv:{} within 3 candidates",
        csv.display()
    );
    let id = start(&mut planner, &goal, "").await.expect("StartResearch");
    let (_, status) = watch_to_end(&mut planner, &id).await;
    assert_eq!(
        status.state(),
        pb::ResearchState::Completed,
        "{}",
        status.message
    );
    let target = status
        .goal
        .as_ref()
        .and_then(|g| g.target.clone())
        .expect("target");
    assert!(target.open_ended);
    assert_eq!(target.metric, "val_loss");
    let message = &status.message;
    assert!(message.starts_with("best found: "), "{message}");
    assert!(
        message.contains("than the baseline") || message.contains("it is the baseline itself"),
        "{message}"
    );
    assert!(message.contains("than the runner-up"), "{message}");
    assert!(message.contains("Holm-adjusted"), "{message}");
    assert!(message.contains("candidate budget spent"), "{message}");
    let best = status.leaderboard.first().expect("leaderboard");
    assert!(
        message.contains(&best.candidate_id),
        "the best is named: {message}"
    );

    let records = SessionRecords::read(&mut registry, &id).await;
    assert_eq!(
        records.experiment.status(),
        reg::ExperimentStatus::Completed
    );
    let answer = records
        .decisions
        .iter()
        .find(|d| d.action == "stop_completed")
        .expect("the answer is a decision");
    let inputs: serde_json::Value = serde_json::from_str(&answer.inputs_json).expect("inputs");
    let comparisons = inputs["comparisons"].as_array().expect("comparisons");
    assert!(
        !comparisons.is_empty() && comparisons.len() <= 2,
        "{inputs}"
    );
    for comparison in comparisons {
        let (p, holm) = (
            comparison["p_value"].as_f64().expect("p"),
            comparison["holm_p_value"].as_f64().expect("holm p"),
        );
        assert!(
            (0.0..=1.0).contains(&p) && holm >= p && holm <= 1.0,
            "{comparison}"
        );
    }
    assert!(
        !records.decisions.iter().any(|d| d.action == "stop_budget"),
        "an open-ended goal is answered, not exhausted"
    );
    let report = std::fs::read_to_string(Path::new(&status.report_path).join("report.md"))
        .expect("the report");
    assert!(report.contains("as low as the budget finds"), "{report}");
    assert!(report.contains("**completed**"), "{report}");
    assert!(report.contains("best found: "), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_files_are_refused_when_the_session_starts() {
    let (stack, root) = stack().await;
    let mut planner = PlannerServiceClient::connect(stack.planner_url())
        .await
        .expect("planner");
    let single = root.path().join("single.csv");
    std::fs::write(&single, "x,label\n1,a\n2,a\n").expect("write");
    let ragged = root.path().join("ragged.csv");
    std::fs::write(&ragged, "x,y,label\n1,2,a\n3,b\n").expect("write");
    for (dataset, code, words) in [
        (
            "csv:/no/such/file.csv".to_owned(),
            Code::NotFound,
            "does not exist",
        ),
        (
            format!("csv:{}", single.display()),
            Code::FailedPrecondition,
            "single class",
        ),
        (
            format!("csv:{}", ragged.display()),
            Code::FailedPrecondition,
            "line 3 has 2 fields",
        ),
        ("csv:".to_owned(), Code::InvalidArgument, "no path"),
    ] {
        let status = start(&mut planner, "a model with at least 60% accuracy", &dataset)
            .await
            .expect_err(&dataset);
        assert_eq!(status.code(), code, "{dataset}: {}", status.message());
        assert!(
            status.message().contains(words),
            "{dataset}: {}",
            status.message()
        );
    }
    // A goal naming an unknown file in words gets the same answer.
    let status = start(
        &mut planner,
        "an MLP on /no/such/table.csv with >90% accuracy",
        "",
    )
    .await
    .expect_err("missing");
    assert_eq!(status.code(), Code::NotFound, "{}", status.message());
}

/// `research-agent run --planner URL` against running services: the CSV named by a relative
/// path is uploaded to the dataset service (UploadDataset) and the session runs on the upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_remote_planner_gets_the_csv_uploaded_first() {
    let (stack, root) = stack().await;
    let work = root.path().join("work");
    std::fs::create_dir_all(&work).expect("folder");
    write_flowers(&work.join("mine.csv"), 30);
    let output =
        tokio::process::Command::new(ra_integration_tests::workspace_binary("research-agent"))
            .current_dir(&work)
            .args([
                "run",
                "--planner",
                &stack.planner_url(),
                "--dataset-service",
                &stack.dataset_url(),
                "--dataset",
                "csv:mine.csv#label=species",
                "--goal",
                "a model with at least 80% accuracy within 2 candidates",
                "--json",
            ])
            .output()
            .await
            .expect("run research-agent");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        matches!(output.status.code(), Some(0 | 2)),
        "{:?}: {stderr}",
        output.status
    );
    assert!(stderr.contains("uploaded 1 file(s)"), "{stderr}");
    let status: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the final status as JSON");
    let dataset = status["dataset"].as_str().unwrap_or_default();
    assert!(
        dataset.starts_with("csv:upload:") && dataset.ends_with("/mine.csv#label=species"),
        "{status}"
    );
    let uploads = root.path().join("data").join("uploads");
    assert_eq!(
        std::fs::read_dir(&uploads).expect("uploads").count(),
        1,
        "one upload, no leftovers"
    );
}
