//! Researchers' own files as datasets (`csv:`, `tsv:`, `parquet:`, `images:`, `text:`), written
//! here: prepared through the service and over real gRPC, identified by content, described, and
//! uploaded with UploadDataset; every refusal (missing file, no label column, a single class,
//! ragged rows, mixed image sizes, over the size cap, outside `local_roots`) with its code.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use dataset_svc::DatasetConfig;
use dataset_svc::config::DataSettings;
use dataset_svc::service::{Datasets, Origin};
use dataset_svc::{DatasetError, PrepareOptions};
use futures::StreamExt;
use ra_prepared::PreparedDataset;
use ra_proto::dataset::v1 as pb;
use ra_proto::dataset::v1::dataset_service_client::DatasetServiceClient;
use ra_serve::Shutdown;
use ra_spec::InputSpec;
use tonic::Code;

fn datasets(root: &Path) -> Datasets {
    Datasets::new(settings(root))
}

fn settings(root: &Path) -> DataSettings {
    DataSettings {
        data_dir: root.join("data"),
        cache_dir: root.join("cache"),
        offline: true,
        ..DatasetConfig::default().data
    }
}

fn prepare(datasets: &Datasets, name: &str) -> Result<PreparedDataset, DatasetError> {
    datasets.prepare(
        name,
        &Origin::default(),
        &PrepareOptions::default(),
        &mut |_| {},
    )
}

/// Rows of a made-up flower table: two measurements and a species, 20 per class.
fn flowers_csv() -> String {
    let mut text = String::from("petal_cm,species,sepal_cm\n");
    for i in 0..60 {
        let (species, base) = match i % 3 {
            0 => ("setosa", 1.0),
            1 => ("versicolor", 4.0),
            _ => ("virginica", 6.0),
        };
        text.push_str(&format!(
            "{},{species},{}\n",
            base + f64::from(i % 7) * 0.1,
            3.0 + f64::from(i % 5) * 0.2
        ));
    }
    text
}

#[test]
fn csv_tsv_and_the_scikit_learn_layout_prepare_with_the_label_column_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let datasets = datasets(dir.path());
    let csv = dir.path().join("flowers.csv");
    std::fs::write(&csv, flowers_csv()).expect("write");
    // A column named like a label is found; the others are features.
    let prepared =
        prepare(&datasets, &format!("csv:{}#label=species", csv.display())).expect("csv");
    let manifest = prepared.manifest();
    assert_eq!(manifest.class_names, ["setosa", "versicolor", "virginica"]);
    assert_eq!(manifest.input, InputSpec::Tabular { features: 2 });
    assert!(
        !manifest.checksums_verified,
        "no canonical checksum for your own files"
    );
    // The content is the identity: a copy elsewhere is the same prepared dataset.
    let copy_dir = dir.path().join("elsewhere");
    std::fs::create_dir_all(&copy_dir).expect("folder");
    std::fs::copy(&csv, copy_dir.join("flowers.csv")).expect("copy");
    let again = prepare(
        &datasets,
        &format!(
            "csv:{}#label=species",
            copy_dir.join("flowers.csv").display()
        ),
    )
    .expect("copy");
    assert_eq!(again.manifest().prepared_id, manifest.prepared_id);
    // By index: column 1 is the species too; the name differs, so the id does.
    let by_index = prepare(&datasets, &format!("csv:{}#label=1", csv.display())).expect("index");
    assert_eq!(by_index.manifest().class_names, manifest.class_names);

    // No header, numbers only: the last column is the label (integers sort numerically).
    let tsv = dir.path().join("numbers.tsv");
    let rows: String = (0..40)
        .map(|i| {
            format!(
                "{}\t{}\t{}\n",
                i % 4,
                (i * 7) % 11,
                if i % 2 == 0 { 10 } else { 2 }
            )
        })
        .collect();
    std::fs::write(&tsv, rows).expect("write");
    let prepared = prepare(&datasets, &format!("tsv:{}", tsv.display())).expect("tsv");
    assert_eq!(prepared.manifest().class_names, ["2", "10"]);
    assert_eq!(
        prepared.manifest().input,
        InputSpec::Tabular { features: 2 }
    );

    // scikit-learn's layout: "n_samples,n_features,class names…" first.
    let sklearn = dir.path().join("small_iris.csv");
    let mut text = String::from("6,2,setosa,versicolor,virginica\n");
    for i in 0..6 {
        text.push_str(&format!("{}.1,{}.5,{}\n", i, i + 1, i % 3));
    }
    std::fs::write(&sklearn, &text).expect("write");
    let prepared = prepare(&datasets, &format!("csv:{}", sklearn.display())).expect("sklearn");
    assert_eq!(
        prepared.manifest().class_names,
        ["setosa", "versicolor", "virginica"]
    );
    // … and a truncated copy is refused, saying so.
    std::fs::write(
        &sklearn,
        text.lines().take(5).collect::<Vec<_>>().join("\n"),
    )
    .expect("write");
    let refused = prepare(&datasets, &format!("csv:{}", sklearn.display())).expect_err("truncated");
    assert!(refused.to_string().contains("says 6 samples"), "{refused}");
}

