//! Tools a model can call: the [`Tool`] trait, [`from_fn`] for a closure, and the [`Toolbox`] an
//! [`Agent`](crate::agent::Agent) offers its model.
//!
//! A tool never fails the run: arguments that are not JSON, arguments that do not fit the tool's
//! type, a call of a tool that does not exist and a tool's own error all become a tool message with
//! `is_error` set, which the model reads and can act on (call again, differently, or give up).
//!
//! This module knows messages and model tool definitions; nothing about the state or runs.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::agent::message::{Message, ToolCall};
use crate::agent::model::ToolSpec;
use crate::error::NodeError;

/// A tool: a name, a description and an argument schema for the model, and the call itself.
///
/// ```
/// use serde::Deserialize;
/// use serde_json::{Value, json};
/// use slateflow::NodeError;
/// use slateflow::agent::tool::Tool;
///
/// #[derive(Deserialize)]
/// struct Args { ip: String }
///
/// struct LookupIp;
///
/// impl Tool for LookupIp {
///     type Args = Args;
///     type Output = Value;
///
///     fn name(&self) -> &str { "lookup_ip" }
///     fn description(&self) -> &str { "Reputation of an IP address" }
///     fn parameters(&self) -> Value {
///         json!({"type": "object", "properties": {"ip": {"type": "string"}}, "required": ["ip"]})
///     }
///     async fn call(&self, args: Args) -> Result<Value, NodeError> {
///         Ok(json!({"ip": args.ip, "blocked": args.ip.starts_with("10.")}))
///     }
/// }
/// ```
pub trait Tool: Send + Sync + 'static {
    /// The arguments, read from the model's JSON.
    type Args: DeserializeOwned + Send;
    /// What the call returns; a string is shown to the model as it is, anything else as JSON.
    type Output: Serialize;

    /// The name the model calls it by.
    fn name(&self) -> &str;
    /// What it does, for the model.
    fn description(&self) -> &str;
    /// The JSON schema of [`Args`](Tool::Args).
    fn parameters(&self) -> Value;
    /// Runs the tool. An error is shown to the model as a failed call.
    fn call(
        &self,
        args: Self::Args,
    ) -> impl Future<Output = Result<Self::Output, NodeError>> + Send;

    /// Runs the tool with the call's idempotency key: `thread/step/call id` in a durable run,
    /// the same across retries and resumes (`node@step/call id` otherwise). A tool that changes
    /// another system passes it along (as an `Idempotency-Key` header, a unique column), so that
    /// a call run twice has its effect once; such a tool says so with
    /// [`repeatable`](Self::repeatable). By default, [`call`](Self::call), without the key.
    fn call_keyed(
        &self,
        args: Self::Args,
        key: &str,
    ) -> impl Future<Output = Result<Self::Output, NodeError>> + Send {
        let _ = key;
        self.call(args)
    }

    /// Whether a call may be run again when a durable run stopped during it (a crash, a kill)
    /// and its result was not saved: true for a tool without effects (a lookup) or one that
    /// uses its key ([`call_keyed`](Self::call_keyed)). False by default: the call is not run
    /// again, and the model is told that it may or may not have happened.
    fn repeatable(&self) -> bool {
        false
    }

    /// Whether a person approves each call before it runs: an [`Agent`](crate::agent::Agent)
    /// pauses its durable run with the call as the question, and runs it, runs it with edited
    /// arguments, or tells the model it was rejected, as the reply says
    /// ([`Approval`](crate::agent::Approval)). False by default.
    fn needs_approval(&self) -> bool {
        false
    }
}

/// A tool made from a closure; see [`from_fn`].
///
/// ```
/// use serde::Deserialize;
/// use slateflow::agent::tool::{self, FnTool, Tool};
///
/// #[derive(Deserialize)]
/// struct Sum { a: i64, b: i64 }
///
/// // The type `tool::from_fn` makes: a tool from a name, a description, a schema and a function.
/// let add = tool::from_fn(
///     "add",
///     "Adds two numbers",
///     serde_json::json!({"type": "object", "properties": {"a": {}, "b": {}}}),
///     |args: Sum| async move { Ok(serde_json::json!(args.a + args.b)) },
/// );
/// assert_eq!(add.name(), "add");
/// let _: &FnTool<_, Sum> = &add;
/// ```
pub struct FnTool<F, A> {
    name: String,
    description: String,
    parameters: Value,
    function: F,
    repeatable: bool,
    needs_approval: bool,
    args: std::marker::PhantomData<fn(A)>,
}

