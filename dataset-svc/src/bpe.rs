//! Byte-pair encoding learned on the train split, through the `tokenizers` crate: text is
//! lower-cased, split on whitespace and punctuation, and merged into sub-word units up to the
//! vocabulary size; `[PAD]` is id 0 and `[UNK]` id 1, as in the word vocabulary, and rows are
//! truncated or padded at the end to the sequence length.

use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::normalizers::Lowercase;
use tokenizers::pre_tokenizers::whitespace::Whitespace;
use tokenizers::{
    AddedToken, DecoderWrapper, Model, NormalizerWrapper, PostProcessorWrapper,
    PreTokenizerWrapper, TokenizerBuilder, TokenizerImpl,
};

use crate::error::{DatasetError, bad_option};
use crate::text::push_fixed_length;

type Tokenizer = TokenizerImpl<
    BPE,
    NormalizerWrapper,
    PreTokenizerWrapper,
    PostProcessorWrapper,
    DecoderWrapper,
>;

/// A BPE vocabulary fitted on train documents.
pub struct BpeVocabulary {
    tokenizer: Tokenizer,
}

impl std::fmt::Debug for BpeVocabulary {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "BpeVocabulary({} ids)", self.len())
    }
}

fn failed(stage: &str, error: impl std::fmt::Display) -> DatasetError {
    bad_option("text.tokenizer", format!("BPE {stage} failed: {error}"))
}

impl BpeVocabulary {
    /// Learns merges from the train documents only, up to `vocab_size` ids (the two reserved
    /// ones included); a pair enters when it occurs `min_frequency` times or more.
    pub fn fit(
        documents: &[String],
        min_frequency: usize,
        vocab_size: usize,
    ) -> Result<Self, DatasetError> {
        let model = BPE::builder()
            .unk_token("[UNK]".to_owned())
            .build()
            .map_err(|e| failed("set-up", e))?;
        let mut tokenizer: Tokenizer = TokenizerBuilder::new()
            .with_model(model)
            .with_normalizer(Some(NormalizerWrapper::Lowercase(Lowercase)))
            .with_pre_tokenizer(Some(PreTokenizerWrapper::Whitespace(Whitespace {})))
            .with_post_processor(None)
            .with_decoder(None)
            .build()
            .map_err(|e| failed("set-up", e))?;
        let mut trainer = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(min_frequency as u64)
            .show_progress(false)
            .special_tokens(vec![
                AddedToken::from("[PAD]", true),
                AddedToken::from("[UNK]", true),
            ])
            .build();
        tokenizer
            .train(&mut trainer, documents.iter())
            .map_err(|e| failed("training", e))?;
        Ok(Self { tokenizer })
    }

    /// Ids including the two reserved ones.
    pub fn len(&self) -> usize {
        self.tokenizer.get_model().get_vocab_size()
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
        let inputs: Vec<&str> = documents.iter().map(String::as_str).collect();
        let encodings = self
            .tokenizer
            .encode_batch(inputs, false)
            .map_err(|e| failed("encoding", e))?;
        let mut ids = Vec::with_capacity(documents.len() * sequence_length);
        for encoding in encodings {
            let row = encoding.get_ids().iter().map(|id| i64::from(*id));
            push_fixed_length(&mut ids, row, sequence_length);
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_frequent_pieces_reserves_pad_and_unk_and_pads_rows() {
        let train: Vec<String> = (0..50)
            .map(|i| format!("lower lowest newer newest wider widest {}", i % 5))
            .collect();
        let vocabulary = BpeVocabulary::fit(&train, 2, 60).expect("fit");
        assert!(
            vocabulary.len() <= 60 && vocabulary.len() > 10,
            "{}",
            vocabulary.len()
        );
        assert_eq!(vocabulary.tokenizer.token_to_id("[PAD]"), Some(0));
        assert_eq!(vocabulary.tokenizer.token_to_id("[UNK]"), Some(1));
        let ids = vocabulary
            .encode(&["Lowest newest".to_owned(), "zzz".to_owned()], 4)
            .expect("encode");
        assert_eq!(ids.len(), 8);
        assert!(ids[..2].iter().all(|id| *id > 1), "known pieces: {ids:?}");
        assert_eq!(ids[2..4], [0, 0], "padded");
        assert_eq!(ids[4], 1, "an unseen character is unknown: {ids:?}");
        let again = BpeVocabulary::fit(&train, 2, 60).expect("fit again");
        assert_eq!(
            again.encode(&train[..3], 8).expect("encode"),
            vocabulary.encode(&train[..3], 8).expect("encode"),
            "training is deterministic"
        );
    }
}
