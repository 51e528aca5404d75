//! Reading a Hub dataset's parquet files into a [`RawDataset`]: rows, the mapped columns,
//! class names from the `ClassLabel` metadata or the label values, and decoded images.

use super::*;

/// Rows as named fields.
type Rows = Vec<Vec<(String, Field)>>;

/// Rows and the Hugging Face feature metadata (`info.features`) of parquet files.
type Table = (Rows, Option<serde_json::Value>);

/// The rows of one parquet file (its bytes as read from `path`) as named fields, and its
/// Hugging Face feature metadata.
pub(crate) fn read_rows(stored: Vec<u8>, path: &Path) -> Result<Table, DatasetError> {
    let bad = |error: parquet::errors::ParquetError| malformed(path, "parquet", error.to_string());
    let reader = SerializedFileReader::new(bytes::Bytes::from(stored)).map_err(bad)?;
    let features = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|pairs| pairs.iter().find(|kv| kv.key == "huggingface"))
        .and_then(|kv| kv.value.as_deref())
        .and_then(|json| serde_json::from_str::<serde_json::Value>(json).ok())
        .map(|meta| meta["info"]["features"].clone());
    let mut rows = Vec::new();
    for row in reader.get_row_iter(None).map_err(bad)? {
        let row = row.map_err(bad)?;
        rows.push(
            row.get_column_iter()
                .map(|(name, field)| (name.clone(), field.clone()))
                .collect(),
        );
    }
    Ok((rows, features))
}

fn field<'a>(row: &'a [(String, Field)], name: &str) -> Option<&'a Field> {
    row.iter().find(|(n, _)| n == name).map(|(_, f)| f)
}

/// The first of `wanted` (or the mapping's own choice) that the rows have.
fn pick_column(
    columns: &[String],
    chosen: &str,
    usual: &[&str],
    role: &str,
    path: &Path,
) -> Result<Option<String>, DatasetError> {
    if !chosen.is_empty() {
        return if columns.iter().any(|c| c == chosen) {
            Ok(Some(chosen.to_owned()))
        } else {
            Err(bad_option(
                "hugging_face",
                format!(
                    "{} has no {role} column {chosen:?}; its columns are {columns:?}",
                    path.display()
                ),
            ))
        };
    }
    Ok(usual
        .iter()
        .find(|u| columns.iter().any(|c| c == *u))
        .map(|u| (*u).to_owned()))
}

/// Reads a Hub dataset's parquet files from `folder`.
pub fn load(
    folder: &Path,
    dataset: &HubDataset,
    mapping: &ColumnMapping,
) -> Result<RawDataset, DatasetError> {
    let files = parquet_files(folder, dataset)?;
    let Some(train_files) = files.get("train") else {
        return Err(DatasetError::NeedOriginals(format!(
            "no train parquet file of {} under {} (expected e.g. {}/train-00000-of-00001.parquet)",
            dataset.name(),
            folder.display(),
            dataset.config.as_deref().unwrap_or("data")
        )));
    };
    let test_files = files.get("test").or_else(|| files.get("validation"));
    let mut checksums = BTreeMap::new();
    let mut read_part = |paths: &[PathBuf]| -> Result<Table, DatasetError> {
        let mut all = Vec::new();
        let mut features = None;
        for path in paths {
            let (stored, sha256) = crate::formats::read_stored(path)?;
            let relative = path.strip_prefix(folder).unwrap_or(path);
            checksums.insert(relative.to_string_lossy().into_owned(), sha256);
            let (rows, meta) = read_rows(stored, path)?;
            features = features.or(meta);
            all.extend(rows);
        }
        Ok((all, features))
    };
    let (train_rows, features) = read_part(train_files)?;
    let test_rows = match test_files {
        Some(paths) => Some(read_part(paths)?.0),
        None => None,
    };
    let first = &train_files[0];
    let columns: Vec<String> = train_rows
        .first()
        .map(|row| row.iter().map(|(n, _)| n.clone()).collect())
        .unwrap_or_default();
    let label = pick_column(&columns, &mapping.label, &LABEL_COLUMNS, "label", first)?
        .ok_or_else(|| {
            bad_option(
                "hugging_face.label_column",
                format!("{} has none of the usual label columns {LABEL_COLUMNS:?}; name it (columns: {columns:?})", first.display()),
            )
        })?;
    let image = pick_column(&columns, &mapping.image, &IMAGE_COLUMNS, "image", first)?;
    let text = pick_column(&columns, &mapping.text, &TEXT_COLUMNS, "text", first)?;
    let input = match (image, text) {
        (Some(image), _) if mapping.text.is_empty() => Input::Image(image),
        (_, Some(text)) => Input::Text(text),
        (Some(image), None) => Input::Image(image),
        (None, None) => {
            return Err(bad_option(
                "hugging_face.text_column",
                format!(
                    "{} has no text or image column to learn from; name one (columns: {columns:?})",
                    first.display()
                ),
            ));
        }
    };
    let class_names = class_names(&features, &label, &train_rows, test_rows.as_deref(), first)?;
    let train = to_part(&train_rows, &input, &label, &class_names, first)?;
    let test = match &test_rows {
        Some(rows) => Some(to_part(rows, &input, &label, &class_names, first)?),
        None => None,
    };
    let names: Vec<&str> = class_names.iter().map(String::as_str).collect();
    Ok(RawDataset::read(
        &dataset.name(),
        &names,
        train,
        test,
        checksums,
    ))
}

