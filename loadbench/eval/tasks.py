"""Agent task files (YAML): a user's goal, an initial environment state, the tools the agent may call
and how success is decided. Validated once, before any request; every error names the file, the
line, the field and the fix.

    tools_module  a Python file (relative to the task file) with one function per tool:
                  ``def get_order(state, order_id): ...`` acts on ``state`` (a JSON object, changed
                  in place) and returns a JSON-able result; an exception it raises is the tool's
                  error, returned to the model. Deterministic, no network.
    state         the initial environment state shared by the tasks (a task may give its own)
    tools         [{name, description, parameters: a JSON schema of the arguments}]
    tasks         [{id, goal, tags, state, gold, facts, predicates, forbidden, reference}]:
      gold        the reference actions [{tool, arguments}] (one path to the goal; any other path
                  reaching the same end state passes)
      predicates  [{path: a.b.c, equals: V} | {path, not_equals: V}] on the end state, checked
                  instead of comparing it with the state the gold actions produce
      facts       strings the final answer must contain (case and spacing ignored)
      forbidden   [{tool, arguments?}] calls that must never be made (arguments: a subset match)
      reference   text for a rubric judge (only for what the checks above cannot decide)

The gold actions are replayed at load time: each must name a tool, pass its schema and run
without error, and the predicates must hold on the state they produce, so a task that cannot be
passed is an error here, not a 0 in the scorecard.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import Field, model_validator

from loadbench.config.validation import StrictModel, invalid
from loadbench.errors import ConfigError
from loadbench.eval.criteria import normalize, schema_errors
from loadbench.eval.dataset import Case, Dataset, read_text
from loadbench.eval.yamlfile import parse_model, yaml_line
from loadbench.protocol.dialect import Tool

ToolFunction = Callable[..., Any]
State = dict[str, Any]


class _ToolModel(StrictModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    @model_validator(mode="after")
    def _object(self) -> _ToolModel:
        if self.parameters.get("type") != "object":
            raise invalid("a tool's parameters must be a JSON schema of type object",
                          "write parameters: {type: object, properties: {...}, required: [...]}", "parameters")
        return self


class _ActionModel(StrictModel):
    tool: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)


class _PredicateModel(StrictModel):
    path: str = Field(min_length=1)
    equals: Any = None
    not_equals: Any = None

    @model_validator(mode="after")
    def _one(self) -> _PredicateModel:
        if ("equals" in self.model_fields_set) == ("not_equals" in self.model_fields_set):
            raise invalid("a predicate needs exactly one of equals / not_equals",
                          "e.g. {path: orders.A100.status, equals: refunded}", "path")
        return self


class _ForbiddenModel(StrictModel):
    tool: str = Field(min_length=1)
    arguments: dict[str, Any] | None = None


class _TaskModel(StrictModel):
    id: str = Field(min_length=1)
    goal: str = Field(min_length=1)
    tags: list[str] = Field(default_factory=list)
    state: dict[str, Any] | None = None
    gold: list[_ActionModel] = Field(default_factory=list)
    facts: list[str] = Field(default_factory=list)
    predicates: list[_PredicateModel] = Field(default_factory=list)
    forbidden: list[_ForbiddenModel] = Field(default_factory=list)
    reference: str | None = None


class _TaskFileModel(StrictModel):
    tools_module: str = Field(min_length=1)
    system: str | None = None
    state: dict[str, Any] = Field(default_factory=dict)
    tools: list[_ToolModel] = Field(min_length=1)
    tasks: list[_TaskModel] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class Action:
    tool: str
    arguments: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"tool": self.tool, "arguments": dict(self.arguments)}


@dataclass(frozen=True, slots=True)
class Predicate:
    path: str
    value: Any
    equal: bool  # True: the field must equal ``value``; False: it must not

    def holds(self, state: State) -> bool:
        found, value = lookup(state, self.path)
        return (found and value == self.value) if self.equal else not (found and value == self.value)

    def describe(self) -> str:
        return f"{self.path} {'==' if self.equal else '!='} {orjson.dumps(self.value).decode()}"


@dataclass(frozen=True, slots=True)
class Forbidden:
    tool: str
    arguments: Mapping[str, Any] | None

    def matches(self, action: Action) -> bool:
        if action.tool != self.tool:
            return False
        return self.arguments is None or all(action.arguments.get(k) == v for k, v in self.arguments.items())


@dataclass(frozen=True, slots=True)
class Toolbox:
    """The tools of one task file: their schemas (what the model sees) and implementations."""

    specs: tuple[Tool, ...]
    functions: Mapping[str, ToolFunction]

    def spec(self, name: str) -> Tool | None:
        return next((t for t in self.specs if t.name == name), None)


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    goal: str
    system: str | None
    tags: tuple[str, ...]
    state: State  # the initial state (never changed: every trial starts from a copy)
    gold: tuple[Action, ...]
    facts: tuple[str, ...]
    predicates: tuple[Predicate, ...]
    forbidden: tuple[Forbidden, ...]
    reference: str | None
    gold_state: State  # the state the gold actions produce from ``state``
    toolbox: Toolbox
    source: str  # "file:line"

    def fresh_state(self) -> State:
        return copy_state(self.state)

    def case(self) -> Case:
        """The task as an eval case: the goal is its user message (selection, weights and the judge
        work on cases)."""
        return Case(id=self.id, kind="representative", tags=self.tags, messages=(("user", self.goal),), prompt=None,
                    reference=self.reference, source=self.source)


@dataclass(frozen=True, slots=True)
class TaskFile:
    path: str
    tasks: tuple[Task, ...]
    sha256: str

    def dataset(self) -> Dataset:
        return Dataset(self.path, tuple(t.case() for t in self.tasks), self.sha256)


def copy_state(state: State) -> State:
    """A deep copy through JSON: a tool can change it without touching the original."""
    copied = orjson.loads(orjson.dumps(state))
    assert isinstance(copied, dict)
    return copied


def canonical(state: object) -> bytes:
    return orjson.dumps(state, option=orjson.OPT_SORT_KEYS)


def lookup(state: object, path: str) -> tuple[bool, Any]:
    """(found, value) of a dotted path (``orders.A100.status``; a list index is a number)."""
    node = state
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def contains_fact(answer: str, fact: str) -> bool:
    return normalize(fact) in normalize(answer)


def check_arguments(tool: Tool, arguments: object) -> list[str]:
    """Why ``arguments`` do not fit the tool's schema (empty: they fit)."""
    if not isinstance(arguments, dict):
        return ["$: the arguments must be a JSON object"]
    return schema_errors(arguments, dict(tool.parameters))


