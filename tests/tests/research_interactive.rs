//! Interactive research on the embedded services: a person's candidates injected into a
//! running session (InjectCandidate) are evaluated next and recorded as theirs, one that does
//! not fit the dataset is set aside with the reason; a budget changed while a session runs
//! (UpdateBudget) ends it at the new limit and is recorded and kept; every refusal answers
//! with the right code.

use futures::StreamExt;
use ra_integration_tests::records::{SessionRecords, watch_to_end};
use ra_proto::common::v1 as common;
use ra_proto::dataset::v1 as ds;
use ra_proto::dataset::v1::dataset_service_client::DatasetServiceClient;
use ra_proto::planner::v1 as pb;
use ra_proto::planner::v1::planner_service_client::PlannerServiceClient;
use ra_proto::registry::v1::registry_service_client::RegistryServiceClient;
use tonic::Code;

/// A goal nobody reaches in four candidates: the session runs its whole budget.
const HARD_GOAL: &str =
    "an MLP for synthetic-tabular with at least 99.9% accuracy within 4 candidates";

async fn stack() -> (ra_cli::Stack, tempfile::TempDir) {
    ra_integration_tests::offline_stack(|options| {
        options.max_concurrent_jobs = 2;
        options.session_defaults = Some(ra_integration_tests::short_sessions());
    })
    .await
}

/// The prepared synthetic-tabular's input and class count (what a fitting spec needs).
async fn tabular_input(stack: &ra_cli::Stack) -> (common::InputSpec, u32) {
    let mut dataset = DatasetServiceClient::connect(stack.dataset_url())
        .await
        .expect("dataset-svc");
    let mut stream = dataset
        .prepare_dataset(ds::PrepareDatasetRequest {
            name: "synthetic-tabular".into(),
            options: Some(ds::PrepareOptions {
                offline: true,
                ..Default::default()
            }),
        })
        .await
        .expect("PrepareDataset")
        .into_inner();
    while let Some(event) = stream.next().await {
        if let Some(ds::prepare_dataset_event::Event::Manifest(manifest)) =
            event.expect("preparation").event
        {
            return (
                manifest.input.expect("input"),
                manifest.class_names.len() as u32,
            );
        }
    }
    panic!("no manifest");
}

