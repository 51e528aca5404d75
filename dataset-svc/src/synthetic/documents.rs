//! `synthetic-text`: documents of 4 to `size` pronounceable made-up words. Each class owns a
//! set of topic words; a document mixes its class's topic words with words shared by every
//! class, and with probability `noise` a topic word comes from another class. Difficulty lowers
//! the share of topic words.

use rand::Rng;

use super::SyntheticOptions;
use crate::raw::Samples;

const ONSETS: [&str; 12] = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t"];
const VOWELS: [&str; 5] = ["a", "e", "i", "o", "u"];
const TOPIC_WORDS: usize = 24;
const SHARED_WORDS: usize = 200;

fn made_up_word(index: usize) -> String {
    // A bijective base-60 spelling (onset + vowel syllables) of index + 1.
    let mut n = index + 1;
    let mut word = String::new();
    while n > 0 {
        let syllable = (n - 1) % 60;
        word.push_str(ONSETS[syllable / 5]);
        word.push_str(VOWELS[syllable % 5]);
        n = (n - 1) / 60;
    }
    word
}

pub(super) fn draw(
    options: &SyntheticOptions,
    labels: &[i64],
    rng: &mut impl Rng,
) -> (Samples, Vec<String>) {
    let classes = options.num_classes;
    let topic = |class: usize, j: usize| made_up_word(SHARED_WORDS + class * TOPIC_WORDS + j);
    let topic_share = 0.35 * (1.0 - 0.7 * options.difficulty) + 0.05;
    let noise = options.noise.min(1.0);
    let mut documents = Vec::with_capacity(labels.len());
    for label in labels {
        let length = rng.random_range(4..=options.size);
        let mut words = Vec::with_capacity(length);
        for _ in 0..length {
            if rng.random_bool(topic_share) {
                let class = if rng.random_bool(noise) {
                    rng.random_range(0..classes)
                } else {
                    *label as usize
                };
                words.push(topic(class, rng.random_range(0..TOPIC_WORDS)));
            } else {
                words.push(made_up_word(rng.random_range(0..SHARED_WORDS)));
            }
        }
        documents.push(words.join(" "));
    }
    let class_names = (0..classes).map(|c| format!("topic_{c}")).collect();
    (Samples::Text(documents), class_names)
}

#[cfg(test)]
mod tests {
    #[test]
    fn made_up_words_are_distinct() {
        let words: std::collections::HashSet<String> = (0..5000).map(super::made_up_word).collect();
        assert_eq!(words.len(), 5000);
    }
}
