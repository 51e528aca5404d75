//! Image datasets: the IDX family (MNIST, Fashion-MNIST, KMNIST) and the CIFAR binary
//! versions, read from the loose files or straight from the canonical tarball.

use std::collections::BTreeMap;
use std::path::Path;

use super::Originals;
use crate::error::{DatasetError, malformed};
use crate::formats::cifar::parse_cifar_records;
use crate::formats::idx::parse_idx_u8;
use crate::raw::{RawDataset, RawPart, Samples};

/// The CIFAR-10 classes, in label order.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// An IDX image file and its IDX label file (MNIST layout, gzip or not) as one part.
pub fn idx_part(
    originals_folder: &Path,
    images: &str,
    labels: &str,
    classes: usize,
) -> Result<(RawPart, BTreeMap<String, String>), DatasetError> {
    let mut originals = Originals::new(originals_folder);
    let (image_bytes, image_path) = originals.read(images)?;
    let (label_bytes, label_path) = originals.read(labels)?;
    let (dims, pixels) = parse_idx_u8(&image_bytes, &image_path)?;
    let (label_dims, label_values) = parse_idx_u8(&label_bytes, &label_path)?;
    if dims.len() != 3 || label_dims.len() != 1 || dims[0] != label_dims[0] {
        return Err(malformed(
            &image_path,
            "IDX",
            format!("images {dims:?} and labels {label_dims:?} do not pair up"),
        ));
    }
    if let Some(bad) = label_values.iter().find(|l| usize::from(**l) >= classes) {
        return Err(malformed(
            &label_path,
            "IDX",
            format!("label {bad} outside 0..{classes}"),
        ));
    }
    let part = RawPart {
        samples: Samples::Images {
            channels: 1,
            height: dims[1] as u32,
            width: dims[2] as u32,
            pixels,
        },
        labels: label_values.iter().map(|l| i64::from(*l)).collect(),
    };
    Ok((part, originals.checksums))
}

/// Fashion-MNIST's classes, in label order.
pub const FASHION_CLASSES: [&str; 10] = [
    "t-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
];

/// KMNIST's classes (Kuzushiji hiragana), romanised, in label order.
pub const KMNIST_CLASSES: [&str; 10] = ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"];

/// The four files of the IDX family (MNIST, Fashion-MNIST and KMNIST share the names).
pub const IDX_TRAIN: (&str, &str) = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz");
pub const IDX_TEST: (&str, &str) = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz");

/// An IDX-family dataset: the train files as the train part and the t10k files as the test
/// part; with only the t10k files present (a partial copy), they become the train part and
/// there is no test part.
fn idx_dataset(folder: &Path, name: &str, classes: &[&str]) -> Result<RawDataset, DatasetError> {
    let (test, mut checksums) = idx_part(folder, IDX_TEST.0, IDX_TEST.1, classes.len())?;
    let (train, test) = if folder.join(IDX_TRAIN.0).is_file() {
        let (train, train_checksums) = idx_part(folder, IDX_TRAIN.0, IDX_TRAIN.1, classes.len())?;
        checksums.extend(train_checksums);
        (train, Some(test))
    } else {
        (test, None)
    };
    Ok(RawDataset::read(name, classes, train, test, checksums))
}

/// MNIST (IDX files, gzip).
pub fn mnist(folder: &Path) -> Result<RawDataset, DatasetError> {
    idx_dataset(folder, "mnist", &super::DIGIT_CLASSES)
}

/// Fashion-MNIST (IDX files, gzip, the MNIST names).
pub fn fashion_mnist(folder: &Path) -> Result<RawDataset, DatasetError> {
    idx_dataset(folder, "fashion-mnist", &FASHION_CLASSES)
}

/// KMNIST (IDX files, gzip, the MNIST names).
pub fn kmnist(folder: &Path) -> Result<RawDataset, DatasetError> {
    idx_dataset(folder, "kmnist", &KMNIST_CLASSES)
}

/// Where the records of a CIFAR binary version come from.
#[derive(Debug, Clone, Copy)]
pub struct CifarLayout {
    pub name: &'static str,
    /// Label bytes per record and which one is the label used.
    pub label_bytes: usize,
    pub label_index: usize,
    pub classes: &'static [&'static str],
    /// The canonical tarball, read when the loose files are absent.
    pub archive: &'static str,
}