fn injected(
    input: &common::InputSpec,
    classes: u32,
    name: &str,
) -> (common::ModelSpec, common::TrainSpec) {
    let input = ra_spec::InputSpec::try_from(input).expect("input");
    let mut model = ra_spec::examples::baseline(&input, classes);
    model.name = name.into();
    let train = ra_spec::examples::baseline_train(2);
    ((&model).into(), (&train).into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn injected_candidates_are_evaluated_as_theirs_and_misfits_set_aside() {
    let (stack, _root) = stack().await;
    let (input, classes) = tabular_input(&stack).await;
    let mut planner = PlannerServiceClient::connect(stack.planner_url())
        .await
        .expect("planner");
    let mut registry = RegistryServiceClient::connect(stack.registry_url())
        .await
        .expect("registry");
    let started = planner
        .start_research(pb::StartResearchRequest {
            goal_text: HARD_GOAL.into(),
            seed: 3,
            ..Default::default()
        })
        .await
        .expect("StartResearch")
        .into_inner();
    let id = started.research_id;
    let (model, train) = injected(&input, classes, "alices-mlp");
    let queued = planner
        .inject_candidate(pb::InjectCandidateRequest {
            research_id: id.clone(),
            model: Some(model.clone()),
            train: Some(train),
            rationale: "wider hidden layer".into(),
            proposed_by: "alice".into(),
        })
        .await
        .expect("InjectCandidate")
        .into_inner();
    assert!(queued.queue_position >= 1);
    // A spec for another dataset: accepted into the queue, set aside by the loop.
    let (mut misfit, misfit_train) = injected(&input, classes + 2, "wrong-classes");
    misfit.num_classes = classes + 2;
    planner
        .inject_candidate(pb::InjectCandidateRequest {
            research_id: id.clone(),
            model: Some(misfit),
            train: Some(misfit_train),
            rationale: String::new(),
            proposed_by: "bob".into(),
        })
        .await
        .expect("InjectCandidate misfit");

    // Refusals, each with its code.
    let injector = planner.clone();
    let refused = |request: pb::InjectCandidateRequest| {
        let mut planner = injector.clone();
        async move {
            planner
                .inject_candidate(request)
                .await
                .expect_err("refused")
                .code()
        }
    };
    let base = pb::InjectCandidateRequest {
        research_id: id.clone(),
        model: Some(model.clone()),
        train: Some(train),
        rationale: String::new(),
        proposed_by: "carol".into(),
    };
    assert_eq!(
        refused(pb::InjectCandidateRequest {
            model: None,
            ..base.clone()
        })
        .await,
        Code::InvalidArgument
    );
    let mut no_layers = model.clone();
    no_layers.layers.clear();
    assert_eq!(
        refused(pb::InjectCandidateRequest {
            model: Some(no_layers),
            ..base.clone()
        })
        .await,
        Code::InvalidArgument
    );
    let mut nan_rate = train;
    nan_rate.learning_rate = f64::NAN;
    assert_eq!(
        refused(pb::InjectCandidateRequest {
            train: Some(nan_rate),
            ..base.clone()
        })
        .await,
        Code::InvalidArgument
    );
    assert_eq!(
        refused(pb::InjectCandidateRequest {
            proposed_by: "x\u{7}".into(),
            ..base.clone()
        })
        .await,
        Code::InvalidArgument
    );
    let unknown = ra_client::ids::EntityKind::Experiment.new_id();
    assert_eq!(
        refused(pb::InjectCandidateRequest {
            research_id: unknown,
            ..base.clone()
        })
        .await,
        Code::NotFound
    );
    assert_eq!(
        refused(pb::InjectCandidateRequest {
            research_id: "nope".into(),
            ..base.clone()
        })
        .await,
        Code::InvalidArgument
    );

    let (_, status) = watch_to_end(&mut planner, &id).await;
    assert_eq!(
        status.state(),
        pb::ResearchState::Exhausted,
        "{}",
        status.message
    );
    let SessionRecords {
        candidates,
        decisions,
        evaluations,
        ..
    } = SessionRecords::read(&mut registry, &id).await;
    let alice = candidates
        .iter()
        .find(|c| {
            c.rationale
                .starts_with("proposed by alice: wider hidden layer")
        })
        .expect("alice's candidate recorded with who proposed it");
    assert_eq!(alice.strategy, "user");
    assert!(
        evaluations
            .iter()
            .any(|e| e.candidate_id == alice.id && e.aggregate.as_ref().is_some_and(|a| a.n == 2)),
        "alice's candidate evaluated over the session's seeds"
    );
    assert!(decisions.iter().any(|d| d.action == "inject"
        && d.candidate_id == alice.id
        && d.inputs_json.contains("alice")));
    let bob = candidates
        .iter()
        .find(|c| c.rationale.starts_with("proposed by bob"))
        .expect("bob's candidate recorded");
    let rejection = decisions
        .iter()
        .find(|d| d.action == "reject" && d.candidate_id == bob.id)
        .expect("bob's misfit set aside");
    assert!(
        rejection.reasoning.contains("num_classes"),
        "{}",
        rejection.reasoning
    );
    assert!(
        !evaluations.iter().any(|e| e.candidate_id == bob.id),
        "a misfit is never trained"
    );

    // The session has ended: injecting now is refused as the wrong state.
    assert_eq!(refused(base).await, Code::FailedPrecondition);
    stack.stop().await.expect("stack stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_budget_changed_while_running_ends_the_session_there_and_is_kept() {
    let (stack, _root) = stack().await;
    let mut planner = PlannerServiceClient::connect(stack.planner_url())
        .await
        .expect("planner");
    let mut registry = RegistryServiceClient::connect(stack.registry_url())
        .await
        .expect("registry");
    let started = planner
        .start_research(pb::StartResearchRequest {
            goal_text: HARD_GOAL.replace("4 candidates", "12 candidates"),
            seed: 5,
            ..Default::default()
        })
        .await
        .expect("StartResearch")
        .into_inner();
    let id = started.research_id;
    for (budget, code) in [
        (None, Code::InvalidArgument),
        (Some(common::Budget::default()), Code::InvalidArgument),
        (
            Some(common::Budget {
                max_candidates: 20_000,
                ..Default::default()
            }),
            Code::InvalidArgument,
        ),
    ] {
        let error = planner
            .update_budget(pb::UpdateBudgetRequest {
                research_id: id.clone(),
                budget,
                requested_by: "dana".into(),
            })
            .await
            .expect_err("refused");
        assert_eq!(error.code(), code, "{}", error.message());
    }
    planner
        .update_budget(pb::UpdateBudgetRequest {
            research_id: id.clone(),
            budget: Some(common::Budget {
                max_candidates: 2,
                ..Default::default()
            }),
            requested_by: "dana".into(),
        })
        .await
        .expect("UpdateBudget");
    let (_, status) = watch_to_end(&mut planner, &id).await;
    assert_eq!(status.state(), pb::ResearchState::Exhausted);
    assert!(
        status.message.contains("2 of 2 candidates"),
        "{}",
        status.message
    );
    let SessionRecords {
        candidates,
        decisions,
        experiment,
        ..
    } = SessionRecords::read(&mut registry, &id).await;
    assert_eq!(candidates.len(), 2, "the session ended at the new limit");
    let change = decisions
        .iter()
        .find(|d| d.action == "budget")
        .expect("the change is a decision");
    assert!(
        change
            .reasoning
            .starts_with("dana changed the budget: candidates 12 → 2"),
        "{}",
        change.reasoning
    );
    let kept = experiment
        .labels
        .get(ra_client::goal::BUDGET_LABEL)
        .and_then(|l| ra_client::goal::budget_from_label(l))
        .expect("the new budget is kept for a resume");
    assert_eq!(kept.max_candidates, 2);
    // Finished: a budget can no longer change.
    let error = planner
        .update_budget(pb::UpdateBudgetRequest {
            research_id: id,
            budget: Some(common::Budget {
                max_candidates: 5,
                ..Default::default()
            }),
            requested_by: String::new(),
        })
        .await
        .expect_err("finished");
    assert_eq!(error.code(), Code::FailedPrecondition);
    stack.stop().await.expect("stack stops");
}