#[test]
fn parquet_tables_and_text_files_prepare() {
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    let dir = tempfile::tempdir().expect("tempdir");
    let datasets = datasets(dir.path());
    let path = dir.path().join("table.parquet");
    let schema = Arc::new(
        parse_message_type(
            "message schema { REQUIRED DOUBLE x; REQUIRED BYTE_ARRAY target (UTF8); }",
        )
        .expect("schema"),
    );
    let file = File::create(&path).expect("create");
    let mut writer =
        SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::builder().build()))
            .expect("writer");
    let mut group = writer.next_row_group().expect("group");
    let xs: Vec<f64> = (0..30).map(f64::from).collect();
    let labels: Vec<ByteArray> = (0..30)
        .map(|i| ByteArray::from(if i < 15 { "low" } else { "high" }))
        .collect();
    let mut column = group.next_column().expect("column").expect("x");
    column
        .typed::<DoubleType>()
        .write_batch(&xs, None, None)
        .expect("xs");
    column.close().expect("close");
    let mut column = group.next_column().expect("column").expect("target");
    column
        .typed::<ByteArrayType>()
        .write_batch(&labels, None, None)
        .expect("labels");
    column.close().expect("close");
    group.close().expect("group");
    writer.close().expect("file");
    let prepared = prepare(&datasets, &format!("parquet:{}", path.display())).expect("parquet");
    assert_eq!(prepared.manifest().class_names, ["high", "low"]);
    assert_eq!(
        prepared.manifest().input,
        InputSpec::Tabular { features: 1 }
    );

    // JSON lines with the usual column names, and a TSV naming them.
    let jsonl = dir.path().join("reviews.jsonl");
    let lines: String = (0..40)
        .map(|i| {
            let (text, label) = if i % 2 == 0 {
                ("a wonderful warm film", "pos")
            } else {
                ("a dull cold mess", "neg")
            };
            format!(
                "{}\n",
                serde_json::json!({"review": format!("{text} {i}"), "sentiment": label})
            )
        })
        .collect();
    std::fs::write(&jsonl, lines).expect("write");
    let prepared = prepare(&datasets, &format!("text:{}", jsonl.display())).expect("jsonl");
    assert_eq!(prepared.manifest().class_names, ["neg", "pos"]);
    assert!(matches!(prepared.manifest().input, InputSpec::Text { .. }));
    let tsv = dir.path().join("notes.tsv");
    let rows: String = std::iter::once("body\tkind\n".to_owned())
        .chain((0..30).map(|i| {
            format!(
                "note number {i} about {}\t{}\n",
                if i % 3 == 0 { "cats" } else { "dogs" },
                i % 3 == 0
            )
        }))
        .collect();
    std::fs::write(&tsv, rows).expect("write");
    let prepared = prepare(
        &datasets,
        &format!("text:{}#text=body,label=kind", tsv.display()),
    )
    .expect("tsv");
    assert_eq!(prepared.manifest().class_names, ["false", "true"]);
    // Without a label column it says which to name.
    let refused = prepare(&datasets, &format!("text:{}", tsv.display())).expect_err("no label");
    assert!(refused.to_string().contains("#label=COLUMN"), "{refused}");
}