pub const CIFAR10: CifarLayout = CifarLayout {
    name: "cifar10",
    label_bytes: 1,
    label_index: 0,
    classes: &CIFAR10_CLASSES,
    archive: "cifar-10-binary.tar.gz",
};

pub const CIFAR100: CifarLayout = CifarLayout {
    name: "cifar100",
    label_bytes: 2,
    label_index: 1,
    classes: &CIFAR100_CLASSES,
    archive: "cifar-100-binary.tar.gz",
};

/// CIFAR-10 binary batches: the given train files as the train part, the test files (if any)
/// as the test part. The full set is `data_batch_1.bin` … `data_batch_5.bin` and
/// `test_batch.bin`; a subset in the same layout works the same way.
pub fn cifar10(
    folder: &Path,
    train_files: &[&str],
    test_files: &[&str],
) -> Result<RawDataset, DatasetError> {
    cifar(folder, &CIFAR10, train_files, test_files)
}

/// A CIFAR binary version: the records of `train_files` and `test_files`, read as loose files
/// from `folder` or, when the first of them is absent, from the layout's tarball there.
pub fn cifar(
    folder: &Path,
    layout: &CifarLayout,
    train_files: &[&str],
    test_files: &[&str],
) -> Result<RawDataset, DatasetError> {
    let mut originals = Originals::new(folder);
    let all: Vec<&str> = train_files.iter().chain(test_files).copied().collect();
    let loose = all.first().is_some_and(|first| originals.exists(first))
        || !originals.exists(layout.archive);
    let contents: Vec<(Vec<u8>, std::path::PathBuf)> = if loose {
        all.iter()
            .map(|file| originals.read(file))
            .collect::<Result<_, _>>()?
    } else {
        let archive_path = originals.path(layout.archive);
        super::tar_members_named(&mut originals, layout.archive, &all)?
            .into_iter()
            .zip(&all)
            .map(|(bytes, file)| (bytes, archive_path.join(file)))
            .collect()
    };
    let part = |range: std::ops::Range<usize>| -> Result<RawPart, DatasetError> {
        let (mut pixels, mut labels) = (Vec::new(), Vec::new());
        for (bytes, path) in &contents[range] {
            let (p, l) = parse_cifar_records(
                bytes,
                layout.label_bytes,
                layout.label_index,
                layout.classes.len(),
                path,
            )?;
            pixels.extend(p);
            labels.extend(l);
        }
        Ok(RawPart {
            samples: Samples::Images {
                channels: 3,
                height: 32,
                width: 32,
                pixels,
            },
            labels,
        })
    };
    let train = part(0..train_files.len())?;
    let test = if test_files.is_empty() {
        None
    } else {
        Some(part(train_files.len()..all.len())?)
    };
    Ok(RawDataset::read(
        layout.name,
        layout.classes,
        train,
        test,
        originals.checksums,
    ))
}

/// CIFAR-100's fine classes, in label order.
pub const CIFAR100_CLASSES: [&str; 100] = [
    "apple",
    "aquarium_fish",
    "baby",
    "bear",
    "beaver",
    "bed",
    "bee",
    "beetle",
    "bicycle",
    "bottle",
    "bowl",
    "boy",
    "bridge",
    "bus",
    "butterfly",
    "camel",
    "can",
    "castle",
    "caterpillar",
    "cattle",
    "chair",
    "chimpanzee",
    "clock",
    "cloud",
    "cockroach",
    "couch",
    "crab",
    "crocodile",
    "cup",
    "dinosaur",
    "dolphin",
    "elephant",
    "flatfish",
    "forest",
    "fox",
    "girl",
    "hamster",
    "house",
    "kangaroo",
    "keyboard",
    "lamp",
    "lawn_mower",
    "leopard",
    "lion",
    "lizard",
    "lobster",
    "man",
    "maple_tree",
    "motorcycle",
    "mountain",
    "mouse",
    "mushroom",
    "oak_tree",
    "orange",
    "orchid",
    "otter",
    "palm_tree",
    "pear",
    "pickup_truck",
    "pine_tree",
    "plain",
    "plate",
    "poppy",
    "porcupine",
    "possum",
    "rabbit",
    "raccoon",
    "ray",
    "road",
    "rocket",
    "rose",
    "sea",
    "seal",
    "shark",
    "shrew",
    "skunk",
    "skyscraper",
    "snail",
    "snake",
    "spider",
    "squirrel",
    "streetcar",
    "sunflower",
    "sweet_pepper",
    "table",
    "tank",
    "telephone",
    "television",
    "tiger",
    "tractor",
    "train",
    "trout",
    "tulip",
    "turtle",
    "wardrobe",
    "whale",
    "willow_tree",
    "wolf",
    "woman",
    "worm",
];