impl<F, A> FnTool<F, A> {
    /// Marks the tool safe to run again when a durable run stopped during a call of it (it has
    /// no effects, or its effects are idempotent): see [`Tool::repeatable`].
    #[must_use]
    pub fn repeatable(mut self) -> Self {
        self.repeatable = true;
        self
    }

    /// Marks the tool as one whose every call a person approves first: see
    /// [`Tool::needs_approval`].
    ///
    /// ```
    /// use slateflow::agent::tool::{self, Tool};
    ///
    /// let pay = tool::from_fn(
    ///     "pay",
    ///     "Pays an invoice",
    ///     serde_json::json!({"type": "object"}),
    ///     |_: serde_json::Value| async move { Ok("paid") },
    /// )
    /// .needs_approval();
    /// assert!(Tool::needs_approval(&pay));
    /// ```
    #[must_use]
    pub fn needs_approval(mut self) -> Self {
        self.needs_approval = true;
        self
    }
}

/// A tool from a name, a description, an argument schema and an async closure.
///
/// ```
/// use serde::Deserialize;
/// use serde_json::json;
/// use slateflow::agent::tool::{Toolbox, from_fn};
///
/// #[derive(Deserialize)]
/// struct Sum { a: i64, b: i64 }
///
/// let add = from_fn(
///     "add",
///     "Adds two integers",
///     json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}),
///     |args: Sum| async move { Ok(args.a + args.b) },
/// );
/// let tools = Toolbox::new().with(add);
/// assert_eq!(tools.specs()[0].name, "add");
/// ```
pub fn from_fn<A, O, F, Fut>(
    name: impl Into<String>,
    description: impl Into<String>,
    parameters: Value,
    function: F,
) -> FnTool<F, A>
where
    A: DeserializeOwned + Send + 'static,
    O: Serialize + 'static,
    F: Fn(A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, NodeError>> + Send,
{
    FnTool {
        name: name.into(),
        description: description.into(),
        parameters,
        function,
        repeatable: false,
        needs_approval: false,
        args: std::marker::PhantomData,
    }
}

impl<A, O, F, Fut> Tool for FnTool<F, A>
where
    A: DeserializeOwned + Send + 'static,
    O: Serialize + 'static,
    F: Fn(A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, NodeError>> + Send,
{
    type Args = A;
    type Output = O;

    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters(&self) -> Value {
        self.parameters.clone()
    }

    fn call(&self, args: A) -> impl Future<Output = Result<O, NodeError>> + Send {
        (self.function)(args)
    }

    fn repeatable(&self) -> bool {
        self.repeatable
    }

    fn needs_approval(&self) -> bool {
        self.needs_approval
    }
}

impl<F, A> fmt::Debug for FnTool<F, A> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("FnTool")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

type Answer<'a> = Pin<Box<dyn Future<Output = Message> + Send + 'a>>;

/// A [`Tool`] whose argument and output types are erased, so that tools of different types fit
/// in one [`Toolbox`].
trait AnyTool: Send + Sync {
    fn spec(&self) -> ToolSpec;
    fn name(&self) -> &str;
    fn repeatable(&self) -> bool;
    fn needs_approval(&self) -> bool;
    fn answer<'a>(&'a self, call: &'a ToolCall, key: &'a str) -> Answer<'a>;
}

impl<T: Tool> AnyTool for T {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: Tool::name(self).to_string(),
            description: self.description().to_string(),
            parameters: self.parameters(),
        }
    }

    fn name(&self) -> &str {
        Tool::name(self)
    }

    fn repeatable(&self) -> bool {
        Tool::repeatable(self)
    }

    fn needs_approval(&self) -> bool {
        Tool::needs_approval(self)
    }

    fn answer<'a>(&'a self, call: &'a ToolCall, key: &'a str) -> Answer<'a> {
        Box::pin(async move {
            let arguments = match call.arguments() {
                Ok(arguments) => arguments,
                Err(error) => return Message::tool_error(&call.id, error.to_string()),
            };
            let args: T::Args = match serde_path_to_error::deserialize(arguments) {
                Ok(args) => args,
                Err(error) => {
                    return Message::tool_error(
                        &call.id,
                        format!(
                            "the arguments of the call to `{}` do not fit its schema at `{}`: {}",
                            call.name,
                            error.path(),
                            error.inner()
                        ),
                    );
                }
            };
            match self.call_keyed(args, key).await {
                Ok(output) => match serde_json::to_value(&output) {
                    Ok(Value::String(text)) => Message::tool(&call.id, text),
                    Ok(value) => Message::tool(&call.id, value.to_string()),
                    Err(error) => Message::tool_error(
                        &call.id,
                        format!(
                            "the tool `{}` returned output that is not JSON: {error}",
                            call.name
                        ),
                    ),
                },
                Err(error) => Message::tool_error(
                    &call.id,
                    format!("the tool `{}` failed: {error}", call.name),
                ),
            }
        })
    }
}

