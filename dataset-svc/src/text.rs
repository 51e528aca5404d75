//! Word-level text encoding: lower-cased words (runs of letters, digits and apostrophes) and
//! single punctuation marks; a vocabulary of the train split's words seen at least
//! `min_frequency` times (the most frequent `max_vocab`, ties by word); id 0 pads, id 1 stands
//! for an unknown word; documents are truncated or padded at the end to `sequence_length`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::bpe::BpeVocabulary;
use crate::error::DatasetError;

pub const PAD_ID: i64 = 0;
pub const UNKNOWN_ID: i64 = 1;

/// The words of `text`, lower-cased.
pub fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    for character in text.chars() {
        if character.is_alphanumeric() || character == '\'' {
            word.extend(character.to_lowercase());
            continue;
        }
        if !word.is_empty() {
            tokens.push(std::mem::take(&mut word));
        }
        if !character.is_whitespace() {
            tokens.push(character.to_string());
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    tokens
}

#[derive(Debug, Clone, PartialEq)]
pub struct Vocabulary {
    ids: HashMap<String, i64>,
    /// Words by id, the two reserved ids first.
    words: Vec<String>,
}

impl Vocabulary {
    /// Built from the train documents only.
    pub fn fit(documents: &[String], min_frequency: usize, max_vocab: usize) -> Self {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for document in documents {
            for token in tokenize(document) {
                *counts.entry(token).or_default() += 1;
            }
        }
        let mut frequent: Vec<(String, usize)> = counts
            .into_iter()
            .filter(|(_, count)| *count >= min_frequency.max(1))
            .collect();
        frequent.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        frequent.truncate(max_vocab.saturating_sub(2));
        let mut words = vec!["<pad>".to_owned(), "<unk>".to_owned()];
        words.extend(frequent.into_iter().map(|(word, _)| word));
        let ids = words
            .iter()
            .enumerate()
            .skip(2)
            .map(|(id, word)| (word.clone(), id as i64))
            .collect();
        Self { ids, words }
    }

    /// Ids including the two reserved ones.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.len() <= 2
    }

    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// `[documents.len(), sequence_length]` token ids, row-major.
    pub fn encode(&self, documents: &[String], sequence_length: usize) -> Vec<i64> {
        let mut ids = Vec::with_capacity(documents.len() * sequence_length);
        for document in documents {
            let row = tokenize(document)
                .into_iter()
                .map(|token| self.ids.get(&token).copied().unwrap_or(UNKNOWN_ID));
            push_fixed_length(&mut ids, row, sequence_length);
        }
        ids
    }
}

/// Appends `row` truncated or padded (with [`PAD_ID`]) at the end to `sequence_length` ids.
pub(crate) fn push_fixed_length(
    ids: &mut Vec<i64>,
    row: impl Iterator<Item = i64>,
    sequence_length: usize,
) {
    let start = ids.len();
    ids.extend(row.take(sequence_length));
    ids.resize(start + sequence_length, PAD_ID);
}

/// How text becomes token ids.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenizerKind {
    /// Words and punctuation with a minimum frequency.
    #[default]
    Word,
    /// Byte-pair encoding trained on the train split.
    Bpe,
}

impl TokenizerKind {
    pub fn is_word(&self) -> bool {
        *self == Self::Word
    }
}

/// A text encoding fitted on the train split.
#[derive(Debug)]
pub enum TextEncoder {
    Word(Vocabulary),
    Bpe(Box<BpeVocabulary>),
}

impl TextEncoder {
    pub fn fit(
        kind: TokenizerKind,
        documents: &[String],
        min_frequency: usize,
        max_vocab: usize,
    ) -> Result<Self, DatasetError> {
        Ok(match kind {
            TokenizerKind::Word => Self::Word(Vocabulary::fit(documents, min_frequency, max_vocab)),
            TokenizerKind::Bpe => Self::Bpe(Box::new(BpeVocabulary::fit(
                documents,
                min_frequency,
                max_vocab,
            )?)),
        })
    }

    /// Ids including the two reserved ones.
    pub fn len(&self) -> usize {
        match self {
            Self::Word(vocabulary) => vocabulary.len(),
            Self::Bpe(vocabulary) => vocabulary.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() <= 2
    }

    /// `[documents.len(), sequence_length]` token ids, row-major.
    pub fn encode(
        &self,
        documents: &[String],
        sequence_length: usize,
    ) -> Result<Vec<i64>, DatasetError> {
        match self {
            Self::Word(vocabulary) => Ok(vocabulary.encode(documents, sequence_length)),
            Self::Bpe(vocabulary) => vocabulary.encode(documents, sequence_length),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_punctuation_are_tokens() {
        assert_eq!(
            tokenize("It's a GOOD film, really!"),
            ["it's", "a", "good", "film", ",", "really", "!"]
        );
    }

    #[test]
    fn rare_and_unseen_words_are_unknown_and_rows_are_padded() {
        let train = vec!["good good film".to_owned(), "bad film".to_owned()];
        let vocabulary = Vocabulary::fit(&train, 2, 100);
        assert_eq!(vocabulary.words(), ["<pad>", "<unk>", "film", "good"]);
        let ids = vocabulary.encode(&["good bad plot film".to_owned()], 6);
        assert_eq!(ids, [3, 1, 1, 2, 0, 0]);
        assert_eq!(vocabulary.encode(&["film film film".to_owned()], 2), [2, 2]);
    }
}