fn write_png(path: &Path, side: u32, shade: u8) {
    let image = image::RgbImage::from_fn(side, side, |x, y| {
        image::Rgb([shade, (x * 10) as u8, (y * 10) as u8])
    });
    image.save(path).expect("png");
}

#[test]
fn image_folders_prepare_and_mixed_sizes_need_a_declared_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let datasets = datasets(dir.path());
    let pictures = dir.path().join("pictures");
    for (class, shade) in [("dark", 20u8), ("light", 230u8)] {
        std::fs::create_dir_all(pictures.join(class)).expect("folder");
        for i in 0..6 {
            write_png(&pictures.join(class).join(format!("{i}.png")), 12, shade);
        }
    }
    // A JPEG among them.
    image::RgbImage::from_pixel(12, 12, image::Rgb([30, 30, 30]))
        .save(pictures.join("dark").join("extra.jpg"))
        .expect("jpeg");
    let prepared = prepare(&datasets, &format!("images:{}", pictures.display())).expect("images");
    assert_eq!(prepared.manifest().class_names, ["dark", "light"]);
    assert_eq!(
        prepared.manifest().input,
        InputSpec::Image {
            channels: 3,
            height: 12,
            width: 12
        }
    );
    write_png(&pictures.join("light").join("big.png"), 20, 200);
    let refused = prepare(&datasets, &format!("images:{}", pictures.display())).expect_err("mixed");
    assert!(
        refused.to_string().contains("mixed image sizes"),
        "{refused}"
    );
    assert!(refused.to_string().contains("#size=32"), "{refused}");
    let resized = prepare(
        &datasets,
        &format!("images:{}#size=8,channels=1", pictures.display()),
    )
    .expect("resized");
    assert_eq!(
        resized.manifest().input,
        InputSpec::Image {
            channels: 1,
            height: 8,
            width: 8
        }
    );
    // One class folder is not a classification.
    let single = dir.path().join("single");
    std::fs::create_dir_all(single.join("only")).expect("folder");
    write_png(&single.join("only").join("a.png"), 4, 1);
    let refused = prepare(&datasets, &format!("images:{}", single.display())).expect_err("single");
    assert!(
        refused.to_string().contains("single class folder"),
        "{refused}"
    );
}

