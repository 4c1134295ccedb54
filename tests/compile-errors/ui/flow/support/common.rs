// Shared by the flow UI cases: a state and a few nodes.
use serde::{Deserialize, Serialize};
use slateflow::{Command, SharedState, node};

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
pub struct Triage {
    #[reducer(add)]
    pub steps: u32,
}

#[node]
pub fn classify(_: &Triage) -> Command<Triage> {
    Command::new(Triage::update().add_steps(1))
}

#[node(actions = ["intrusion", "phishing"])]
pub fn route(_: &Triage) -> Command<Triage> {
    Command::goto("intrusion")
}

#[node]
pub fn investigate(_: &Triage) -> Command<Triage> {
    Command::default()
}

#[node]
pub fn report(_: &Triage) -> Command<Triage> {
    Command::default()
}

/// The steps of a hand-written node over `Triage` that does nothing and returns "page": the body
/// of the `impl Node<Triage>` cases, which differ in what surrounds it.
#[allow(unused_macros)]
macro_rules! paging_steps {
    () => {
        type Prep = ();
        type Exec = ();

        async fn prep(
            &self,
            _: &crate::common::Triage,
            _: &::slateflow::Context<'_>,
        ) -> Result<(), ::slateflow::NodeError> {
            Ok(())
        }

        async fn exec(&self, (): &()) -> Result<(), ::slateflow::NodeError> {
            Ok(())
        }

        async fn post(
            &self,
            _: &crate::common::Triage,
            (): (),
            (): (),
            _: &::slateflow::Context<'_>,
        ) -> Result<::slateflow::Command<crate::common::Triage>, ::slateflow::NodeError> {
            Ok(::slateflow::Command::goto("page"))
        }
    };
}
#[allow(unused_imports)]
pub(crate) use paging_steps;
