"""LangGraph's prebuilt ReAct agent on a fake model that answers at once: the peer of
`benches/agent.rs`. Times one turn (an invoke) at 10, 100, 1,000 and 10,000 messages of history,
with and without one tool call, each on a fresh copy of the history (not timed); prints
`[[length, turn_us, turn_with_a_tool_call_us], ...]` as JSON, medians of many turns.

Run by `cargo bench -p slateflow --bench agent` when `pip install langgraph` has been done."""

import copy
import json
import statistics
import time
import warnings

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.prebuilt import create_react_agent


class AtOnce(BaseChatModel):
    """Answers at once; with `call`, calls the tool once first."""

    call: bool = False

    @property
    def _llm_type(self) -> str:
        return "at-once"

    def bind_tools(self, tools, **kwargs):
        return self

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        answered = isinstance(messages[-1], ToolMessage)
        if self.call and not answered:
            reply = AIMessage(content="", tool_calls=[{"name": "noop", "args": {}, "id": "c"}])
        else:
            reply = AIMessage(content="ok")
        return ChatResult(generations=[ChatGeneration(message=reply)])


@tool
def noop() -> str:
    """Does nothing."""
    return "done"


def history(length):
    return [
        HumanMessage(content=f"question {i}", id=f"h{i}") if i % 2 == 0
        else AIMessage(content=f"answer {i}", id=f"a{i}")
        for i in range(length)
    ] + [HumanMessage(content="and now?", id="q")]


def turn(agent, messages, samples):
    times = []
    for _ in range(samples):
        state = {"messages": copy.copy(messages)}
        start = time.perf_counter()
        out = agent.invoke(state)
        times.append(time.perf_counter() - start)
        assert out["messages"][-1].content == "ok"
    return statistics.median(times) * 1e6


def main():
    # `create_react_agent` is deprecated in LangGraph 1.x (for `langchain.agents.create_agent`) but
    # is still the prebuilt ReAct agent the comparison names.
    warnings.simplefilter("ignore")
    plain = create_react_agent(AtOnce(), [noop])
    calling = create_react_agent(AtOnce(call=True), [noop])
    rows = []
    for length in (10, 100, 1_000, 10_000):
        messages = history(length)
        samples = 51 if length < 10_000 else 15
        rows.append([length, turn(plain, messages, samples), turn(calling, messages, samples)])
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