#[test]
fn bad_files_are_refused_with_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let datasets = datasets(dir.path());
    let missing = prepare(&datasets, "csv:/nowhere/mine.csv").expect_err("missing");
    assert!(
        matches!(missing, DatasetError::NotThere { .. }),
        "{missing}"
    );
    let single = dir.path().join("single.csv");
    std::fs::write(&single, "x,label\n1,a\n2,a\n3,a\n").expect("write");
    let refused = prepare(&datasets, &format!("csv:{}", single.display())).expect_err("one class");
    assert!(refused.to_string().contains("single class"), "{refused}");
    let ragged = dir.path().join("ragged.csv");
    std::fs::write(&ragged, "x,y,label\n1,2,a\n3,b\n4,5,b\n").expect("write");
    let refused = prepare(&datasets, &format!("csv:{}", ragged.display())).expect_err("ragged");
    assert!(
        refused.to_string().contains("line 3 has 2 fields"),
        "{refused}"
    );
    let unnamed = prepare(&datasets, &format!("csv:{}#label=price", single.display()))
        .expect_err("no column");
    assert!(
        unnamed.to_string().contains("no label column \"price\""),
        "{unnamed}"
    );
    let unknown =
        prepare(&datasets, &format!("csv:{}#size=3", ragged.display())).expect_err("option");
    assert!(
        unknown
            .to_string()
            .contains("take the options label, header"),
        "{unknown}"
    );
    let folder = prepare(&datasets, &format!("csv:{}", dir.path().display())).expect_err("folder");
    assert!(folder.to_string().contains("is a folder"), "{folder}");

    let capped = Datasets::new(DataSettings {
        local_max_bytes: 10,
        ..settings(dir.path())
    });
    let refused = prepare(&capped, &format!("csv:{}", single.display())).expect_err("cap");
    assert!(
        refused.to_string().contains("data.local_max_bytes"),
        "{refused}"
    );
    let rooted = Datasets::new(DataSettings {
        local_roots: vec![dir.path().join("allowed")],
        ..settings(dir.path())
    });
    std::fs::create_dir_all(dir.path().join("allowed")).expect("folder");
    let refused = prepare(&rooted, &format!("csv:{}", single.display())).expect_err("outside");
    assert!(matches!(refused, DatasetError::Forbidden(_)), "{refused}");
}

