//! `hf:<owner>/<name>[:<config>]` datasets from parquet files written here in the Hub's layout
//! (`<config>/train-00000-of-00001.parquet`, with the `huggingface` metadata naming the
//! classes): from the data folder, from `source_dir`, and downloaded from a Hub stand-in on
//! 127.0.0.1 (its parquet listing API and the files, over real HTTP); unknown repos and
//! columns are refused.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;

use dataset_svc::config::DataSettings;
use dataset_svc::hub::ColumnMapping;
use dataset_svc::service::{Datasets, Origin};
use dataset_svc::{DatasetConfig, DatasetError, PrepareOptions};
use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use ra_prepared::XDtype;
use ra_spec::InputSpec;

/// A parquet file of `(text, label)` rows as the Hub writes them (snappy, ClassLabel names in
/// the `huggingface` metadata).
fn write_parquet(path: &Path, rows: &[(&str, i64)], class_names: &[&str]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("folder");
    let schema = Arc::new(
        parse_message_type(
            "message schema { REQUIRED BYTE_ARRAY text (UTF8); REQUIRED INT64 label; }",
        )
        .expect("schema"),
    );
    let features = serde_json::json!({"info": {"features": {
        "text": {"dtype": "string", "_type": "Value"},
        "label": {"names": class_names, "_type": "ClassLabel"}
    }}});
    let properties = WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_key_value_metadata(Some(vec![KeyValue::new(
            "huggingface".to_owned(),
            features.to_string(),
        )]))
        .build();
    let file = File::create(path).expect("create parquet");
    let mut writer = SerializedFileWriter::new(file, schema, Arc::new(properties)).expect("writer");
    let mut group = writer.next_row_group().expect("row group");
    let texts: Vec<ByteArray> = rows.iter().map(|(t, _)| ByteArray::from(*t)).collect();
    let labels: Vec<i64> = rows.iter().map(|(_, l)| *l).collect();
    let mut column = group.next_column().expect("column").expect("text column");
    column
        .typed::<ByteArrayType>()
        .write_batch(&texts, None, None)
        .expect("texts");
    column.close().expect("close text");
    let mut column = group.next_column().expect("column").expect("label column");
    column
        .typed::<Int64Type>()
        .write_batch(&labels, None, None)
        .expect("labels");
    column.close().expect("close labels");
    group.close().expect("close group");
    writer.close().expect("close file");
}

fn reviews(count: usize) -> Vec<(String, i64)> {
    (0..count)
        .map(|i| {
            if i % 2 == 0 {
                (format!("a wonderful moving film number {i}"), 1)
            } else {
                (format!("a dull tedious film number {i}"), 0)
            }
        })
        .collect()
}

fn rows(reviews: &[(String, i64)]) -> Vec<(&str, i64)> {
    reviews.iter().map(|(t, l)| (t.as_str(), *l)).collect()
}

fn write_imdb_like(folder: &Path) {
    let train = reviews(40);
    let test = reviews(10);
    write_parquet(
        &folder.join("plain_text/train-00000-of-00001.parquet"),
        &rows(&train),
        &["neg", "pos"],
    );
    write_parquet(
        &folder.join("plain_text/test-00000-of-00001.parquet"),
        &rows(&test),
        &["neg", "pos"],
    );
    // Another configuration's files are left alone when a configuration is named.
    write_parquet(
        &folder.join("other/train-00000-of-00001.parquet"),
        &[("x", 0), ("y", 0)],
        &["only"],
    );
}

fn settings(data_dir: &Path, cache: &Path) -> DataSettings {
    DataSettings {
        data_dir: data_dir.to_path_buf(),
        cache_dir: cache.to_path_buf(),
        offline: true,
        ..DatasetConfig::default().data
    }
}

fn prepare(
    datasets: &Datasets,
    name: &str,
    origin: &Origin,
) -> Result<ra_prepared::PreparedDataset, DatasetError> {
    datasets.prepare(name, origin, &PrepareOptions::default(), &mut |_| {})
}

