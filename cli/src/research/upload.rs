//! A researcher's own dataset on the way to a session: a relative path made absolute (the
//! embedded dataset-svc reads this machine's disk), or — with `--planner`, whose dataset-svc
//! may run elsewhere — the files sent with UploadDataset, the session then naming the upload.

use std::path::{Path, PathBuf};

use ra_client::local_data::{self, LocalDataset, LocalKind};
use ra_proto::dataset::v1 as ds;

use super::*;

/// Bytes per upload message (well under the 64 MiB message limit).
const CHUNK: usize = 1 << 20;

/// The local dataset `--dataset` or the goal's words name, if any.
pub(super) fn local_dataset(args: &RunArgs) -> anyhow::Result<Option<LocalDataset>> {
    let named = match &args.dataset {
        Some(name) => LocalDataset::parse(name)?,
        None => LocalDataset::find_in_text(&args.goal).map(|(dataset, _)| dataset),
    };
    let cwd = std::env::current_dir().context("read the working directory")?;
    Ok(named.map(|dataset| dataset.absolute(&cwd)))
}

/// The files of `dataset` as upload paths (the name itself, or CLASS/FILE for images).
fn files(dataset: &LocalDataset, path: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    if dataset.kind != LocalKind::Images {
        let name = file_name(path)?;
        return Ok(vec![(name, path.to_path_buf())]);
    }
    let mut files = Vec::new();
    for class in std::fs::read_dir(path).with_context(|| format!("read {}", path.display()))? {
        let class = class?.path();
        if !class.is_dir() || local_data::is_hidden(&file_name(&class)?) {
            continue;
        }
        for file in std::fs::read_dir(&class)? {
            let file = file?.path();
            let name = file_name(&file)?;
            if file.is_file() && local_data::is_image_name(&name) {
                files.push((format!("{}/{name}", file_name(&class)?), file));
            }
        }
    }
    files.sort();
    Ok(files)
}

fn file_name(path: &Path) -> anyhow::Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .with_context(|| format!("{} has no usable file name", path.display()))
}

/// Sends `dataset`'s files to the dataset-svc at `url`; the answer names the upload.
pub(super) async fn upload(
    dataset: &LocalDataset,
    url: &str,
    credentials: &ra_client::Credentials,
) -> anyhow::Result<String> {
    let path = dataset
        .file_path()
        .context("an upload: name is already on the dataset service")?;
    if !path.exists() {
        bail!("{} does not exist", path.display());
    }
    let files = files(dataset, &path)?;
    let options: Vec<String> = dataset
        .options
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let header = ds::UploadDatasetRequest {
        item: Some(ds::upload_dataset_request::Item::Header(ds::UploadHeader {
            kind: dataset.kind.scheme().to_owned(),
            name: file_name(&path)?,
            options: options.join(","),
        })),
    };
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    let reader = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        if sender.send(header).await.is_err() {
            return Ok(());
        }
        for (name, file) in files {
            let mut reader = tokio::fs::File::open(&file)
                .await
                .with_context(|| format!("open {}", file.display()))?;
            let mut buffer = vec![0; CHUNK];
            loop {
                let read = reader.read(&mut buffer).await?;
                if read == 0 {
                    break;
                }
                let chunk = ds::UploadDatasetRequest {
                    item: Some(ds::upload_dataset_request::Item::Chunk(ds::UploadChunk {
                        path: name.clone(),
                        data: buffer[..read].to_vec(),
                    })),
                };
                if sender.send(chunk).await.is_err() {
                    return Ok(());
                }
            }
        }
        anyhow::Ok(())
    });
    let client = ra_client::dataset_with("--dataset-service", url, credentials)?;
    let mut client = client.client();
    let answer = client
        .upload_dataset(tokio_stream::wrappers::ReceiverStream::new(receiver))
        .await;
    reader.await.context("the upload's reader")??;
    let answer = answer
        .map_err(|s| super::commands::refused("UploadDataset", &s))?
        .into_inner();
    eprintln!(
        "uploaded {} file(s), {} bytes, to dataset-svc at {url} as {}",
        answer.files, answer.bytes, answer.name
    );
    Ok(answer.name)
}
