//! Downloads of original files: a `.part` file beside the destination that a later attempt
//! resumes with an HTTP range request, bounded retries with backoff when the connection drops,
//! progress in bytes, and the sha256 checked before the file takes its final name (a file
//! that does not match is deleted, never kept under the real name).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::{DatasetError, io};
use crate::progress::{Progress, Report};

/// How downloads behave.
#[derive(Debug, Clone)]
pub struct Downloader {
    agent: ureq::Agent,
    /// Attempts per file (the first included) before giving up.
    attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    first_backoff: Duration,
    /// A file growing past this is refused and deleted (a wrong URL or a hostile server must
    /// not fill the disk).
    max_bytes: u64,
}

/// One file to fetch.
#[derive(Debug, Clone, Copy)]
pub struct Fetch<'a> {
    pub url: &'a str,
    pub sha256: Option<&'a str>,
    /// 0 where unknown.
    pub size_bytes: u64,
}

/// Report progress at most this often, in bytes.
const REPORT_EVERY: u64 = 1 << 20;

impl Downloader {
    pub fn new(attempts: u32, first_backoff: Duration, max_bytes: u64) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .user_agent(concat!(
                "research-agent-dataset-svc/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .into();
        Self {
            agent,
            attempts: attempts.max(1),
            first_backoff,
            max_bytes,
        }
    }

    /// Fetches `fetch.url` into `destination`, resuming a `.part` file left by an earlier
    /// attempt, and returns the file's sha256.
    pub fn fetch(
        &self,
        fetch: Fetch<'_>,
        destination: &Path,
        report: Report<'_>,
    ) -> Result<String, DatasetError> {
        if let Some(parent) = destination.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let part = part_path(destination);
        let mut last_error = String::new();
        for attempt in 0..self.attempts {
            self.back_off(attempt);
            match self.attempt(fetch, &part, report) {
                Ok(()) => return finish(fetch, &part, destination, report),
                Err(Failure::Retry(message)) => {
                    tracing::warn!(url = fetch.url, attempt, %message, "download interrupted");
                    last_error = message;
                }
                Err(Failure::Fatal(error)) => return Err(error),
            }
        }
        Err(DatasetError::Download {
            url: fetch.url.to_owned(),
            message: format!(
                "gave up after {} attempts ({last_error}); {} bytes are kept in {} for the next try",
                self.attempts,
                part.metadata().map(|m| m.len()).unwrap_or(0),
                part.display()
            ),
        })
    }

    /// Waits before attempt `attempt` (none before the first; then doubling).
    fn back_off(&self, attempt: u32) {
        if attempt > 0 {
            std::thread::sleep(self.first_backoff * 2u32.saturating_pow(attempt - 1));
        }
    }

    /// A small JSON document (an API listing); `Ok(None)` when the server answers 404.
    pub fn get_json(&self, url: &str) -> Result<Option<serde_json::Value>, DatasetError> {
        let failed = |message: String| DatasetError::Download {
            url: url.to_owned(),
            message,
        };
        let mut last_error = String::new();
        for attempt in 0..self.attempts {
            self.back_off(attempt);
            let mut response = match self.agent.get(url).call() {
                Ok(response) => response,
                Err(error) => {
                    last_error = error.to_string();
                    continue;
                }
            };
            match response.status().as_u16() {
                200 => {
                    let body = response
                        .body_mut()
                        .read_to_string()
                        .map_err(|e| failed(e.to_string()))?;
                    return serde_json::from_str(&body)
                        .map(Some)
                        .map_err(|e| failed(format!("the answer is not JSON: {e}")));
                }
                401 | 404 => return Ok(None),
                status @ (429 | 500..=599) => last_error = format!("HTTP {status}"),
                status => return Err(failed(format!("the server answered HTTP {status}"))),
            }
        }
        Err(failed(format!(
            "gave up after {} attempts ({last_error})",
            self.attempts
        )))
    }

    /// One request: resume from the `.part` file's length, append what arrives.
    fn attempt(&self, fetch: Fetch<'_>, part: &Path, report: Report<'_>) -> Result<(), Failure> {
        let have = part.metadata().map(|m| m.len()).unwrap_or(0);
        let mut request = self.agent.get(fetch.url);
        if have > 0 {
            request = request.header("Range", format!("bytes={have}-"));
        }
        let response = request.call().map_err(|error| match error {
            ureq::Error::BadUri(_) | ureq::Error::Http(_) => {
                Failure::Fatal(DatasetError::Download {
                    url: fetch.url.to_owned(),
                    message: error.to_string(),
                })
            }
            other => Failure::Retry(other.to_string()),
        })?;
        let status = response.status().as_u16();
        let (mut file, start) = match status {
            206 => {
                let file = OpenOptions::new()
                    .append(true)
                    .open(part)
                    .map_err(|e| Failure::Fatal(io(part)(e)))?;
                (file, have)
            }
            200 => (
                File::create(part).map_err(|e| Failure::Fatal(io(part)(e)))?,
                0,
            ),
            // The range starts at the end: the part file is complete.
            416 if have > 0 => return Ok(()),
            500..=599 | 429 => return Err(Failure::Retry(format!("HTTP {status}"))),
            _ => {
                return Err(Failure::Fatal(DatasetError::Download {
                    url: fetch.url.to_owned(),
                    message: format!("the server answered HTTP {status}"),
                }));
            }
        };
        let remaining = response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let total = remaining.map_or(fetch.size_bytes, |r| r + start);
        let mut reader = response.into_body().into_reader();
        let mut buffer = vec![0u8; 64 * 1024];
        let (mut done, mut reported) = (start, start);
        loop {
            let read = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(error) => return Err(Failure::Retry(error.to_string())),
            };
            file.write_all(&buffer[..read])
                .map_err(|e| Failure::Fatal(io(part)(e)))?;
            done += read as u64;
            if done > self.max_bytes {
                drop(file);
                let _ = std::fs::remove_file(part);
                return Err(Failure::Fatal(DatasetError::Download {
                    url: fetch.url.to_owned(),
                    message: format!(
                        "the file grew past data.max_download_bytes ({} bytes) and was deleted",
                        self.max_bytes
                    ),
                }));
            }
            if done - reported >= REPORT_EVERY {
                reported = done;
                report(Progress::bytes("download", done, total, fetch.url));
            }
        }
        file.sync_all().map_err(|e| Failure::Fatal(io(part)(e)))?;
        if let Some(expected) = remaining
            && done < start + expected
        {
            return Err(Failure::Retry(format!(
                "the connection closed after {done} of {} bytes",
                start + expected
            )));
        }
        report(Progress::bytes(
            "download",
            done,
            total.max(done),
            fetch.url,
        ));
        Ok(())
    }
}

enum Failure {
    /// Worth another attempt (a dropped connection, a server error).
    Retry(String),
    Fatal(DatasetError),
}

fn part_path(destination: &Path) -> PathBuf {
    let mut name = destination.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    destination.with_file_name(name)
}

/// Checks the complete `.part` file and gives it its final name.
fn finish(
    fetch: Fetch<'_>,
    part: &Path,
    destination: &Path,
    report: Report<'_>,
) -> Result<String, DatasetError> {
    report(Progress::at(
        "verify",
        0.0,
        format!("sha256 of {}", part.display()),
    ));
    let mut file = File::open(part).map_err(io(part))?;
    let mut digest = Sha256::new();
    std::io::copy(&mut file, &mut digest).map_err(io(part))?;
    let found = hex::encode(digest.finalize());
    if let Some(expected) = fetch.sha256
        && expected != found
    {
        std::fs::remove_file(part).map_err(io(part))?;
        return Err(DatasetError::Checksum {
            path: destination.to_path_buf(),
            expected: expected.to_owned(),
            found,
        });
    }
    std::fs::rename(part, destination).map_err(io(destination))?;
    report(Progress::at(
        "verify",
        1.0,
        format!("{} verified", destination.display()),
    ));
    Ok(found)
}