#[test]
fn hub_parquet_from_the_data_folder_and_source_dir_with_class_names_from_the_metadata() {
    let (data, cache) = (
        tempfile::tempdir().expect("data"),
        tempfile::tempdir().expect("cache"),
    );
    write_imdb_like(&data.path().join("hf/stanfordnlp/imdb"));
    let datasets = Datasets::new(settings(data.path(), cache.path()));
    let prepared = prepare(
        &datasets,
        "hf:stanfordnlp/imdb:plain_text",
        &Origin::default(),
    )
    .expect("hub dataset");
    let manifest = prepared.manifest();
    assert_eq!(manifest.dataset, "hf:stanfordnlp/imdb:plain_text");
    assert_eq!(manifest.class_names, ["neg", "pos"]);
    assert_eq!(manifest.x_dtype, XDtype::I64);
    assert!(matches!(manifest.input, InputSpec::Text { .. }));
    let counts: Vec<(String, u64)> = manifest
        .splits
        .iter()
        .map(|s| (s.name.clone(), s.num_samples))
        .collect();
    assert_eq!(
        counts,
        [("train".into(), 32), ("val".into(), 8), ("test".into(), 10)]
    );
    assert!(
        manifest
            .source_checksums
            .contains_key("plain_text/train-00000-of-00001.parquet")
    );

    // The same files named explicitly: the same content, the same id.
    let origin = Origin {
        source_dir: Some(data.path().join("hf/stanfordnlp/imdb")),
        ..Origin::default()
    };
    let again = prepare(&datasets, "hf:stanfordnlp/imdb:plain_text", &origin).expect("source_dir");
    assert_eq!(again.manifest().prepared_id, manifest.prepared_id);

    // A column mapping that names a missing column, or a repo that is nowhere: refused.
    let origin = Origin {
        hugging_face: Some(ColumnMapping {
            text: "review_body".into(),
            ..ColumnMapping::default()
        }),
        ..Origin::default()
    };
    let error = prepare(&datasets, "hf:stanfordnlp/imdb:plain_text", &origin)
        .expect_err("no such column")
        .to_string();
    assert!(
        error.contains("no text column \"review_body\"") && error.contains("\"label\""),
        "{error}"
    );
    let error = prepare(&datasets, "hf:nobody/nothing", &Origin::default())
        .expect_err("absent offline")
        .to_string();
    assert!(
        error.contains("downloads are off") && error.contains("hf/nobody/nothing"),
        "{error}"
    );
    let error = prepare(&datasets, "hf:nothing", &Origin::default()).expect_err("bad name");
    assert!(matches!(error, DatasetError::Option { .. }), "{error}");
}

/// A Hub stand-in: `/api/datasets/<repo>/parquet` lists the files, which it then serves.
fn hub_stand_in(folder: &Path) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let train =
        std::fs::read(folder.join("plain_text/train-00000-of-00001.parquet")).expect("train");
    let test = std::fs::read(folder.join("plain_text/test-00000-of-00001.parquet")).expect("test");
    let listing = serde_json::json!({"plain_text": {
        "train": [format!("{base}/files/train.parquet")],
        "test": [format!("{base}/files/test.parquet")],
    }})
    .to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
                    break;
                }
            }
            let path = first.split_whitespace().nth(1).unwrap_or("").to_owned();
            let (status, body): (&str, Vec<u8>) = match path.as_str() {
                "/api/datasets/stanfordnlp/imdb/parquet" => {
                    ("200 OK", listing.clone().into_bytes())
                }
                "/files/train.parquet" => ("200 OK", train.clone()),
                "/files/test.parquet" => ("200 OK", test.clone()),
                _ => ("404 Not Found", Vec::new()),
            };
            let mut stream = stream;
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    base
}

