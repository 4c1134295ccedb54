//! [`Durability`]: how often a durable run writes its steps, and what a crash can lose.

/// How often a durable run writes its steps to the store, set with
/// [`Durable::durability`](super::Durable::durability).
///
/// Whatever the mode, the store holds a first part of the run's history, whole and in order: a
/// resume rebuilds the state at the last step written and goes on from there, never from a state
/// the run did not have. The modes differ in how many steps a crash can take back.
///
/// ```
/// use slateflow::checkpoint::MemoryStore;
/// use slateflow::durable::Durability;
/// use slateflow::{Command, SharedState, flow, node};
/// # use serde::{Deserialize, Serialize};
///
/// #[derive(SharedState, Default, Serialize, Deserialize)]
/// struct Crawl {
///     #[reducer(add)]
///     pages: u64,
/// }
///
/// #[node(actions = ["more", "done"])]
/// fn fetch(crawl: &Crawl) -> Command<Crawl> {
///     let action = if crawl.pages + 1 < 100 { "more" } else { "done" };
///     Command::new(Crawl::update().add_pages(1)).with_action(action)
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let crawler = flow! { fetch - "more" >> fetch; };
/// // 100 steps in 4 writes of 32 steps or fewer: a crash takes back at most 31 steps.
/// let durable = crawler
///     .durable(MemoryStore::new())
///     .durability(Durability::batched(32));
/// let mut crawl = Crawl::default();
/// durable.start("crawl-1", &mut crawl).await?;
/// assert_eq!(durable.state("crawl-1").await?.pages, 100);
/// # Ok::<(), slateflow::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Each step is written, and flushed, before the next node starts (the default). A crash
    /// takes back nothing written: only the step whose node was running when it came, which runs
    /// again on resume.
    #[default]
    EveryStep,
    /// Steps are written `steps` at a time, in one write (one flush, one transaction): fewer,
    /// larger writes, for throughput. A crash takes back at most the `steps - 1` steps since the
    /// last write (and the step that was running); a resume goes on from the last step written,
    /// so the nodes of the steps taken back run again, and their side effects with them. Every
    /// step is written before the run returns: at its end, at a pause (a pause is never lost),
    /// when it fails, and before anything else is saved (the finished branches of a fork, the
    /// runs of a batch flow, the items of a kept batch), so those keep their promises.
    /// [`Event::StepSaved`](crate::event::Event::StepSaved) comes when a step is written.
    Batched {
        /// Steps per write, at least 1 (1 is [`EveryStep`](Durability::EveryStep)).
        steps: u32,
    },
}

impl Durability {
    /// [`Durability::Batched`] with `steps` steps per write (at least 1).
    pub const fn batched(steps: u32) -> Self {
        Self::Batched {
            steps: if steps == 0 { 1 } else { steps },
        }
    }

    /// Steps per write.
    pub(super) const fn steps(self) -> usize {
        match self {
            Self::EveryStep => 1,
            Self::Batched { steps } => steps as usize,
        }
    }
}
