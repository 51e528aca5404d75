//! The download path against a real HTTP server on 127.0.0.1 (a small one written here, so
//! that it can drop a connection half-way): originals fetched through `data.mirror_url` and
//! verified, a checksum mismatch refused with nothing kept under the real name, a transfer
//! resumed with a range request after the connection dropped, and the offline setting.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use dataset_svc::config::DataSettings;
use dataset_svc::service::{Datasets, Origin};
use dataset_svc::{DatasetConfig, DatasetError, PrepareOptions, Progress};
use ra_test_support::shared_data_or_skip;

/// What the server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    range: Option<String>,
}

/// Serves `files` (URL path → bytes); the first request for a path in `drop_first` gets the
/// headers and half the body, then the connection closes.
struct FileServer {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FileServer {
    fn start(files: HashMap<String, Vec<u8>>, drop_first: &[&str]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let mut droppable: Vec<String> = drop_first.iter().map(|p| (*p).to_owned()).collect();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let Some(request) = read_request(&stream) else {
                    continue;
                };
                log.lock().expect("log").push(request.clone());
                let drop_now = droppable
                    .iter()
                    .position(|p| *p == request.path)
                    .map(|i| droppable.remove(i))
                    .is_some();
                answer(stream, &files, &request, drop_now);
            }
        });
        Self { base, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("log").clone()
    }
}

fn read_request(stream: &TcpStream) -> Option<Seen> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut first = String::new();
    reader.read_line(&mut first).ok()?;
    let path = first.split_whitespace().nth(1)?.to_owned();
    let mut range = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("range")
        {
            range = Some(value.trim().to_owned());
        }
    }
    Some(Seen { path, range })
}

fn answer(mut stream: TcpStream, files: &HashMap<String, Vec<u8>>, request: &Seen, drop_now: bool) {
    let Some(body) = files.get(&request.path) else {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let start = request
        .range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok());
    let (status, slice) = match start {
        Some(start) if start < body.len() => ("206 Partial Content", &body[start..]),
        Some(_) => ("416 Range Not Satisfiable", &body[..0]),
        None => ("200 OK", &body[..]),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
        slice.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let sent = if drop_now {
        slice.len() / 2
    } else {
        slice.len()
    };
    let _ = stream.write_all(&slice[..sent]);
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

fn settings(data_dir: &Path, cache: &Path, mirror: &str) -> DataSettings {
    DataSettings {
        data_dir: data_dir.to_path_buf(),
        cache_dir: cache.to_path_buf(),
        mirror_url: mirror.to_owned(),
        ..DatasetConfig::default().data
    }
}

fn prepare(
    datasets: &Datasets,
    name: &str,
    origin: &Origin,
) -> Result<(Vec<Progress>, String), DatasetError> {
    let mut events = Vec::new();
    let prepared = datasets.prepare(name, origin, &PrepareOptions::default(), &mut |p| {
        events.push(p)
    })?;
    Ok((events, prepared.manifest().prepared_id.clone()))
}

#[test]
fn originals_download_verified_and_a_dropped_transfer_resumes_with_a_range_request() {
    let Some(shared) = shared_data_or_skip("dataset-svc download") else {
        return;
    };
    let digits = std::fs::read(shared.join("digits/digits.csv.gz")).expect("digits");
    let images = std::fs::read(shared.join("mnist/t10k-images-idx3-ubyte.gz")).expect("images");
    let files = HashMap::from([
        ("/digits/digits.csv.gz".to_owned(), digits.clone()),
        ("/iris/iris.csv".to_owned(), b"not the iris file".to_vec()),
    ]);
    let server = FileServer::start(files, &["/digits/digits.csv.gz"]);
    let (data, cache) = (
        tempfile::tempdir().expect("data"),
        tempfile::tempdir().expect("cache"),
    );
    let datasets = Datasets::new(settings(data.path(), cache.path(), &server.base));

    let (events, id) = prepare(&datasets, "digits", &Origin::default()).expect("downloaded");
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].range, None);
    assert_eq!(
        seen[1].range.as_deref(),
        Some(format!("bytes={}-", digits.len() / 2).as_str()),
        "the second request resumes where the first stopped"
    );
    assert_eq!(
        std::fs::read(data.path().join("digits/digits.csv.gz")).expect("kept"),
        digits
    );
    assert!(!data.path().join("digits/digits.csv.gz.part").exists());
    let stages: Vec<&str> = events.iter().map(|e| e.stage).collect();
    for stage in ["download", "verify", "parse", "preprocess", "write"] {
        assert!(stages.contains(&stage), "{stage} missing from {stages:?}");
    }
    let last_download = events
        .iter()
        .rev()
        .find(|e| e.stage == "download")
        .expect("download");
    assert_eq!(last_download.bytes_done, digits.len() as u64);
    assert_eq!(last_download.fraction, 1.0);
    let manifest = datasets.get_prepared(&id).expect("prepared");
    assert!(
        manifest.manifest().checksums_verified,
        "downloaded and checked against the pin"
    );

    // A mirror serving other bytes for a pinned file: refused, nothing under the real name.
    let error = prepare(&datasets, "iris", &Origin::default()).expect_err("mismatch");
    assert!(matches!(error, DatasetError::Checksum { .. }), "{error}");
    assert!(error.to_string().contains("f13ffa8f"), "{error}");
    assert!(!data.path().join("iris/iris.csv").exists());
    assert!(!data.path().join("iris/iris.csv.part").exists());

    // A file the mirror does not have (the t10k labels are missing here): a clear refusal
    // naming the URL and the status.
    let mnist_dir = data.path().join("mnist");
    std::fs::create_dir_all(&mnist_dir).expect("mnist dir");
    std::fs::write(mnist_dir.join("t10k-images-idx3-ubyte.gz"), &images).expect("images");
    let error = prepare(&datasets, "mnist", &Origin::default()).expect_err("404");
    let message = error.to_string();
    assert!(matches!(error, DatasetError::Download { .. }), "{message}");
    assert!(
        message.contains("HTTP 404") && message.contains("/mnist/"),
        "{message}"
    );
}

#[test]
fn offline_and_by_hand_originals_are_refused_with_the_files_to_put_where() {
    let (data, cache) = (
        tempfile::tempdir().expect("data"),
        tempfile::tempdir().expect("cache"),
    );
    let datasets = Datasets::new(settings(data.path(), cache.path(), "http://127.0.0.1:9"));
    let offline = Origin {
        offline: true,
        ..Origin::default()
    };
    let message = prepare(&datasets, "mnist", &offline)
        .expect_err("offline")
        .to_string();
    let folder = data.path().join("mnist");
    assert!(
        message.contains("downloads are off")
            && message.contains("t10k-images-idx3-ubyte.gz")
            && message.contains(&folder.display().to_string()),
        "{message}"
    );
    let message = prepare(&datasets, "titanic", &Origin::default())
        .expect_err("by hand")
        .to_string();
    assert!(
        message.contains("by hand") && message.contains("kaggle.com"),
        "{message}"
    );
    // The service-wide setting refuses as the request flag does.
    let mut config = settings(data.path(), cache.path(), "");
    config.offline = true;
    let message = prepare(&Datasets::new(config), "iris", &Origin::default())
        .expect_err("offline service")
        .to_string();
    assert!(
        message.contains("downloads are off") && message.contains("iris.csv"),
        "{message}"
    );
    assert_eq!(
        std::fs::read_dir(cache.path())
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
}