struct Served {
    client: DatasetServiceClient<tonic::transport::Channel>,
    shutdown: Shutdown,
    root: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

async fn serve(cap: u64) -> Served {
    let root = tempfile::tempdir().expect("tempdir");
    let config = DatasetConfig {
        data: DataSettings {
            local_max_bytes: cap,
            ..settings(root.path())
        },
        ..DatasetConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let shutdown = Shutdown::new();
    let serving = shutdown.clone();
    tokio::spawn(async move { dataset_svc::run(&config, listener, serving).await });
    let client = DatasetServiceClient::connect(format!("http://{address}"))
        .await
        .expect("connect");
    Served {
        client,
        shutdown,
        root,
    }
}

fn upload_messages(
    kind: &str,
    name: &str,
    options: &str,
    files: &[(&str, &[u8])],
) -> Vec<pb::UploadDatasetRequest> {
    use pb::upload_dataset_request::Item;
    let mut messages = vec![pb::UploadDatasetRequest {
        item: Some(Item::Header(pb::UploadHeader {
            kind: kind.into(),
            name: name.into(),
            options: options.into(),
        })),
    }];
    for (path, bytes) in files {
        for chunk in bytes.chunks(64) {
            messages.push(pb::UploadDatasetRequest {
                item: Some(Item::Chunk(pb::UploadChunk {
                    path: (*path).into(),
                    data: chunk.to_vec(),
                })),
            });
        }
    }
    messages
}

async fn upload(
    client: &mut DatasetServiceClient<tonic::transport::Channel>,
    messages: Vec<pb::UploadDatasetRequest>,
) -> Result<pb::UploadDatasetResponse, tonic::Status> {
    Ok(client
        .upload_dataset(futures::stream::iter(messages))
        .await?
        .into_inner())
}

async fn prepare_remote(
    client: &mut DatasetServiceClient<tonic::transport::Channel>,
    name: &str,
) -> Result<pb::Manifest, tonic::Status> {
    let mut stream = client
        .prepare_dataset(pb::PrepareDatasetRequest {
            name: name.into(),
            options: None,
        })
        .await?
        .into_inner();
    while let Some(event) = stream.next().await {
        if let Some(pb::prepare_dataset_event::Event::Manifest(manifest)) = event?.event {
            return Ok(manifest);
        }
    }
    Err(tonic::Status::internal("no manifest"))
}

#[tokio::test]
async fn over_grpc_local_names_are_described_uploaded_and_refused_with_codes() {
    let mut served = serve(4_096).await;
    let csv = flowers_csv();
    let local = served.root.path().join("flowers.csv");
    std::fs::write(&local, &csv).expect("write");
    let described = served
        .client
        .describe_dataset(pb::DescribeDatasetRequest {
            name: format!("csv:{}#label=species", local.display()),
        })
        .await
        .expect("describe")
        .into_inner();
    assert_eq!(described.family(), pb::DatasetFamily::Tabular);
    assert_eq!(described.class_names, ["setosa", "versicolor", "virginica"]);
    assert!(
        described
            .description
            .contains("60 rows × 2 feature columns"),
        "{}",
        described.description
    );

    // Uploaded in chunks, prepared by the name the upload answers with; twice is one upload.
    let uploaded = upload(
        &mut served.client,
        upload_messages(
            "csv",
            "mine.csv",
            "label=species",
            &[("mine.csv", csv.as_bytes())],
        ),
    )
    .await
    .expect("upload");
    assert!(
        uploaded.name.starts_with("csv:upload:")
            && uploaded.name.ends_with("/mine.csv#label=species"),
        "{}",
        uploaded.name
    );
    assert_eq!(uploaded.bytes, csv.len() as u64);
    let manifest = prepare_remote(&mut served.client, &uploaded.name)
        .await
        .expect("prepare the upload");
    assert_eq!(manifest.class_names, ["setosa", "versicolor", "virginica"]);
    let again = upload(
        &mut served.client,
        upload_messages(
            "csv",
            "mine.csv",
            "label=species",
            &[("mine.csv", csv.as_bytes())],
        ),
    )
    .await
    .expect("upload again");
    assert_eq!(again.upload_id, uploaded.upload_id);

    // Refusals, each leaving nothing behind in the uploads folder.
    let uploads = served.root.path().join("data").join("uploads");
    let entries = || std::fs::read_dir(&uploads).map(|d| d.count()).unwrap_or(0);
    let before = entries();
    let big = vec![b'1'; 5_000];
    let too_big = upload(
        &mut served.client,
        upload_messages("csv", "big.csv", "", &[("big.csv", &big)]),
    )
    .await
    .expect_err("over the cap");
    assert_eq!(too_big.code(), Code::ResourceExhausted, "{too_big:?}");
    let wrong_path = upload(
        &mut served.client,
        upload_messages("csv", "a.csv", "", &[("../a.csv", b"x,y\n")]),
    )
    .await
    .expect_err("path");
    assert_eq!(wrong_path.code(), Code::InvalidArgument, "{wrong_path:?}");
    let no_header = upload(
        &mut served.client,
        upload_messages("csv", "a.csv", "", &[("a.csv", b"x\n")]).split_off(1),
    )
    .await
    .expect_err("no header");
    assert_eq!(no_header.code(), Code::InvalidArgument, "{no_header:?}");
    let unknown_kind = upload(
        &mut served.client,
        upload_messages("xlsx", "a.xlsx", "", &[]),
    )
    .await
    .expect_err("kind");
    assert_eq!(
        unknown_kind.code(),
        Code::InvalidArgument,
        "{unknown_kind:?}"
    );
    assert_eq!(entries(), before, "a failed upload leaves nothing");

    for (name, code) in [
        ("csv:/nowhere/x.csv".to_owned(), Code::NotFound),
        ("csv:".to_owned(), Code::InvalidArgument),
        (
            "csv:upload:zz/../../etc/passwd".to_owned(),
            Code::InvalidArgument,
        ),
        (format!("images:{}", local.display()), Code::InvalidArgument),
    ] {
        let status = prepare_remote(&mut served.client, &name)
            .await
            .expect_err(&name);
        assert_eq!(status.code(), code, "{name}: {status:?}");
        let status = served
            .client
            .describe_dataset(pb::DescribeDatasetRequest { name: name.clone() })
            .await
            .expect_err(&name);
        assert_eq!(status.code(), code, "{name}: {status:?}");
    }
}