def call_tool(toolbox: Toolbox, state: State, action: Action) -> Any:
    """Run one validated call on ``state``; the tool's own exception propagates (its error)."""
    return toolbox.functions[action.tool](state, **action.arguments)


def _load_module(path: Path, where: str) -> Mapping[str, Any]:
    if not path.is_file():
        raise ConfigError(where, "tools_module", f"{path.name} not found next to the task file",
                          "name a Python file relative to the task file")
    name = "loadbench_tools_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the module is the user's code: any error in it is a config error
        raise ConfigError(where, "tools_module", f"{path.name} failed to import: {type(exc).__name__}: {exc}",
                          "fix the module") from None
    return vars(module)


def _error(where: str, text: str, field: str, problem: str, fix: str) -> ConfigError:
    line = yaml_line(text, field)
    return ConfigError(where, f"line {line}: {field}" if line else field, problem, fix)


def _toolbox(model: _TaskFileModel, base: Path, where: str, text: str) -> Toolbox:
    namespace = _load_module(base / model.tools_module, where)
    functions: dict[str, ToolFunction] = {}
    seen: set[str] = set()
    for i, t in enumerate(model.tools):
        if t.name in seen:
            raise _error(where, text, f"tools[{i}].name", f"duplicate tool {t.name!r}", "give each tool its own name")
        seen.add(t.name)
        fn = namespace.get(t.name)
        if not callable(fn):
            raise _error(where, text, f"tools[{i}].name", f"{model.tools_module} has no function {t.name!r}",
                         f"define def {t.name}(state, ...) in {model.tools_module}")
        functions[t.name] = fn
    return Toolbox(tuple(Tool(t.name, t.description, t.parameters) for t in model.tools), functions)


