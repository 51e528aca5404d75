//! A handler that panics answers INTERNAL with the panic's message, and the same server keeps
//! answering the next requests (on a real socket, through the generated client).

use std::time::Duration;

use ra_proto::evaluator::v1 as ev;
use ra_proto::evaluator::v1::evaluator_service_client::EvaluatorServiceClient;
use ra_proto::evaluator::v1::evaluator_service_server::{EvaluatorService, EvaluatorServiceServer};
use ra_serve::{GrpcServer, ServerSettings, Shutdown};
use tonic::service::Routes;
use tonic::{Request, Response, Status};

/// Panics in Compare (on a byte offset inside a character, as a real bug once did); answers
/// GetEvaluation normally.
struct Panicky;

#[tonic::async_trait]
impl EvaluatorService for Panicky {
    type EvaluateStream = std::pin::Pin<
        Box<dyn tokio_stream::Stream<Item = Result<ev::EvaluateEvent, Status>> + Send>,
    >;

    async fn evaluate(
        &self,
        _: Request<ev::EvaluateRequest>,
    ) -> Result<Response<Self::EvaluateStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn compare(
        &self,
        request: Request<ev::CompareRequest>,
    ) -> Result<Response<ev::Comparison>, Status> {
        let text = format!("—{}", request.into_inner().evaluation_a);
        let _ = &text[..1];
        Err(Status::unknown("unreachable"))
    }

    async fn get_evaluation(
        &self,
        _: Request<ev::GetEvaluationRequest>,
    ) -> Result<Response<ev::EvaluationResult>, Status> {
        Err(Status::not_found("no such evaluation"))
    }

    async fn assess_experiment(
        &self,
        _: Request<ev::AssessExperimentRequest>,
    ) -> Result<Response<ev::ExperimentAssessment>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

#[tokio::test]
async fn a_panicking_handler_answers_internal_and_the_server_keeps_serving() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let settings = ServerSettings::with_port(0);
    let server = GrpcServer::new(
        Routes::new(EvaluatorServiceServer::new(Panicky)),
        &[ra_proto::service_names::EVALUATOR],
    )
    .await;
    let shutdown = Shutdown::new();
    let task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { server.serve(listener, &settings, shutdown).await }
    });
    let mut client = loop {
        match EvaluatorServiceClient::connect(format!("http://{address}")).await {
            Ok(client) => break client,
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    for _ in 0..3 {
        let status = client
            .compare(ev::CompareRequest::default())
            .await
            .expect_err("the handler panics");
        assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
        assert!(
            status
                .message()
                .contains("byte index 1 is not a char boundary"),
            "the panic's message reaches the client: {:?}",
            status.message()
        );
        let status = client
            .get_evaluation(ev::GetEvaluationRequest::default())
            .await
            .expect_err("not found");
        assert_eq!(
            status.code(),
            tonic::Code::NotFound,
            "still serving after a panic"
        );
    }
    shutdown.trigger();
    task.await.expect("join").expect("server stops cleanly");
}