#[test]
fn hub_datasets_download_through_the_parquet_listing_and_unknown_repos_are_not_found() {
    let made = tempfile::tempdir().expect("made");
    write_imdb_like(made.path());
    let base = hub_stand_in(made.path());
    let (data, cache) = (
        tempfile::tempdir().expect("data"),
        tempfile::tempdir().expect("cache"),
    );
    let datasets = Datasets::new(DataSettings {
        offline: false,
        hub_url: base,
        ..settings(data.path(), cache.path())
    });
    let prepared =
        prepare(&datasets, "hf:stanfordnlp/imdb", &Origin::default()).expect("downloaded");
    assert_eq!(
        prepared.manifest().split("test").expect("test").num_samples,
        10
    );
    assert!(
        data.path()
            .join("hf/stanfordnlp/imdb/plain_text/train/0000.parquet")
            .is_file()
    );
    let error = prepare(&datasets, "hf:nobody/nothing", &Origin::default()).expect_err("unknown");
    assert!(
        matches!(error, DatasetError::UnknownDataset { .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("no public dataset repo nobody/nothing"),
        "{error}"
    );
}

/// An 8×6 RGB PNG whose red channel is `red` everywhere and whose green channel counts the
/// pixels.
fn png_image(red: u8) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, 8, 6);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().expect("png header");
    let pixels: Vec<u8> = (0..48u8).flat_map(|i| [red, i, 7]).collect();
    writer.write_image_data(&pixels).expect("png data");
    writer.finish().expect("png end");
    bytes
}

#[test]
fn hub_images_decode_from_the_bytes_struct_into_channel_planes() {
    let data = tempfile::tempdir().expect("data");
    let path = data
        .path()
        .join("hf/someone/tiny-images/default/train/0000.parquet");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("folder");
    let schema = Arc::new(
        parse_message_type(
            "message schema { REQUIRED group image { REQUIRED BYTE_ARRAY bytes; REQUIRED BYTE_ARRAY path (UTF8); } REQUIRED INT64 label; }",
        )
        .expect("schema"),
    );
    let file = File::create(&path).expect("create");
    let mut writer =
        SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::builder().build()))
            .expect("writer");
    let mut group = writer.next_row_group().expect("row group");
    let images: Vec<ByteArray> = (0..10u8)
        .map(|i| ByteArray::from(png_image(i * 20)))
        .collect();
    let names: Vec<ByteArray> = (0..10)
        .map(|i| ByteArray::from(format!("{i}.png").as_str()))
        .collect();
    let labels: Vec<i64> = (0..10).map(|i| i % 2).collect();
    let mut column = group.next_column().expect("column").expect("bytes");
    column
        .typed::<ByteArrayType>()
        .write_batch(&images, None, None)
        .expect("bytes");
    column.close().expect("close");
    let mut column = group.next_column().expect("column").expect("path");
    column
        .typed::<ByteArrayType>()
        .write_batch(&names, None, None)
        .expect("paths");
    column.close().expect("close");
    let mut column = group.next_column().expect("column").expect("label");
    column
        .typed::<Int64Type>()
        .write_batch(&labels, None, None)
        .expect("labels");
    column.close().expect("close");
    group.close().expect("close group");
    writer.close().expect("close file");

    let datasets = Datasets::new(settings(data.path(), data.path().join("cache").as_path()));
    let raw = dataset_svc::hub::load(
        &data.path().join("hf/someone/tiny-images"),
        &dataset_svc::hub::HubDataset::parse("hf:someone/tiny-images").expect("name"),
        &ColumnMapping::default(),
    )
    .expect("images");
    let dataset_svc::Samples::Images {
        channels,
        height,
        width,
        pixels,
    } = &raw.train.samples
    else {
        panic!("images expected")
    };
    assert_eq!((*channels, *height, *width), (3, 6, 8));
    assert_eq!(
        raw.class_names,
        ["0", "1"],
        "no ClassLabel metadata: the label values"
    );
    let second = &pixels[3 * 48..6 * 48];
    assert!(
        second[..48].iter().all(|v| *v == 20),
        "red plane of image 1"
    );
    assert_eq!(second[48 + 9], 9, "green plane counts the pixels");
    assert!(second[96..].iter().all(|v| *v == 7), "blue plane");
    let prepared =
        prepare(&datasets, "hf:someone/tiny-images", &Origin::default()).expect("prepare");
    assert_eq!(prepared.manifest().x_dtype, XDtype::U8);
}