def _replay(toolbox: Toolbox, state: State, gold: Sequence[Action], where: str, text: str, at: str) -> State:
    state = copy_state(state)
    for j, action in enumerate(gold):
        field = f"{at}.gold[{j}]"
        spec = toolbox.spec(action.tool)
        if spec is None:
            raise _error(where, text, f"{field}.tool", f"{action.tool!r} is not a tool of this file",
                         "one of " + ", ".join(t.name for t in toolbox.specs))
        problems = check_arguments(spec, dict(action.arguments))
        if problems:
            raise _error(where, text, f"{field}.arguments", "; ".join(problems),
                         f"give arguments that fit the schema of {action.tool!r}")
        try:
            call_tool(toolbox, state, action)
        except Exception as exc:  # the gold path must run: a failing gold action makes the task unpassable
            raise _error(where, text, field, f"the gold action fails: {type(exc).__name__}: {exc}",
                         "fix the action or the initial state") from None
    return state


def _task(t: _TaskModel, i: int, model: _TaskFileModel, toolbox: Toolbox, where: str, text: str) -> Task:
    at = f"tasks[{i}]"
    state = t.state if t.state is not None else model.state
    gold = tuple(Action(a.tool, a.arguments) for a in t.gold)
    gold_state = _replay(toolbox, state, gold, where, text, at)
    predicates = tuple(Predicate(p.path, p.equals if "equals" in p.model_fields_set else p.not_equals,
                                 "equals" in p.model_fields_set) for p in t.predicates)
    for j, p in enumerate(predicates):
        if not p.holds(gold_state):
            raise _error(where, text, f"{at}.predicates[{j}]", f"{p.describe()} does not hold after the gold actions",
                         "fix the predicate or the gold actions")
    forbidden = tuple(Forbidden(f.tool, f.arguments) for f in t.forbidden)
    for j, f in enumerate(forbidden):
        if toolbox.spec(f.tool) is None:
            raise _error(where, text, f"{at}.forbidden[{j}].tool", f"{f.tool!r} is not a tool of this file",
                         "one of " + ", ".join(s.name for s in toolbox.specs))
        if any(f.matches(a) for a in gold):
            raise _error(where, text, f"{at}.forbidden[{j}]", "a gold action makes this forbidden call",
                         "remove the call from gold or from forbidden")
    changes = canonical(gold_state) != canonical(copy_state(state))
    if not (t.facts or predicates or changes):
        raise _error(where, text, f"{at}.facts", "nothing decides this task: no facts, no predicates and the gold "
                     "actions change no state", "add the facts the answer must contain, or predicates")
    line = yaml_line(text, at)
    return Task(id=t.id, goal=t.goal, system=model.system, tags=tuple(t.tags), state=copy_state(state), gold=gold,
                facts=tuple(t.facts), predicates=predicates, forbidden=forbidden, reference=t.reference,
                gold_state=gold_state, toolbox=toolbox, source=f"{where}:{line}")


def parse_tasks(text: str, path: Path) -> TaskFile:
    where = str(path)
    _, model = parse_model(_TaskFileModel, text, where)
    toolbox = _toolbox(model, path.parent, where, text)
    tasks: list[Task] = []
    seen: set[str] = set()
    for i, t in enumerate(model.tasks):
        if t.id in seen:
            raise _error(where, text, f"tasks[{i}].id", f"duplicate task id {t.id!r}", "give each task its own id")
        seen.add(t.id)
        tasks.append(_task(t, i, model, toolbox, where, text))
    return TaskFile(where, tuple(tasks), hashlib.sha256(text.encode()).hexdigest())


def load_tasks(path: Path) -> TaskFile:
    return parse_tasks(read_text(path, "task file", "check the path (relative to the suite)"), path)


def mock_plans(tasks: Sequence[Task]) -> list[dict[str, Any]]:
    """What ``loadbench mock --agent`` needs of each task to play it: the goal it is recognised by, the
    gold actions, the facts, and the tools it may call (for its mistakes)."""
    return [{"id": t.id, "goal": t.goal, "gold": [a.to_json() for a in t.gold], "facts": list(t.facts),
             "tools": [{"name": s.name, "parameters": dict(s.parameters)} for s in t.toolbox.specs]}
            for t in tasks]
