//! What each subcommand does: open the services (the embedded stack or a remote planner),
//! start and follow a session, list, status, report, resume, and serve.

use super::*;

/// Services for one command: the embedded stack (stopped at the end) or a remote planner.
pub(super) struct Services {
    stack: Option<Stack>,
    planner: ra_client::PlannerClient,
    registry_url: String,
    /// Where --planner's dataset-svc is, for uploads.
    dataset_url: String,
    credentials: ra_client::Credentials,
    /// The embedded dashboard's address, printed with a session's id.
    dashboard_url: Option<String>,
}

impl Services {
    async fn open(connection: &Connection, log_filter: &str) -> anyhow::Result<Self> {
        let (stack, planner_url, registry_url) = match &connection.planner {
            Some(url) => (None, url.clone(), connection.registry.clone()),
            None => {
                let stack = Stack::start(&connection.stack_options(log_filter))
                    .await
                    .context("start the embedded services")?;
                let (planner, registry) = (stack.planner_url(), stack.registry_url());
                (Some(stack), planner, registry)
            }
        };
        let credentials = connection.credentials()?;
        let planner = ra_client::planner_with("--planner", &planner_url, &credentials)?;
        ra_client::health::check_with(&planner_url, ra_proto::service_names::PLANNER, &credentials)
            .await
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("connect to planner-svc at {planner_url}"))?;
        let dashboard_url = stack.as_ref().and_then(Stack::dashboard_url);
        Ok(Self {
            stack,
            planner: planner.client(),
            registry_url,
            dataset_url: connection.dataset_service.clone(),
            credentials,
            dashboard_url,
        })
    }

    async fn close(self) -> anyhow::Result<()> {
        if let Some(stack) = self.stack {
            stack.stop().await?;
        }
        Ok(())
    }
}

pub(super) fn refused(what: &str, status: &tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{what} refused ({:?}): {}", status.code(), status.message())
}