/// The tools an agent offers its model, by name.
///
/// ```
/// use serde_json::json;
/// use slateflow::agent::message::{Message, ToolCall};
/// use slateflow::agent::tool::{Toolbox, from_fn};
///
/// let tools = Toolbox::new().with(from_fn(
///     "double", "Doubles n", json!({"type": "object"}),
///     |args: serde_json::Value| async move { Ok(args["n"].as_i64().unwrap_or(0) * 2) },
/// ));
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let answer = tools.call(&ToolCall::new("c1", "double", r#"{"n": 21}"#)).await;
/// assert_eq!(answer, Message::tool("c1", "42"));
/// let answer = tools.call(&ToolCall::new("c2", "triple", "{}")).await;
/// assert_eq!(answer.content(), "there is no tool named `triple`; the tools are: double");
/// let answer = tools.call(&ToolCall::new("c3", "double", "{\"n\": ")).await;
/// assert!(answer.content().starts_with("the arguments of the call to `double` are not valid JSON"));
/// # });
/// ```
#[derive(Default)]
pub struct Toolbox {
    tools: Vec<Box<dyn AnyTool>>,
}

impl Toolbox {
    /// No tools.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `tool`.
    ///
    /// # Panics
    /// When the toolbox already has a tool of that name: the model could not tell them apart.
    #[must_use]
    pub fn with(mut self, tool: impl Tool) -> Self {
        assert!(
            self.get(Tool::name(&tool)).is_none(),
            "the toolbox already has a tool named `{}`; give each tool its own name",
            Tool::name(&tool)
        );
        self.tools.push(Box::new(tool));
        self
    }

    /// This toolbox with every tool of `other` added after its own.
    ///
    /// ```
    /// use slateflow::agent::tool::{self, Toolbox};
    ///
    /// let echo = |name: &'static str| {
    ///     tool::from_fn(name, "Echoes", serde_json::json!({}), |text: String| async move { Ok(text) })
    /// };
    /// let tools = Toolbox::new().with(echo("a")).and(Toolbox::new().with(echo("b")));
    /// assert_eq!(tools.names().collect::<Vec<_>>(), ["a", "b"]);
    /// ```
    ///
    /// # Panics
    /// When both have a tool of one name: the model could not tell them apart.
    #[must_use]
    pub fn and(mut self, other: Toolbox) -> Self {
        for tool in other.tools {
            assert!(
                self.get(tool.name()).is_none(),
                "the toolbox already has a tool named `{}`; give each tool its own name",
                tool.name()
            );
            self.tools.push(tool);
        }
        self
    }

    /// Whether there are no tools.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// The tools' definitions, for a [`ChatRequest`](crate::agent::model::ChatRequest).
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.iter().map(|tool| tool.spec()).collect()
    }

    /// The tools' names, in the order they were added.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tools.iter().map(|tool| tool.name())
    }

    fn get(&self, name: &str) -> Option<&dyn AnyTool> {
        self.tools
            .iter()
            .find(|tool| tool.name() == name)
            .map(|tool| &**tool)
    }

    /// Runs one call and answers it with a tool message: the output, or (with `is_error`) what
    /// went wrong. Its idempotency key is the call's id; an agent calls
    /// [`call_keyed`](Self::call_keyed) with one that holds the thread and step.
    pub async fn call(&self, call: &ToolCall) -> Message {
        self.call_keyed(call, &call.id).await
    }

    /// Whether the tool `name` may be run again after a run stopped during a call of it
    /// ([`Tool::repeatable`]); true for a name no tool has (its call only says so).
    pub fn is_repeatable(&self, name: &str) -> bool {
        self.get(name).is_none_or(AnyTool::repeatable)
    }

    /// Whether a person approves each call of the tool `name` before it runs
    /// ([`Tool::needs_approval`]); false for a name no tool has.
    pub fn needs_approval(&self, name: &str) -> bool {
        self.get(name).is_some_and(AnyTool::needs_approval)
    }

    /// As [`call`](Self::call), with the call's idempotency `key` (see [`Tool::call_keyed`]).
    ///
    /// ```
    /// use serde_json::{Value, json};
    /// use slateflow::NodeError;
    /// use slateflow::agent::message::ToolCall;
    /// use slateflow::agent::tool::{Tool, Toolbox};
    ///
    /// /// Sends a payment once per key, however often it is called.
    /// struct Pay;
    ///
    /// impl Tool for Pay {
    ///     type Args = Value;
    ///     type Output = String;
    ///     fn name(&self) -> &str { "pay" }
    ///     fn description(&self) -> &str { "Pays an invoice" }
    ///     fn parameters(&self) -> Value { json!({"type": "object"}) }
    ///     async fn call(&self, _: Value) -> Result<String, NodeError> {
    ///         Err("pay needs its key".into())
    ///     }
    ///     async fn call_keyed(&self, args: Value, key: &str) -> Result<String, NodeError> {
    ///         // A real tool sends `key` as its payment provider's idempotency key.
    ///         Ok(format!("paid {} (key {key})", args["invoice"]))
    ///     }
    ///     fn repeatable(&self) -> bool { true } // the key makes a second call harmless
    /// }
    ///
    /// let tools = Toolbox::new().with(Pay);
    /// assert!(tools.is_repeatable("pay"));
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let call = ToolCall::new("c1", "pay", r#"{"invoice": 7}"#);
    /// let answer = tools.call_keyed(&call, "refunds-1/3/c1").await;
    /// assert_eq!(answer.content(), "paid 7 (key refunds-1/3/c1)");
    /// # });
    /// ```
    pub async fn call_keyed(&self, call: &ToolCall, key: &str) -> Message {
        match self.get(&call.name) {
            Some(tool) => tool.answer(call, key).await,
            None => Message::tool_error(
                &call.id,
                format!(
                    "there is no tool named `{}`; the tools are: {}",
                    call.name,
                    self.names().collect::<Vec<_>>().join(", ")
                ),
            ),
        }
    }
}

impl fmt::Debug for Toolbox {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_list().entries(self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize)]
    struct Div {
        a: i64,
        b: i64,
    }

    fn divide() -> impl Tool {
        from_fn(
            "divide",
            "a / b",
            json!({"type": "object"}),
            |args: Div| async move {
                if args.b == 0 {
                    return Err("division by zero".into());
                }
                Ok(args.a / args.b)
            },
        )
    }

    fn run<T>(future: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn every_failure_is_a_tool_message_for_the_model() {
        let tools = Toolbox::new().with(divide());
        let cases = [
            (r#"{"a": 6, "b": 3}"#, false, "2"),
            (
                r#"{"a": 6, "b": 0}"#,
                true,
                "the tool `divide` failed: division by zero",
            ),
            (
                r#"{"a": 6}"#,
                true,
                "do not fit its schema at `.`: missing field `b`",
            ),
            (
                r#"{"a": 6, "b": "x"}"#,
                true,
                "do not fit its schema at `b`: invalid type",
            ),
            (r#"{"a": 6, "b": "#, true, "are not valid JSON"),
        ];
        for (arguments, is_error, text) in cases {
            let answer = run(tools.call(&ToolCall::new("c", "divide", arguments)));
            let Message::Tool {
                tool_call_id,
                content,
                is_error: seen,
                ..
            } = &answer
            else {
                panic!("{answer:?}");
            };
            assert_eq!(tool_call_id, "c");
            assert_eq!(*seen, is_error, "{arguments}: {content}");
            assert!(content.contains(text), "{arguments}: {content}");
        }
    }

    #[test]
    #[should_panic(expected = "already has a tool named `divide`")]
    fn two_tools_of_one_name_are_refused() {
        let _ = Toolbox::new().with(divide()).with(divide());
    }
}