enum Input {
    Text(String),
    Image(String),
}

/// Label values as class names: the `ClassLabel` names when the metadata has them, otherwise
/// the integers 0..=max, or the sorted distinct strings.
fn class_names(
    features: &Option<serde_json::Value>,
    label: &str,
    train: &[Vec<(String, Field)>],
    test: Option<&[Vec<(String, Field)>]>,
    path: &Path,
) -> Result<Vec<String>, DatasetError> {
    if let Some(names) = features.as_ref().and_then(|f| f[label]["names"].as_array()) {
        return Ok(names
            .iter()
            .map(|n| n.as_str().unwrap_or_default().to_owned())
            .collect());
    }
    let rows = train.iter().chain(test.into_iter().flatten());
    let mut integers = BTreeSet::new();
    let mut strings = BTreeSet::new();
    for row in rows {
        match field(row, label).and_then(integer) {
            Some(value) => {
                integers.insert(value);
            }
            None => match field(row, label) {
                Some(Field::Str(value)) => {
                    strings.insert(value.clone());
                }
                other => {
                    return Err(malformed(
                        path,
                        "parquet",
                        format!("label {label:?} holds {other:?}, not a class"),
                    ));
                }
            },
        }
    }
    if !strings.is_empty() {
        return Ok(strings.into_iter().collect());
    }
    match (integers.first(), integers.last()) {
        (Some(low), Some(high)) if *low >= 0 && *high < 10_000 => {
            Ok((0..=*high).map(|c| c.to_string()).collect())
        }
        _ => Err(malformed(
            path,
            "parquet",
            format!("label {label:?} values {integers:?} are not class indices 0..10000"),
        )),
    }
}

fn integer(field: &Field) -> Option<i64> {
    match field {
        Field::Byte(v) => Some(i64::from(*v)),
        Field::Short(v) => Some(i64::from(*v)),
        Field::Int(v) => Some(i64::from(*v)),
        Field::Long(v) => Some(*v),
        Field::UByte(v) => Some(i64::from(*v)),
        Field::UShort(v) => Some(i64::from(*v)),
        Field::UInt(v) => Some(i64::from(*v)),
        Field::Bool(v) => Some(i64::from(*v)),
        _ => None,
    }
}

fn to_part(
    rows: &[Vec<(String, Field)>],
    input: &Input,
    label: &str,
    class_names: &[String],
    path: &Path,
) -> Result<RawPart, DatasetError> {
    let mut labels = Vec::with_capacity(rows.len());
    for (index, row) in rows.iter().enumerate() {
        let value = match field(row, label) {
            Some(Field::Str(name)) => class_names.iter().position(|c| c == name).map(|p| p as i64),
            Some(other) => integer(other),
            None => None,
        };
        let class = value
            .filter(|v| (0..class_names.len() as i64).contains(v))
            .ok_or_else(|| {
                malformed(
                    path,
                    "parquet",
                    format!(
                        "row {index}: label {:?} is not one of {} classes",
                        field(row, label),
                        class_names.len()
                    ),
                )
            })?;
        labels.push(class);
    }
    let samples = match input {
        Input::Text(column) => Samples::Text(
            rows.iter()
                .enumerate()
                .map(|(index, row)| match field(row, column) {
                    Some(Field::Str(text)) => Ok(text.clone()),
                    other => Err(malformed(
                        path,
                        "parquet",
                        format!("row {index}: text column {column:?} holds {other:?}"),
                    )),
                })
                .collect::<Result<_, _>>()?,
        ),
        Input::Image(column) => images(rows, column, path)?,
    };
    Ok(RawPart { samples, labels })
}