/// Runs the command; the exit code says how a session ended (see [`exit_code`]).
pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Run(args) => {
            let mut services = Services::open(&args.connection, &cli.log_filter).await?;
            let outcome = start_and_follow(&mut services, &args).await;
            services.close().await?;
            outcome
        }
        Command::Resume {
            research_id,
            json,
            connection,
        } => {
            let mut services = Services::open(&connection, &cli.log_filter).await?;
            let outcome = async {
                let status = services
                    .planner
                    .resume_research(pb::ResumeResearchRequest {
                        research_id: research_id.clone(),
                    })
                    .await
                    .map_err(|s| refused("ResumeResearch", &s))?
                    .into_inner();
                eprintln!("resumed {}", status.research_id);
                follow(&mut services.planner, &research_id, json).await
            }
            .await;
            services.close().await?;
            outcome
        }
        Command::Status {
            research_id,
            json,
            connection,
        } => {
            let mut services = Services::open(&connection, &cli.log_filter).await?;
            let outcome = services
                .planner
                .get_research(pb::GetResearchRequest { research_id })
                .await
                .map_err(|s| refused("GetResearch", &s));
            services.close().await?;
            let status = outcome?.into_inner();
            print_status(&status, json)?;
            Ok(0)
        }
        Command::Report {
            research_id,
            connection,
        } => {
            let mut services = Services::open(&connection, &cli.log_filter).await?;
            let outcome = services
                .planner
                .get_research(pb::GetResearchRequest { research_id })
                .await
                .map_err(|s| refused("GetResearch", &s));
            services.close().await?;
            let status = outcome?.into_inner();
            if status.report_path.is_empty() {
                bail!(
                    "research {} has no report yet ({}): reports are written when a session ends",
                    status.research_id,
                    status.message
                );
            }
            let path = PathBuf::from(&status.report_path).join("report.md");
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("read {}", path.display()))?;
            println!("{text}");
            eprintln!("report folder: {}", status.report_path);
            Ok(0)
        }
        Command::Inject {
            research_id,
            spec,
            rationale,
            by,
            connection,
        } => {
            let (model, train) = read_candidate_file(&spec)?;
            let mut services = Services::open(&connection, &cli.log_filter).await?;
            let outcome = services
                .planner
                .inject_candidate(pb::InjectCandidateRequest {
                    research_id,
                    model: Some(model),
                    train: Some(train),
                    rationale,
                    proposed_by: by.unwrap_or_default(),
                })
                .await
                .map_err(|s| refused("InjectCandidate", &s));
            services.close().await?;
            let response = outcome?.into_inner();
            println!(
                "queued as the session's next candidate{}",
                match response.queue_position {
                    0 | 1 => String::new(),
                    n => format!(" (position {n} in the queue)"),
                }
            );
            Ok(0)
        }
        Command::Budget {
            research_id,
            max_candidates,
            max_total_seeds,
            max_minutes,
            by,
            connection,
        } => {
            let budget = common::Budget {
                max_candidates: max_candidates.unwrap_or(0),
                max_total_seeds: max_total_seeds.unwrap_or(0),
                max_wall_seconds: max_minutes.map_or(0, |m| m.saturating_mul(60)),
            };
            let mut services = Services::open(&connection, &cli.log_filter).await?;
            let outcome = services
                .planner
                .update_budget(pb::UpdateBudgetRequest {
                    research_id,
                    budget: Some(budget),
                    requested_by: by.unwrap_or_default(),
                })
                .await
                .map_err(|s| refused("UpdateBudget", &s));
            services.close().await?;
            outcome?;
            println!("budget change sent: the session applies it before its next candidate");
            Ok(0)
        }
        Command::Pause {
            research_id,
            reason,
            connection,
        } => {
            let mut services = Services::open(&connection, &cli.log_filter).await?;
            let outcome = services
                .planner
                .stop_research(pb::StopResearchRequest {
                    research_id,
                    reason,
                })
                .await
                .map_err(|s| refused("StopResearch", &s));
            services.close().await?;
            let status = outcome?.into_inner();
            print_status(&status, false)?;
            Ok(0)
        }
        Command::Export {
            research_id,
            tensorboard,
            json,
            connection,
        } => {
            let services = Services::open(&connection, &cli.log_filter).await?;
            let outcome = export(
                &services.registry_url,
                &services.credentials,
                &research_id,
                tensorboard.as_deref(),
                json.as_deref(),
            )
            .await;
            services.close().await?;
            outcome.map(|()| 0)
        }
        Command::List { connection } => {
            let services = Services::open(&connection, &cli.log_filter).await?;
            let outcome = list(&services.registry_url, &services.credentials).await;
            services.close().await?;
            outcome.map(|()| 0)
        }
        Command::Serve {
            service,
            host,
            connection,
        } => serve(service, host, &connection, &cli.log_filter)
            .await
            .map(|()| 0),
        Command::Dashboard { host, connection } => dashboard(host, &connection, &cli.log_filter)
            .await
            .map(|()| 0),
    }
}

pub(super) fn goal_overrides(args: &RunArgs) -> common::ResearchGoal {
    common::ResearchGoal {
        dataset: args.dataset.clone().unwrap_or_default(),
        target: (args.metric.is_some() || args.target.is_some()).then(|| common::Target {
            metric: args.metric.clone().unwrap_or_default(),
            threshold: args.target.unwrap_or(0.0),
            direction: 0,
            open_ended: false,
        }),
        confidence: args.confidence.unwrap_or(0.0),
        num_seeds: args.num_seeds.unwrap_or(0),
        max_seeds: args.max_seeds.unwrap_or(0),
        budget: Some(common::Budget {
            max_candidates: args.max_candidates.unwrap_or(0),
            max_total_seeds: args.max_total_seeds.unwrap_or(0),
            max_wall_seconds: args.max_minutes.map_or(0, |m| m.saturating_mul(60)),
        }),
        ..Default::default()
    }
}

