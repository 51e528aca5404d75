//! Researchers' own data as dataset names, the syntax every service and tool shares:
//! `csv:PATH`, `tsv:PATH`, `parquet:PATH` (tables), `images:DIR` (a folder per class) and
//! `text:PATH` (TSV, CSV or JSONL with a text and a label column), each optionally followed by
//! `#key=value,key=value` options (`label=species`, `label=4`, `text=review`, `size=32`,
//! `size=28x28`, `channels=1`, `header=yes|no`). A path under `upload:ID/` names files sent to
//! dataset-svc with UploadDataset. In a goal's words a bare path ending in `.csv`, `.tsv`,
//! `.parquet` or `.jsonl` is read as such a name too ("an MLP on /data/mine.csv …").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What the files hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LocalKind {
    Csv,
    Tsv,
    Parquet,
    Images,
    Text,
}

impl LocalKind {
    pub const ALL: [Self; 5] = [
        Self::Csv,
        Self::Tsv,
        Self::Parquet,
        Self::Images,
        Self::Text,
    ];

    pub fn scheme(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Tsv => "tsv",
            Self::Parquet => "parquet",
            Self::Images => "images",
            Self::Text => "text",
        }
    }

    /// The options a name of this kind may carry.
    pub fn option_keys(self) -> &'static [&'static str] {
        match self {
            Self::Csv | Self::Tsv | Self::Parquet => &["label", "header"],
            Self::Images => &["size", "channels"],
            Self::Text => &["text", "label"],
        }
    }

    fn from_scheme(scheme: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.scheme() == scheme)
    }

    /// The kind a bare path's extension implies (`.jsonl` is text).
    fn from_extension(path: &str) -> Option<Self> {
        let lower = path.to_lowercase();
        let lower = lower.strip_suffix(".gz").unwrap_or(&lower);
        [
            (".csv", Self::Csv),
            (".tsv", Self::Tsv),
            (".parquet", Self::Parquet),
            (".jsonl", Self::Text),
        ]
        .into_iter()
        .find_map(|(extension, kind)| lower.ends_with(extension).then_some(kind))
    }
}

/// The folder of uploaded files in a path: `upload:ID/FILE`.
pub const UPLOAD_PREFIX: &str = "upload:";

/// A local dataset reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDataset {
    pub kind: LocalKind,
    /// As written (absolute, relative to the reader's working directory, or `upload:ID/…`).
    pub path: String,
    pub options: BTreeMap<String, String>,
}

/// Why a name that looks local is not a valid one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dataset name {name:?}: {reason}")]
pub struct LocalNameError {
    pub name: String,
    pub reason: String,
}

impl LocalDataset {
    /// `Ok(None)` for names of another form (catalog, `hf:`); an error for a malformed local
    /// name (empty path, unknown option, an option given twice).
    pub fn parse(name: &str) -> Result<Option<Self>, LocalNameError> {
        let Some((scheme, rest)) = name.split_once(':') else {
            return Ok(None);
        };
        let Some(kind) = LocalKind::from_scheme(scheme) else {
            return Ok(None);
        };
        let error = |reason: String| LocalNameError {
            name: name.to_owned(),
            reason,
        };
        let (path, options_text) = match rest.rsplit_once('#') {
            Some((path, options)) => (path, Some(options)),
            None => (rest, None),
        };
        if path.trim().is_empty() {
            return Err(error(format!(
                "no path after \"{scheme}:\"; write e.g. {scheme}:/data/{}",
                if kind == LocalKind::Images {
                    "pictures/"
                } else {
                    "mine.csv"
                }
            )));
        }
        if path.contains('\0') {
            return Err(error("the path holds a NUL character".into()));
        }
        let mut options = BTreeMap::new();
        for pair in options_text
            .into_iter()
            .flat_map(|t| t.split(','))
            .filter(|p| !p.trim().is_empty())
        {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(error(format!("option {pair:?} is not key=value")));
            };
            let key = key.trim();
            if !kind.option_keys().contains(&key) {
                return Err(error(format!(
                    "{scheme}: names take the options {}, not {key:?}",
                    kind.option_keys().join(", ")
                )));
            }
            if options
                .insert(key.to_owned(), value.trim().to_owned())
                .is_some()
            {
                return Err(error(format!("option {key:?} is given twice")));
            }
        }
        Ok(Some(Self {
            kind,
            path: path.to_owned(),
            options,
        }))
    }

    /// The name: `kind:path[#options]`.
    pub fn name(&self) -> String {
        let mut name = format!("{}:{}", self.kind.scheme(), self.path);
        if !self.options.is_empty() {
            let options: Vec<String> = self
                .options
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            name.push('#');
            name.push_str(&options.join(","));
        }
        name
    }

    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }

    /// The uploaded folder's id and the path inside it, for `upload:ID/…` paths.
    pub fn upload(&self) -> Option<(&str, &str)> {
        let rest = self.path.strip_prefix(UPLOAD_PREFIX)?;
        Some(rest.split_once('/').unwrap_or((rest, "")))
    }

    /// The same reference with a relative path made absolute against `cwd`.
    pub fn absolute(&self, cwd: &Path) -> Self {
        if self.upload().is_some() || Path::new(&self.path).is_absolute() {
            return self.clone();
        }
        Self {
            path: cwd.join(&self.path).display().to_string(),
            ..self.clone()
        }
    }

    /// The path as a file-system path (uploads excluded).
    pub fn file_path(&self) -> Option<PathBuf> {
        self.upload().is_none().then(|| PathBuf::from(&self.path))
    }

    /// The first local dataset a goal's words name: a `kind:PATH` word, or a bare path with a
    /// known extension; with its byte range in `text` (so the caller can blank it out).
    pub fn find_in_text(text: &str) -> Option<(Self, std::ops::Range<usize>)> {
        let mut offset = 0;
        for word in text.split_inclusive(char::is_whitespace) {
            let start = offset;
            offset += word.len();
            let trimmed_start = word.len() - word.trim_start_matches(['"', '\'', '(', '`']).len();
            let core = word
                .trim()
                .trim_start_matches(['"', '\'', '(', '`'])
                .trim_end_matches(['"', '\'', ')', '`', ',', ';', '.', '!', '?', ':']);
            if core.is_empty() {
                continue;
            }
            let range = start + trimmed_start..start + trimmed_start + core.len();
            if let Ok(Some(found)) = Self::parse(core) {
                return Some((found, range));
            }
            if let Some(kind) = LocalKind::from_extension(core)
                && (core.contains('/') || core.contains('.'))
            {
                return Some((
                    Self {
                        kind,
                        path: core.to_owned(),
                        options: BTreeMap::new(),
                    },
                    range,
                ));
            }
        }
        None
    }
}