/// PNG images (the Hub's `{bytes, path}` struct, or plain bytes), all of one size, as u8
/// channel planes.
fn images(
    rows: &[Vec<(String, Field)>],
    column: &str,
    path: &Path,
) -> Result<Samples, DatasetError> {
    let mut shape: Option<(u32, u32, u32)> = None;
    let mut pixels = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        let bytes = match field(row, column) {
            Some(Field::Bytes(bytes)) => bytes.data().to_vec(),
            Some(Field::Group(group)) => {
                match group.get_column_iter().find(|(n, _)| n.as_str() == "bytes") {
                    Some((_, Field::Bytes(bytes))) => bytes.data().to_vec(),
                    other => {
                        return Err(malformed(
                            path,
                            "parquet",
                            format!("row {index}: image struct without bytes ({other:?})"),
                        ));
                    }
                }
            }
            other => {
                return Err(malformed(
                    path,
                    "parquet",
                    format!("row {index}: image column {column:?} holds {other:?}"),
                ));
            }
        };
        let (channels, height, width, planes) = decode_png(&bytes)
            .map_err(|message| malformed(path, "parquet", format!("row {index}: {message}")))?;
        match shape {
            None => shape = Some((channels, height, width)),
            Some(expected) if expected != (channels, height, width) => {
                return Err(malformed(
                    path,
                    "parquet",
                    format!(
                        "row {index}: a {channels}×{height}×{width} image among {}×{}×{} ones; images must share one size",
                        expected.0, expected.1, expected.2
                    ),
                ));
            }
            Some(_) => {}
        }
        pixels.extend(planes);
    }
    let (channels, height, width) = shape.unwrap_or((1, 1, 1));
    Ok(Samples::Images {
        channels,
        height,
        width,
        pixels,
    })
}

/// A PNG as (channels, height, width, channel-major pixels); 8-bit grey or RGB (alpha dropped).
fn decode_png(bytes: &[u8]) -> Result<(u32, u32, u32, Vec<u8>), String> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .map_err(|e| format!("not a PNG image: {e}"))?;
    let mut buffer = vec![0; reader.output_buffer_size().ok_or("the PNG is too large")?];
    let info = reader
        .next_frame(&mut buffer)
        .map_err(|e| format!("damaged PNG: {e}"))?;
    let (width, height) = (info.width, info.height);
    let stride = info.color_type.samples();
    let keep = match info.color_type {
        png::ColorType::Grayscale | png::ColorType::GrayscaleAlpha => 1,
        _ => 3,
    };
    let plane = (width * height) as usize;
    let mut planes = vec![0u8; keep * plane];
    for (pixel, chunk) in buffer[..plane * stride].chunks_exact(stride).enumerate() {
        for c in 0..keep {
            planes[c * plane + pixel] = chunk[c];
        }
    }
    Ok((keep as u32, height, width, planes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_picked_by_choice_or_usual_name() {
        let columns = vec!["sentence".to_owned(), "label".to_owned()];
        let path = Path::new("train.parquet");
        let text = pick_column(&columns, "", &TEXT_COLUMNS, "text", path).expect("usual");
        assert_eq!(text.as_deref(), Some("sentence"));
        let none = pick_column(&columns, "", &IMAGE_COLUMNS, "image", path).expect("absent");
        assert_eq!(none, None);
        let error = pick_column(&columns, "review", &TEXT_COLUMNS, "text", path)
            .expect_err("no such column");
        assert!(
            error.to_string().contains("no text column \"review\""),
            "{error}"
        );
    }

    #[test]
    fn labels_are_integers_and_images_must_be_png() {
        assert_eq!(integer(&Field::Long(7)), Some(7));
        assert_eq!(integer(&Field::Bool(true)), Some(1));
        assert_eq!(integer(&Field::Str("7".into())), None);
        let error = decode_png(b"GIF89a").expect_err("not PNG");
        assert!(error.starts_with("not a PNG image"), "{error}");
    }
}
