"""The programs a service hosts: each graph with how the user's text enters it and where its reply is read.

LangGraph programs come in three shapes, and Parley hosts each through an adapter:

- **a state with a ``messages`` key** (``MessagesAdapter``): the user's message is appended as a
  ``HumanMessage`` whose id is the Parley message id (``add_messages`` replaces by id, so feeding it twice
  cannot append it twice); the reply is the last AI message after it.
- **a Functional API ``@entrypoint``** (``FunctionalAdapter``): it is called with
  ``{"messages": [HumanMessage]}`` — the new message only; ``previous`` carries the conversation — and the
  reply is read from what it returns: a ``messages`` list, a message, or a plain string.
- **any other state** (``MappedAdapter``): through the mapping its author gives next to the graph
  (``parley.hosting.host(graph, input=…, reply=…)``); without one the graph is refused at start-up.

A mapping may also reshape the input or the reply of the first two.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.pregel import Pregel
from langgraph.types import StateSnapshot

from parley.core.checkpoint_tags import CHECKPOINT_TAG
from parley.core.errors import InvalidInput
from parley.core.records import MessageRecord

InputFn = Callable[[str], Any]
"""The user's text → the graph's input (a state update, or an entrypoint's argument)."""
ReplyFn = Callable[[Any], "str | None"]
"""The graph's values (an entrypoint's return value) → the reply text; None: no reply."""

ProgramKind = Literal["graph", "functional"]
InputKind = Literal["messages", "mapped"]


@dataclass(frozen=True, slots=True)
class Hosted:
    """A graph with what Parley needs to host it; made by ``parley.hosting.host``."""

    graph: Any
    input: str | InputFn | None = None
    reply: str | ReplyFn | None = None
    interrupts: tuple[str, ...] | None = None
    description: str = ""


def reply_of(messages: Sequence[BaseMessage], *, message_id: str) -> str | None:
    """The turn's reply: the last AI message after the user's message (found by its id).

    A graph that answered nothing has no reply. If the user's message is no longer in the state (a
    graph that rewrote its history), the last AI message stands.
    """
    start = 0
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], HumanMessage) and messages[index].id == message_id:
            start = index + 1
            break
    for message in reversed(messages[start:]):
        if isinstance(message, AIMessage):
            text = str(message.text)
            return text if text or not message.tool_calls else None
    return None


def text_of(value: Any, *, message_id: str) -> str | None:
    """The reply a value holds: a string, a message, a list of messages, or a dict with ``messages``."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, BaseMessage):
        return reply_of([value], message_id=message_id)
    if isinstance(value, Mapping):
        return text_of(value.get("messages"), message_id=message_id)
    if isinstance(value, Sequence) and all(isinstance(m, BaseMessage) for m in value):
        return reply_of(list(value), message_id=message_id)
    return None


class Adapter(Protocol):
    """How one program takes the user's text and gives its reply."""

    @property
    def input_kind(self) -> InputKind:
        """How the user's text reaches the graph, as ``GET /v1/graphs`` says."""
        ...

    def to_input(self, message: MessageRecord) -> Any:
        """The graph input of a chat message."""
        ...

    def reply(self, values: Any, *, message_id: str) -> str | None:
        """The reply the graph's values (its return value, for an entrypoint) hold."""
        ...

    def input_applied(self, message: MessageRecord, snapshot: StateSnapshot) -> bool:
        """Whether ``snapshot`` (tagged with ``message``) shows the graph has taken the message in: its
        turn had started, and goes on from there rather than being fed the input again."""
        ...


def _human(message: MessageRecord) -> HumanMessage:
    return HumanMessage(content=message.content or "", id=message.message_id)


def _mapped_input(mapping: str | InputFn, text: str) -> Any:
    return {mapping: text} if isinstance(mapping, str) else mapping(text)


def _mapped_reply(mapping: str | ReplyFn, values: Any, message_id: str) -> str | None:
    if isinstance(mapping, str):
        found = values.get(mapping) if isinstance(values, Mapping) else None
        if found is None or isinstance(found, str):
            return found
        return text_of(found, message_id=message_id) or str(found)
    return mapping(values)


def _past_input(snapshot: StateSnapshot) -> bool:
    """Whether a step has run since the turn's input checkpoint (``source: input``), which holds the input
    unread: from the first step on, the state holds it."""
    return (snapshot.metadata or {}).get("source") != "input"


