//! The tonic adapter of EvaluatorService: requests checked into plans, the evaluation run in
//! its own task (so that a caller who goes away cancels it cleanly), queries answered from the
//! registry.

use std::pin::Pin;

use ra_proto::evaluator::v1 as pb;
use ra_proto::evaluator::v1::evaluator_service_server::{EvaluatorService, EvaluatorServiceServer};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::error::EvaluatorError;
use crate::evaluation::Evaluator;
use crate::{plan, queries};

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::EvaluateEvent, Status>> + Send + 'static>>;

/// Events buffered per Evaluate call before the evaluation waits for the caller.
const EVENT_BUFFER: usize = 256;

#[derive(Clone)]
pub struct EvaluatorGrpc {
    evaluator: Evaluator,
    max_message_bytes: usize,
}

impl EvaluatorGrpc {
    pub fn new(evaluator: Evaluator, max_message_bytes: usize) -> Self {
        Self {
            evaluator,
            max_message_bytes,
        }
    }

    pub fn into_server(self) -> EvaluatorServiceServer<Self> {
        let limit = self.max_message_bytes;
        EvaluatorServiceServer::new(self)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit)
    }
}

#[tonic::async_trait]
impl EvaluatorService for EvaluatorGrpc {
    type EvaluateStream = EventStream;

    async fn evaluate(
        &self,
        request: Request<pb::EvaluateRequest>,
    ) -> Result<Response<Self::EvaluateStream>, Status> {
        let plan = plan::plan(request.into_inner(), self.evaluator.settings.max_seeds)?;
        let (sender, receiver) = tokio::sync::mpsc::channel(EVENT_BUFFER);
        let cancelled = CancellationToken::new();
        let evaluator = self.evaluator.clone();
        tokio::spawn({
            let cancelled = cancelled.clone();
            let sender = sender.clone();
            async move {
                // The caller leaving closes the channel: cancel the evaluation's jobs.
                let watch = tokio::spawn({
                    let cancelled = cancelled.clone();
                    let sender = sender.clone();
                    async move {
                        sender.closed().await;
                        cancelled.cancel();
                    }
                });
                let outcome = evaluator.evaluate(plan, sender.clone(), cancelled).await;
                let last = outcome
                    .map(|result| pb::EvaluateEvent {
                        event: Some(pb::evaluate_event::Event::Result(result)),
                    })
                    .map_err(EvaluatorError::into_status);
                if let Err(status) = &last {
                    tracing::warn!(code = ?status.code(), error = %status.message(), "evaluation ended with an error");
                }
                let _ = sender.send(last).await;
                watch.abort();
            }
        });
        drop(sender);
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn compare(
        &self,
        request: Request<pb::CompareRequest>,
    ) -> Result<Response<pb::Comparison>, Status> {
        queries::compare(&self.evaluator.ledger, request.into_inner())
            .await
            .map(Response::new)
            .map_err(EvaluatorError::into_status)
    }

    async fn get_evaluation(
        &self,
        request: Request<pb::GetEvaluationRequest>,
    ) -> Result<Response<pb::EvaluationResult>, Status> {
        queries::get_evaluation(&self.evaluator.ledger, &request.into_inner().evaluation_id)
            .await
            .map(Response::new)
            .map_err(EvaluatorError::into_status)
    }

    async fn assess_experiment(
        &self,
        request: Request<pb::AssessExperimentRequest>,
    ) -> Result<Response<pb::ExperimentAssessment>, Status> {
        queries::assess(&self.evaluator.ledger, request.into_inner())
            .await
            .map(Response::new)
            .map_err(EvaluatorError::into_status)
    }
}