pub(super) async fn start_and_follow(
    services: &mut Services,
    args: &RunArgs,
) -> anyhow::Result<u8> {
    let strategy = args
        .strategy
        .and_then(|arg| arg.to_possible_value())
        .and_then(|value| ra_client::strategy::from_name(value.get_name()))
        .unwrap_or(pb::Strategy::Unspecified);
    let mut overrides = goal_overrides(args);
    if let Some(local) = upload::local_dataset(args)? {
        overrides.dataset = match services.stack {
            Some(_) => local.name(),
            None => upload::upload(&local, &services.dataset_url, &services.credentials).await?,
        };
    }
    let request = pb::StartResearchRequest {
        goal_text: args.goal.clone(),
        overrides: Some(overrides),
        strategy: strategy as i32,
        llm: Some(pb::LlmSettings {
            base_url: args.llm_url.clone().unwrap_or_default(),
            model: args.llm_model.clone().unwrap_or_default(),
            timeout_seconds: args.llm_timeout.unwrap_or(0),
            strikes: args.llm_strikes.unwrap_or(0),
            prompt: args.llm_prompt.clone().unwrap_or_default(),
            ..Default::default()
        }),
        seed: args.seed,
        limits: args
            .timeout_seconds
            .map(|timeout_seconds| common::ResourceLimits {
                timeout_seconds,
                ..Default::default()
            }),
        early_stopping: None,
        max_epochs: args.max_epochs.unwrap_or(0),
        device: args.device.clone().unwrap_or_default(),
    };
    let status = services
        .planner
        .start_research(request)
        .await
        .map_err(|s| refused("StartResearch", &s))?
        .into_inner();
    // On stderr even with --json: the id is what `status`, `report` and `resume` take.
    {
        let goal = status.goal.clone().unwrap_or_default();
        let target = goal.target.clone().unwrap_or_default();
        let budget = goal.budget.unwrap_or_default();
        eprintln!(
            "research {}: {} on {}, {} {} at {:.0}% confidence; {} → {} seeds per candidate; budget {} candidates, {} seeds, {} s; device {}",
            status.research_id,
            strategy_name(status.strategy),
            goal.dataset,
            target.metric,
            if target.open_ended {
                format!("{} (open-ended)", ra_client::goal::target_words(&target))
            } else {
                ra_client::goal::target_words(&target)
            },
            goal.confidence * 100.0,
            goal.num_seeds,
            goal.max_seeds,
            budget.max_candidates,
            budget.max_total_seeds,
            budget.max_wall_seconds,
            args.device.as_deref().unwrap_or("the evaluator's default")
        );
    }
    let id = status.research_id.clone();
    if let Some(dashboard) = &services.dashboard_url {
        eprintln!("dashboard: {dashboard}/sessions/{id}");
    }
    follow(&mut services.planner, &id, args.json).await
}

/// Follows a session's events to its end; Ctrl-C asks the planner to stop it (resumable).
pub(super) async fn follow(
    planner: &mut ra_client::PlannerClient,
    research_id: &str,
    json: bool,
) -> anyhow::Result<u8> {
    let mut stream = planner
        .watch_research(pb::WatchResearchRequest {
            research_id: research_id.to_owned(),
            from_position: 0,
        })
        .await
        .map_err(|s| refused("WatchResearch", &s))?
        .into_inner();
    let mut progress = Progress::new(json);
    let mut interrupted = false;
    let finished = loop {
        let event = tokio::select! {
            event = stream.message() => event,
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                interrupted = true;
                progress.note("Ctrl-C: stopping the session (running trials are cancelled; resume later)…");
                let mut stopper = planner.clone();
                let id = research_id.to_owned();
                tokio::spawn(async move {
                    let _ = stopper.stop_research(pb::StopResearchRequest {
                        research_id: id,
                        reason: "interrupted with Ctrl-C".into(),
                    }).await;
                });
                continue;
            }
        };
        match event {
            Ok(Some(event)) => {
                if let Some(pb::research_event::Event::Finished(status)) = event.event {
                    break status;
                }
                progress.show(event);
            }
            Ok(None) => bail!("the planner ended the event stream before the session ended"),
            Err(status) => return Err(refused("WatchResearch", &status)),
        }
    };
    progress.clear();
    print_status(&finished, json)?;
    Ok(exit_code(finished.state()))
}