/// SVHN cropped digits (format 2): `train_32x32.mat` and `test_32x32.mat`, MATLAB v5 files
/// with `X` (32×32×3×N uint8, column-major) and `y` (N×1, 1-10 where 10 stands for the digit 0).
pub fn svhn(folder: &Path) -> Result<RawDataset, DatasetError> {
    let mut originals = Originals::new(folder);
    let mut read_part = |file: &str| -> Result<RawPart, DatasetError> {
        let (bytes, path) = originals.read(file)?;
        let mat = matfile::MatFile::parse(bytes.as_slice())
            .map_err(|error| malformed(&path, "MATLAB v5", error.to_string()))?;
        let array = |name: &str| {
            mat.find_by_name(name).ok_or_else(|| {
                malformed(
                    &path,
                    "SVHN .mat",
                    format!("it has no numeric array {name:?}"),
                )
            })
        };
        let (x, y) = (array("X")?, array("y")?);
        let dims = x.size();
        let pixels = match x.data() {
            matfile::NumericData::UInt8 { real, .. } => real,
            _ => return Err(malformed(&path, "SVHN .mat", "X is not uint8")),
        };
        let [height, width, channels, count] = dims[..] else {
            return Err(malformed(
                &path,
                "SVHN .mat",
                format!("X has dimensions {dims:?}, expected 32×32×3×N"),
            ));
        };
        let labels: Vec<f64> = match y.data() {
            matfile::NumericData::Double { real, .. } => real.clone(),
            matfile::NumericData::UInt8 { real, .. } => {
                real.iter().map(|v| f64::from(*v)).collect()
            }
            _ => {
                return Err(malformed(
                    &path,
                    "SVHN .mat",
                    "y is neither double nor uint8",
                ));
            }
        };
        let expected = height
            .checked_mul(width)
            .and_then(|plane| plane.checked_mul(3 * count));
        if channels != 3 || labels.len() != count || Some(pixels.len()) != expected {
            return Err(malformed(
                &path,
                "SVHN .mat",
                format!("X {dims:?} and y of {} labels do not pair up", labels.len()),
            ));
        }
        // Column-major X(h, w, c, n) → row-major [n][c][h][w].
        let plane = height * width;
        let mut planes = vec![0u8; pixels.len()];
        for n in 0..count {
            for c in 0..3 {
                for w in 0..width {
                    for h in 0..height {
                        let source = h + height * (w + width * (c + 3 * n));
                        planes[((n * 3 + c) * plane) + h * width + w] = pixels[source];
                    }
                }
            }
        }
        let labels = labels
            .iter()
            .enumerate()
            .map(|(i, v)| match *v as i64 {
                10 => Ok(0),
                digit @ 1..=9 if v.fract() == 0.0 => Ok(digit),
                _ => Err(malformed(
                    &path,
                    "SVHN .mat",
                    format!("label {i} is {v}, not 1-10"),
                )),
            })
            .collect::<Result<Vec<i64>, _>>()?;
        Ok(RawPart {
            samples: Samples::Images {
                channels: 3,
                height: height as u32,
                width: width as u32,
                pixels: planes,
            },
            labels,
        })
    };
    let train = read_part("train_32x32.mat")?;
    let test = read_part("test_32x32.mat")?;
    Ok(RawDataset::read(
        "svhn",
        &super::DIGIT_CLASSES,
        train,
        Some(test),
        originals.checksums,
    ))
}
