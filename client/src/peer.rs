//! One peer as a caller sees it: its typed client, its name for messages ("registry-svc at
//! http://…") and the retry rule, with the call shapes every service needs — one call, a
//! create whose id was chosen by the caller, and every page of a list.

use std::future::Future;

use tonic::{Code, Status};

use crate::retry::Retry;

/// The page size asked for when listing everything.
pub const PAGE: u32 = 500;

/// A peer's client with its name and retry rule; cheap to clone (channels are shared).
#[derive(Debug, Clone)]
pub struct Peer<C> {
    client: C,
    name: String,
    retry: Retry,
}

impl<C: Clone> Peer<C> {
    pub fn new(client: C, name: String) -> Self {
        Self {
            client,
            name,
            retry: Retry::default(),
        }
    }

    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// The client itself, for a call that must not be retried (a stream, a long wait).
    pub fn client(&self) -> C {
        self.client.clone()
    }

    /// "registry-svc at http://…".
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn retry(&self) -> Retry {
        self.retry
    }

    /// One call through the retry rule, answering the message.
    pub async fn call<T, F, Fut>(&self, call: F) -> Result<T, Status>
    where
        F: FnMut(C) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.run(call).await.map(tonic::Response::into_inner)
    }

    /// Any work with the client (a call, a stream read to its end) through the retry rule.
    pub async fn run<T, F, Fut>(&self, mut work: F) -> Result<T, Status>
    where
        F: FnMut(C) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        self.retry
            .run(&self.name, || work(self.client.clone()))
            .await
    }

    /// Creates a record whose id was chosen by the caller; ALREADY_EXISTS on a retried create
    /// means the first try landed, and `get` reads it back.
    pub async fn create_once<T, Cr, CrF, G, GF>(&self, create: Cr, get: G) -> Result<T, Status>
    where
        Cr: FnMut(C) -> CrF,
        CrF: Future<Output = Result<tonic::Response<T>, Status>>,
        G: FnMut(C) -> GF,
        GF: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        match self.call(create).await {
            Err(status) if status.code() == Code::AlreadyExists => self.call(get).await,
            other => other,
        }
    }

    /// Every item of a paged list: `page(client, token)` answers one page's items and the
    /// next token ("" after the last page); each page goes through the retry rule.
    pub async fn all_pages<T, F, Fut>(&self, mut page: F) -> Result<Vec<T>, Status>
    where
        F: FnMut(C, String) -> Fut,
        Fut: Future<Output = Result<(Vec<T>, String), Status>>,
    {
        let mut items = Vec::new();
        let mut token = String::new();
        loop {
            let (batch, next) = self
                .retry
                .run(&self.name, || page(self.client.clone(), token.clone()))
                .await?;
            items.extend(batch);
            if next.is_empty() {
                return Ok(items);
            }
            if next == token {
                return Err(Status::internal(format!(
                    "{} answered the same page token twice; stopping the listing",
                    self.name
                )));
            }
            token = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[derive(Clone)]
    struct Pages(Arc<AtomicU32>);

    #[tokio::test]
    async fn all_pages_follows_tokens_and_retries_each_page() {
        let peer = Peer::new(Pages(Arc::new(AtomicU32::new(0))), "fake-svc".to_owned()).with_retry(
            Retry {
                attempts: 3,
                initial_backoff: std::time::Duration::from_millis(1),
                max_backoff: std::time::Duration::from_millis(1),
            },
        );
        let items = peer
            .all_pages(|client, token| async move {
                let call = client.0.fetch_add(1, Ordering::SeqCst);
                match (call, token.as_str()) {
                    (1, _) => Err(Status::unavailable("blip")),
                    (_, "") => Ok((vec![1, 2], "b".to_owned())),
                    (_, "b") => Ok((vec![3], String::new())),
                    _ => Err(Status::internal("unexpected token")),
                }
            })
            .await
            .expect("listed");
        assert_eq!(items, vec![1, 2, 3]);
        let looping = peer
            .all_pages(|_, _| async { Ok((vec![0], "same".to_owned())) })
            .await;
        assert_eq!(looping.expect_err("refused").code(), Code::Internal);
    }
}