pub(super) async fn list(
    registry_url: &str,
    credentials: &ra_client::Credentials,
) -> anyhow::Result<()> {
    ra_client::health::check_with(registry_url, ra_proto::service_names::REGISTRY, credentials)
        .await
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("connect to registry-svc at {registry_url}"))?;
    let mut client = ra_client::registry_with("--registry", registry_url, credentials)?.client();
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "research id",
        "status",
        "dataset",
        "goal",
        "created",
    ]);
    let mut page_token = String::new();
    let mut count = 0;
    loop {
        let page = client
            .list_experiments(reg::ListExperimentsRequest {
                status: 0,
                page_size: 500,
                page_token,
            })
            .await
            .map_err(|s| refused("ListExperiments", &s))?
            .into_inner();
        for experiment in &page.experiments {
            count += 1;
            let goal = experiment.goal.clone().unwrap_or_default();
            table.add_row([
                experiment.id.clone(),
                format!("{:?}", experiment.status()).to_uppercase(),
                goal.dataset,
                first_line(&goal.text, 60),
                experiment
                    .created_at
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            ]);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    println!("{table}");
    println!("{count} experiments");
    Ok(())
}

pub(super) async fn serve(
    service: ServiceName,
    host: IpAddr,
    connection: &Connection,
    log_filter: &str,
) -> anyhow::Result<()> {
    let args = ra_serve::ServiceArgs {
        listen: None,
        config: connection.config.clone(),
        log_format: None,
        log_filter: Some(log_filter.to_owned()),
        probe: false,
    };
    // A configuration file says where to listen; otherwise the conventional port on `host`.
    let has_config = args.config.is_some();
    let listen = |port: u16| (!has_config).then(|| std::net::SocketAddr::new(host, port));
    // One service as its own binary would serve it, on its conventional port.
    macro_rules! serve {
        ($name:literal, $service:ident, $config:ident) => {
            Ok(ra_serve::serve_binary(
                $name,
                $service::$config::default(),
                &ra_serve::ServiceArgs {
                    listen: listen($service::config::DEFAULT_PORT),
                    ..args
                },
                |c, l, s| async move { $service::run(&c, l, s).await },
            )
            .await?)
        };
    }
    match service {
        ServiceName::All => {
            let stack = Stack::start(&StackOptions {
                conventional_ports: Some(host),
                ..connection.stack_options(log_filter)
            })
            .await?;
            eprintln!(
                "serving: planner {} evaluator {} sandbox {} dataset {} registry {} (Ctrl-C stops)",
                stack.planner_url(),
                stack.evaluator_url(),
                stack.sandbox_url(),
                stack.dataset_url(),
                stack.registry_url()
            );
            if let Some(dashboard) = stack.dashboard_url() {
                eprintln!("dashboard: {dashboard}/");
            }
            ra_serve::shutdown_signal().await;
            stack.stop().await
        }
        ServiceName::Planner => serve!("planner-svc", planner_svc, PlannerConfig),
        ServiceName::Evaluator => serve!("evaluator-svc", evaluator_svc, EvaluatorConfig),
        ServiceName::Sandbox => serve!("sandbox-svc", sandbox_svc, SandboxConfig),
        ServiceName::Dataset => serve!("dataset-svc", dataset_svc, DatasetConfig),
        ServiceName::Registry => serve!("registry-svc", registry_svc, RegistryConfig),
        ServiceName::Dashboard => serve!("dashboard-svc", dashboard_svc, DashboardConfig),
    }
}

/// `research-agent dashboard`: the sessions of a state folder in the browser, read-only,
/// until Ctrl-C. The embedded services serve on ephemeral ports; the dashboard on `host` at
/// its conventional port.
pub(super) async fn dashboard(
    host: IpAddr,
    connection: &Connection,
    log_filter: &str,
) -> anyhow::Result<()> {
    if !connection.root.join("registry").exists() {
        bail!(
            "{} holds no registry: give the state folder of earlier sessions with --root (default .research-agent)",
            connection.root.display()
        );
    }
    let mut options = connection.stack_options(log_filter);
    // The stack's own dashboard is not started: this one binds the conventional port.
    options.dashboard = None;
    let stack = Stack::start(&options)
        .await
        .context("open the state folder (is a session still running on it? its own dashboard URL is printed by research-agent run)")?;
    let outcome = async {
        let listener = tokio::net::TcpListener::bind((host, dashboard_svc::config::DEFAULT_PORT))
            .await
            .with_context(|| {
                format!(
                    "bind {host}:{} (is another dashboard running?)",
                    dashboard_svc::config::DEFAULT_PORT
                )
            })?;
        let address = listener.local_addr()?;
        let mut config = dashboard_svc::DashboardConfig::default();
        config.dashboard.registry_url = stack.registry_url();
        config.dashboard.evaluator_url = stack.evaluator_url();
        config.dashboard.planner_url = String::new();
        config.dashboard.read_only = true;
        eprintln!(
            "dashboard: http://{address}/ (read-only over {}; Ctrl-C stops)",
            stack.root.display()
        );
        let shutdown = ra_serve::Shutdown::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            ra_serve::shutdown_signal().await;
            trigger.trigger();
        });
        dashboard_svc::run(&config, listener, shutdown).await?;
        anyhow::Ok(())
    }
    .await;
    stack.stop().await?;
    outcome
}