@dataclass(frozen=True, slots=True)
class _Reshapable:
    """An adapter with a default input (the message in ``messages``) and reply, either of which its author's
    mapping may replace."""

    input: str | InputFn | None = None
    reply_from: str | ReplyFn | None = None

    @property
    def input_kind(self) -> InputKind:
        return "messages" if self.input is None else "mapped"

    def to_input(self, message: MessageRecord) -> Any:
        if self.input is not None:
            return _mapped_input(self.input, message.content or "")
        return {"messages": [_human(message)]}

    def reply(self, values: Any, *, message_id: str) -> str | None:
        if self.reply_from is not None:
            return _mapped_reply(self.reply_from, values, message_id)
        return self._default_reply(values, message_id)

    def _default_reply(self, values: Any, message_id: str) -> str | None:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class MessagesAdapter(_Reshapable):
    """A state with ``messages``: the message appended by id, the reply the last AI message after it."""

    def _default_reply(self, values: Any, message_id: str) -> str | None:
        messages = values.get("messages") if isinstance(values, Mapping) else None
        return reply_of(messages or [], message_id=message_id)

    def input_applied(self, message: MessageRecord, snapshot: StateSnapshot) -> bool:
        if self.input is not None:
            return _past_input(snapshot)
        # A crash between writing the turn's first checkpoint and writing its input leaves a checkpoint
        # tagged with the message but without the message in it (found by the chaos test).
        values = snapshot.values
        messages = values.get("messages") if isinstance(values, Mapping) else None
        return any(getattr(m, "id", None) == message.message_id for m in messages or ())


@dataclass(frozen=True, slots=True)
class MappedAdapter:
    """Any other state, through its author's mapping."""

    input: str | InputFn
    reply_from: str | ReplyFn

    @property
    def input_kind(self) -> InputKind:
        return "mapped"

    def to_input(self, message: MessageRecord) -> Any:
        return _mapped_input(self.input, message.content or "")

    def reply(self, values: Any, *, message_id: str) -> str | None:
        return _mapped_reply(self.reply_from, values, message_id)

    def input_applied(self, message: MessageRecord, snapshot: StateSnapshot) -> bool:
        # Once a step has applied the input, feeding it again could apply it twice: no reducer dedupes a
        # custom key (``operator.add`` appends again).
        return _past_input(snapshot)


@dataclass(frozen=True, slots=True)
class FunctionalAdapter(_Reshapable):
    """A Functional API entrypoint: called with the new message, its reply read off its return value."""

    def _default_reply(self, values: Any, message_id: str) -> str | None:
        return text_of(values, message_id=message_id)

    def input_applied(self, message: MessageRecord, snapshot: StateSnapshot) -> bool:
        # An entrypoint runs as one step: while it runs, its checkpoint is the input checkpoint, and
        # the results of its finished @tasks are that checkpoint's pending writes. Going on from it
        # replays them (a @task that finished never runs again); feeding the input again would not.
        return (snapshot.metadata or {}).get(CHECKPOINT_TAG) == message.message_id


@dataclass(frozen=True, slots=True)
class Program:
    """One hosted graph, compiled with Parley's checkpointer."""

    name: str
    reference: str
    graph: Pregel[Any, Any, Any, Any]
    adapter: Adapter
    kind: ProgramKind
    interrupts: tuple[str, ...] | None = None
    """The interrupt kinds its author declared (None: not declared — any may come)."""
    description: str = ""
    has_subgraphs: bool = False
    """Whether LangGraph finds subgraphs in it: only then are its turns streamed with ``subgraphs=True``
    (which costs a turn about 0.2 ms, 5 % of a one-node graph's run, measured in-process)."""

    def breakpoints(
        self, before: Sequence[str], after: Sequence[str]
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The static breakpoints (``PARLEY_INTERRUPT_BEFORE`` / ``_AFTER``, which name nodes of any graph)
        that name nodes of this one."""
        nodes = self.graph.nodes
        return tuple(n for n in before if n in nodes), tuple(n for n in after if n in nodes)


@dataclass(frozen=True)
class ProgramSet:
    """The programs of a service, in the order configured: the first is the default."""

    programs: tuple[Program, ...]
    _by_name: dict[str, Program] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.programs:
            raise ValueError("a service hosts at least one graph")
        object.__setattr__(self, "_by_name", {p.name: p for p in self.programs})

    @property
    def default(self) -> Program:
        return self.programs[0]

    def __iter__(self) -> Iterator[Program]:
        return iter(self.programs)

    def __len__(self) -> int:
        return len(self.programs)

    def names(self) -> list[str]:
        return [p.name for p in self.programs]

    def find(self, name: str | None) -> Program | None:
        """The program ``name`` names (the default for None), or None if this service hosts no such graph."""
        return self.default if name is None else self._by_name.get(name)

    def named(self, name: str | None, *, loc: list[str | int]) -> Program:
        """The program a request names; ``InvalidInput`` at ``loc`` if there is none of that name."""
        program = self.find(name)
        if program is None:
            raise InvalidInput(
                f"No graph {name!r} here; this service hosts {', '.join(map(repr, self.names()))}.",
                loc=loc,
            )
        return program

    def by_reference(self, reference: str) -> Program | None:
        """The program loaded from ``reference`` (export documents before graph names carried it)."""
        return next((p for p in self.programs if p.reference == reference), None)