/// Whether a file or folder of an `images:` folder counts: hidden names (`.DS_Store`, `.git`)
/// never do.
pub fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

/// Whether a file of an `images:` class folder is an image dataset-svc reads (PNG or JPEG, by
/// its extension, any case); the upload sends exactly these.
pub fn is_image_name(name: &str) -> bool {
    !is_hidden(name)
        && Path::new(name)
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

/// Whether `name` is of the local form (`csv:`, `tsv:`, `parquet:`, `images:`, `text:`).
pub fn is_local(name: &str) -> bool {
    name.split_once(':')
        .is_some_and(|(scheme, _)| LocalKind::from_scheme(scheme).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_with_options_and_print_back() {
        let csv = LocalDataset::parse("csv:/data/mine.csv#label=species")
            .expect("valid")
            .expect("local");
        assert_eq!(csv.kind, LocalKind::Csv);
        assert_eq!(csv.path, "/data/mine.csv");
        assert_eq!(csv.option("label"), Some("species"));
        assert_eq!(csv.name(), "csv:/data/mine.csv#label=species");
        let images = LocalDataset::parse("images:pics#size=28x28,channels=1")
            .expect("valid")
            .expect("local");
        assert_eq!(images.option("size"), Some("28x28"));
        assert_eq!(
            images.absolute(Path::new("/home/r")).path,
            "/home/r/pics",
            "relative paths are made absolute"
        );
        let upload = LocalDataset::parse("text:upload:ab12/reviews.jsonl")
            .expect("valid")
            .expect("local");
        assert_eq!(upload.upload(), Some(("ab12", "reviews.jsonl")));
        assert_eq!(upload.absolute(Path::new("/x")), upload);
        for other in ["mnist", "hf:owner/name", "cifar10", ""] {
            assert_eq!(LocalDataset::parse(other), Ok(None), "{other}");
        }
    }

    #[test]
    fn malformed_names_say_what_is_wrong() {
        for (name, words) in [
            ("csv:", "no path"),
            ("csv:#label=a", "no path"),
            ("csv:a.csv#size=3", "take the options label, header"),
            ("images:d#size", "not key=value"),
            ("text:a.tsv#text=a,text=b", "given twice"),
        ] {
            let error = LocalDataset::parse(name).expect_err(name);
            assert!(error.to_string().contains(words), "{name}: {error}");
        }
    }

    #[test]
    fn goals_name_files_by_scheme_or_extension() {
        let text = "an MLP on /data/mine.csv with at least 90% accuracy";
        let (found, range) = LocalDataset::find_in_text(text).expect("found");
        assert_eq!(found.name(), "csv:/data/mine.csv");
        assert_eq!(&text[range], "/data/mine.csv");
        let (found, _) =
            LocalDataset::find_in_text("a CNN on images:./pets#size=32, >80% accuracy")
                .expect("found");
        assert_eq!(found.name(), "images:./pets#size=32");
        let (found, _) =
            LocalDataset::find_in_text("best accuracy on \"reviews.jsonl\".").expect("found");
        assert_eq!(found.name(), "text:reviews.jsonl");
        assert_eq!(LocalDataset::find_in_text("a CNN for cifar10 >75%"), None);
        assert!(is_image_name("cat.PNG") && is_image_name("a.jpeg"));
        assert!(!is_image_name(".hidden.png") && !is_image_name("notes.txt"));
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_answered_without_panic(text in "\\PC{0,80}") {
            let _ = LocalDataset::find_in_text(&text);
            let _ = LocalDataset::parse(&text);
        }
    }
}
