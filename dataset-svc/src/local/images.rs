//! `images:DIR`: one sub-folder per class (the folder names, sorted, are the classes) of PNG
//! or JPEG files, decoded and, with `#size=N` or `#size=HxW`, resized (bilinear) to one size;
//! `#channels=1|3` picks grey or colour (default: colour when any image has colour). The
//! identity is one sha256 over every file's path and sha256.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{DynamicImage, GenericImageView};
use ra_client::local_data::{self, LocalDataset};
use sha2::{Digest, Sha256};

use super::identity_name;
use crate::error::{DatasetError, bad_option, io, malformed};
use crate::formats::read_stored;
use crate::raw::{RawDataset, RawPart, Samples};

const FORMAT: &str = "image folder";
/// The largest side a declared size may have.
const MAX_SIDE: u32 = 1_024;

fn name_of(path: &Path) -> std::borrow::Cow<'_, str> {
    path.file_name()
        .map_or(std::borrow::Cow::Borrowed(""), |n| n.to_string_lossy())
}

fn is_image(path: &Path) -> bool {
    local_data::is_image_name(&name_of(path))
}

fn hidden(path: &Path) -> bool {
    local_data::is_hidden(&name_of(path))
}

/// Sorted entries of `dir` that `keep` accepts.
fn entries(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>, DatasetError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if !hidden(&path) && keep(&path) {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// The class folders and their image files.
fn layout(dir: &Path) -> Result<Vec<(String, Vec<PathBuf>)>, DatasetError> {
    let classes = entries(dir, Path::is_dir)?;
    let mut layout = Vec::with_capacity(classes.len());
    for class in classes {
        let files = entries(&class, |p| p.is_file() && is_image(p))?;
        let name = class
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if files.is_empty() {
            return Err(malformed(
                dir,
                FORMAT,
                format!("the class folder {name:?} holds no PNG or JPEG file"),
            ));
        }
        layout.push((name, files));
    }
    match layout.len() {
        0 => Err(malformed(
            dir,
            FORMAT,
            "it has no class folders: put each class's images in a sub-folder named after the class (DIR/cat/1.png, DIR/dog/2.jpg)",
        )),
        1 => Err(malformed(
            dir,
            FORMAT,
            format!(
                "it has a single class folder ({:?}); a classifier needs two or more",
                layout[0].0
            ),
        )),
        _ => Ok(layout),
    }
}

/// Bytes of every image file under `dir`'s class folders.
pub(super) fn folder_bytes(dir: &Path) -> Result<u64, DatasetError> {
    layout_bytes(&layout(dir)?)
}

/// Bytes of the image files of a [`layout`].
fn layout_bytes(layout: &[(String, Vec<PathBuf>)]) -> Result<u64, DatasetError> {
    let mut total = 0;
    for file in layout.iter().flat_map(|(_, files)| files) {
        total += std::fs::metadata(file).map_err(io(file))?.len();
    }
    Ok(total)
}

/// `#size=N` or `#size=HxW` as (height, width).
fn declared_size(option: Option<&str>) -> Result<Option<(u32, u32)>, DatasetError> {
    let Some(text) = option else {
        return Ok(None);
    };
    let parse = |s: &str| {
        s.trim()
            .parse::<u32>()
            .ok()
            .filter(|v| (1..=MAX_SIDE).contains(v))
    };
    let size = match text.split_once(['x', 'X', '×']) {
        Some((h, w)) => parse(h).zip(parse(w)),
        None => parse(text).map(|s| (s, s)),
    };
    size.map(Some).ok_or_else(|| {
        bad_option(
            "name",
            format!("#size={text:?}: write a side (size=32) or height x width (size=28x28), each 1 to {MAX_SIDE}"),
        )
    })
}

pub(super) fn load(
    dataset: &LocalDataset,
    dir: &Path,
    cap: u64,
) -> Result<RawDataset, DatasetError> {
    let size = declared_size(dataset.option("size"))?;
    let channels = match dataset.option("channels") {
        None => None,
        Some("1") => Some(1),
        Some("3") => Some(3),
        Some(other) => {
            return Err(bad_option(
                "name",
                format!("#channels={other:?}: write channels=1 (grey) or channels=3 (colour)"),
            ));
        }
    };
    let layout = layout(dir)?;
    let bytes = layout_bytes(&layout)?;
    if bytes > cap {
        return Err(DatasetError::TooLarge {
            what: format!("the images under {}", dir.display()),
            bytes,
            cap,
            setting: "data.local_max_bytes",
        });
    }
    let mut identity = Sha256::new();
    let mut decoded: Vec<(PathBuf, DynamicImage)> = Vec::new();
    let mut labels = Vec::new();
    for (class, (name, files)) in layout.iter().enumerate() {
        for file in files {
            let (stored, sha256) = read_stored(file)?;
            let relative = file.strip_prefix(dir).unwrap_or(file);
            identity.update(format!("{} {sha256}\n", relative.display()));
            let image = image::load_from_memory(&stored)
                .map_err(|e| malformed(file, "PNG or JPEG", format!("in class {name:?}: {e}")))?;
            decoded.push((relative.to_path_buf(), image));
            labels.push(class as i64);
        }
    }
    let (height, width) = match size {
        Some(size) => size,
        None => {
            let (first_path, first) = &decoded[0];
            let (w, h) = first.dimensions();
            if let Some((path, other)) = decoded.iter().find(|(_, i)| i.dimensions() != (w, h)) {
                let (ow, oh) = other.dimensions();
                return Err(malformed(
                    dir,
                    FORMAT,
                    format!(
                        "mixed image sizes without a declared size: {} is {w}×{h}, {} is {ow}×{oh}; declare one with images:DIR#size=32 (or size=HxW)",
                        first_path.display(),
                        path.display()
                    ),
                ));
            }
            (h, w)
        }
    };
    let channels = channels.unwrap_or_else(|| {
        if decoded.iter().any(|(_, i)| i.color().has_color()) {
            3
        } else {
            1
        }
    });
    let plane = (height * width) as usize;
    let mut pixels = Vec::with_capacity(decoded.len() * plane * channels as usize);
    for (_, image) in &decoded {
        let image = if image.dimensions() == (width, height) {
            image.clone()
        } else {
            image.resize_exact(width, height, FilterType::Triangle)
        };
        if channels == 1 {
            pixels.extend_from_slice(image.to_luma8().as_raw());
        } else {
            let rgb = image.to_rgb8();
            let raw = rgb.as_raw();
            for c in 0..3 {
                pixels.extend(raw.iter().skip(c).step_by(3));
            }
        }
    }
    let names: Vec<&str> = layout.iter().map(|(n, _)| n.as_str()).collect();
    let folder = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(RawDataset::read(
        &identity_name(dataset, dir),
        &names,
        RawPart {
            samples: Samples::Images {
                channels,
                height,
                width,
                pixels,
            },
            labels,
        },
        None,
        BTreeMap::from([(
            format!("{folder}/ ({} images)", decoded.len()),
            hex::encode(identity.finalize()),
        )]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_one_side_or_height_by_width() {
        assert_eq!(declared_size(None).ok(), Some(None));
        assert_eq!(declared_size(Some("32")).ok(), Some(Some((32, 32))));
        assert_eq!(declared_size(Some("28x14")).ok(), Some(Some((28, 14))));
        for bad in ["0", "x", "2000", "3x", "-1"] {
            assert!(declared_size(Some(bad)).is_err(), "{bad}");
        }
    }
}
