//! Recipe: map-reduce over a concurrent batch, with a progress bar.
//!
//! The map step is a batch node that handles each document on its own, eight at a time (a rate
//! limit on a model would go here); its `post` is the reduce, which folds the outputs into one
//! update. A second node reads the result. `event::ProgressBar` draws the batch's progress on
//! standard error as items finish.
//!
//! ```sh
//! cargo run -p slateflow-examples --example mapreduce
//! ```
//!
//! Offline: each "model call" is a short sleep.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use slateflow::batch::{Batch, BatchNode};
use slateflow::event::ProgressBar;
use slateflow::{Command, Context, NodeError, SharedState, flow, node};

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
struct Corpus {
    documents: Vec<String>,
    /// Word counts over every document: each update's counts are added to these.
    #[reducer(with = add_counts)]
    counts: BTreeMap<String, u32>,
    top: Vec<(String, u32)>,
}

/// The reducer of `counts`: adds the new counts word by word (associative, as a reducer must be).
fn add_counts(counts: &mut BTreeMap<String, u32>, new: BTreeMap<String, u32>) {
    for (word, count) in new {
        *counts.entry(word).or_default() += count;
    }
}

/// Map: the words of one document, counted. Reduce: all the documents' counts, added.
struct CountWords;

impl BatchNode<Corpus> for CountWords {
    type Item = String;
    type Output = BTreeMap<String, u32>;

    async fn prep(&self, corpus: &Corpus, _: &Context<'_>) -> Result<Vec<String>, NodeError> {
        Ok(corpus.documents.clone())
    }

    async fn exec(&self, document: &String) -> Result<BTreeMap<String, u32>, NodeError> {
        // A model call in real life: here a short wait.
        tokio::time::sleep(Duration::from_millis(10 + document.len() as u64 % 20)).await;
        let mut counts = BTreeMap::new();
        for word in document.split_whitespace() {
            let word = word
                .trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase();
            if word.len() > 3 {
                *counts.entry(word).or_default() += 1;
            }
        }
        Ok(counts)
    }

    async fn post(
        &self,
        _: &Corpus,
        _: Vec<String>,
        outputs: Vec<BTreeMap<String, u32>>,
        _: &Context<'_>,
    ) -> Result<Command<Corpus>, NodeError> {
        let mut update = Corpus::update();
        for counts in outputs {
            update = update.reduce_counts(counts);
        }
        Ok(Command::new(update))
    }
}

/// Picks the five most frequent words.
#[node]
fn rank(corpus: &Corpus) -> Command<Corpus> {
    let mut words: Vec<(String, u32)> = corpus
        .counts
        .iter()
        .map(|(word, count)| (word.clone(), *count))
        .collect();
    words.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    words.truncate(5);
    Command::new(Corpus::update().set_top(words))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count = Batch::items(CountWords).concurrent(8);
    let flow = flow! { count >> rank; };
    let mut corpus = Corpus {
        documents: (1..=60)
            .map(|number| {
                format!(
                    "Report {number}: the refund queue grew; refunds and reviews wait for the \
                     review team, and team {} answers.",
                    number % 3
                )
            })
            .collect(),
        ..Corpus::default()
    };
    flow.observe(ProgressBar::stderr())
        .run_blocking(&mut corpus)?;
    for (word, count) in &corpus.top {
        println!("{count:>4} {word}");
    }
    Ok(())
}
