//! [`ProgressBar`]: an observer that draws a batch's progress as a line of text.

use std::io::Write;
use std::sync::Mutex;

use super::{Event, Observer};

/// An [`Observer`] that draws a progress bar for each batch (a [`Batch`](crate::batch::Batch) of
/// items or runs of a batch flow) as its items finish, on standard error or any writer:
///
/// ```text
/// summarise [##############----------------] 19/40
/// ```
///
/// The bar is redrawn in place (`\r`) on each finished item and ends its line when the last one
/// finishes. Other events are not drawn; to log them too, observe with a channel
/// ([`channel`](super::channel)) or `TracingObserver` (feature `tracing`) instead, or
/// combine observers in your own.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use slateflow::batch::{Batch, BatchNode};
/// use slateflow::event::ProgressBar;
/// use slateflow::{Command, Context, NodeError, SharedState, flow};
///
/// #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// struct Words {
///     texts: Vec<String>,
///     #[reducer(add)]
///     count: usize,
/// }
///
/// /// Counts the words of each text, four at a time.
/// struct Count;
///
/// impl BatchNode<Words> for Count {
///     type Item = String;
///     type Output = usize;
///
///     async fn prep(&self, words: &Words, _: &Context<'_>) -> Result<Vec<String>, NodeError> {
///         Ok(words.texts.clone())
///     }
///
///     async fn exec(&self, text: &String) -> Result<usize, NodeError> {
///         Ok(text.split_whitespace().count())
///     }
///
///     async fn post(
///         &self,
///         _: &Words,
///         _: Vec<String>,
///         counts: Vec<usize>,
///         _: &Context<'_>,
///     ) -> Result<Command<Words>, NodeError> {
///         Ok(Command::new(Words::update().add_count(counts.iter().sum())))
///     }
/// }
///
/// let count = Batch::items(Count).concurrent(4);
/// let mut words = Words {
///     texts: vec!["one two".into(), "three".into()],
///     ..Words::default()
/// };
/// // `ProgressBar::stderr()` in a program; here a buffer, to show what it draws.
/// let bar = ProgressBar::to_writer(Vec::new()).width(10);
/// flow! { count; }.observe(&bar).run_blocking(&mut words)?;
/// assert_eq!(words.count, 3);
/// let drawn = String::from_utf8(bar.into_writer()).unwrap();
/// assert_eq!(drawn, "\rcount [#####-----] 1/2\rcount [##########] 2/2\n");
/// # Ok::<(), slateflow::Error>(())
/// ```
pub struct ProgressBar<W = std::io::Stderr> {
    out: Mutex<W>,
    width: usize,
}

impl ProgressBar {
    /// A bar drawn on standard error, 30 characters wide.
    pub fn stderr() -> Self {
        Self::to_writer(std::io::stderr())
    }
}

impl<W: Write> ProgressBar<W> {
    /// A bar drawn on `out`, 30 characters wide.
    pub fn to_writer(out: W) -> Self {
        Self {
            out: Mutex::new(out),
            width: 30,
        }
    }

    /// The bar `width` characters wide.
    #[must_use]
    pub fn width(mut self, width: usize) -> Self {
        self.width = width.max(1);
        self
    }

    /// The writer, with what was drawn on it.
    pub fn into_writer(self) -> W {
        self.out
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<W: Write + Send> Observer for ProgressBar<W> {
    fn on_event(&self, event: &Event<'_>) {
        let Event::BatchItemFinished {
            at,
            finished,
            total,
            ..
        } = event
        else {
            return;
        };
        let (finished, total) = (*finished, (*total).max(1));
        let filled = finished.min(total) * self.width / total;
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A bar that cannot be drawn (a closed terminal) must not fail the run.
        let _ = write!(
            out,
            "\r{} [{}{}] {finished}/{total}",
            at.path(),
            "#".repeat(filled),
            "-".repeat(self.width - filled)
        );
        let _ = if finished >= total {
            writeln!(out)
        } else {
            out.flush()
        };
    }
}

impl<W> std::fmt::Debug for ProgressBar<W> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ProgressBar")
            .field("width", &self.width)
            .finish_non_exhaustive()
    }
}