/// A candidate file: `{"model": ModelSpec, "train": TrainSpec}` in the JSON form people and
/// LLMs write, checked before anything is sent.
pub(super) fn read_candidate_file(
    path: &std::path::Path,
) -> anyhow::Result<(common::ModelSpec, common::TrainSpec)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let file = ra_spec::CandidateSpec::from_json(&text).with_context(|| {
        format!(
            "{} is not a candidate: expected {{\"model\": ModelSpec, \"train\": TrainSpec}}",
            path.display()
        )
    })?;
    file.train
        .validate()
        .map_err(|e| anyhow::anyhow!("{}: train: {e}", path.display()))?;
    Ok((
        common::ModelSpec::from(&file.model),
        common::TrainSpec::from(&file.train),
    ))
}

/// `research-agent export`: the registry's TensorBoard files written under `tensorboard`, the
/// JSON document into `json`.
pub(super) async fn export(
    registry_url: &str,
    credentials: &ra_client::Credentials,
    research_id: &str,
    tensorboard: Option<&std::path::Path>,
    json: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let mut client = ra_client::registry_with("--registry", registry_url, credentials)?.client();
    if let Some(path) = json {
        let document = client
            .export_experiment(reg::ExportExperimentRequest {
                experiment_id: research_id.to_owned(),
            })
            .await
            .map_err(|s| refused("ExportExperiment", &s))?
            .into_inner()
            .json;
        std::fs::write(path, document).with_context(|| format!("write {}", path.display()))?;
        eprintln!("records: {}", path.display());
    }
    let Some(folder) = tensorboard else {
        return Ok(());
    };
    let mut stream = client
        .export_tensorboard(reg::ExportTensorboardRequest {
            experiment_id: research_id.to_owned(),
        })
        .await
        .map_err(|s| refused("ExportTensorboard", &s))?
        .into_inner();
    std::fs::create_dir_all(folder).with_context(|| format!("create {}", folder.display()))?;
    let mut current: Option<(String, std::fs::File)> = None;
    let (mut files, mut bytes) = (0usize, 0usize);
    while let Some(chunk) = stream
        .message()
        .await
        .map_err(|s| refused("ExportTensorboard", &s))?
    {
        if current.as_ref().is_none_or(|(path, _)| *path != chunk.path) {
            let relative = std::path::Path::new(&chunk.path);
            // Only plain relative paths: a file never lands outside the folder.
            if chunk.path.is_empty()
                || !relative
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)))
            {
                bail!(
                    "the registry sent a file path that is not a plain relative path: {:?}",
                    chunk.path
                );
            }
            let target = folder.join(relative);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("create {}", parent.display()))?;
            }
            let file = std::fs::File::create(&target)
                .with_context(|| format!("create {}", target.display()))?;
            current = Some((chunk.path.clone(), file));
            files += 1;
        }
        if let Some((_, file)) = current.as_mut() {
            use std::io::Write as _;
            file.write_all(&chunk.data)
                .with_context(|| format!("write {}", chunk.path))?;
            bytes += chunk.data.len();
        }
    }
    eprintln!(
        "tensorboard: {files} event files, {bytes} bytes under {} (tensorboard --logdir {0})",
        folder.display()
    );
    Ok(())
}
