"""YAML spec loading with line numbers: text -> validated Workflow or EngineConfig, or one SpecError.

Only PyYAML's safe loader is used, with limits on size, nesting and node count. The node tree is
composed once, indexed by spec path so every pydantic or graph problem points at its YAML line,
then constructed into plain Python data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml
from pydantic import BaseModel, ValidationError

from erp_agents.exceptions import SpecError, SpecProblem
from erp_agents.spec.graph import GraphError, build_graph
from erp_agents.spec.models import EngineConfig, Workflow

PROMPT_PATH_ENV = "ERP_AGENTS_PROMPT_PATH"
PROJECT_PROMPTS = Path(__file__).resolve().parents[3] / "include" / "erp" / "prompts"
# Pure-Python PyYAML reads about a megabyte or ten thousand nodes a second; these bound any spec.
MAX_SPEC_BYTES = 1_000_000
MAX_LINES = 20_000  # every line break costs microseconds, even on blank lines
MAX_YAML_NODES = 5_000  # nodes written in the text; the largest example spec has 417
MAX_NODES = 200_000  # nodes once aliases are expanded
MAX_DEPTH = 50  # PyYAML composes recursively: deeper nesting would end in RecursionError
MAX_INT_CHARS = 100  # int() is quadratic on sexagesimal literals and refuses more than 4300 digits
INT_TAG = "tag:yaml.org,2002:int"
KEY_TAGS = ("tag:yaml.org,2002:str", "tag:yaml.org,2002:merge", "tag:yaml.org,2002:value")
KINDS: dict[str, type[BaseModel]] = {"Workflow": Workflow, "EngineConfig": EngineConfig}
SpecPath = tuple[str | int, ...]


@dataclass(frozen=True)
class LocatedDocument:
    """Constructed YAML data plus the (line, column) of every key and item, both 1-based."""

    file: str
    data: Any
    marks: dict[SpecPath, tuple[int, int]]

    def locate(self, path: SpecPath) -> tuple[int, int]:
        for end in range(len(path), -1, -1):
            if (found := self.marks.get(path[:end])) is not None:
                return found
        return (1, 1)

    def problem(self, path: SpecPath, message: str) -> SpecProblem:
        line, column = self.locate(path)
        return SpecProblem(self.file, line, column, format_path(path), message)


def format_path(path: SpecPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _BadScalar(Exception):
    """A scalar the safe constructor cannot, or should not, turn into Python data."""

    def __init__(self, node: yaml.Node, message: str) -> None:
        super().__init__(message)
        self.node = node


class _SpecLoader(yaml.SafeLoader):
    """The safe loader plus the limits PyYAML lacks. Sizes are counted while composing, so an alias
    bomb is refused after reading its few lines instead of after walking 200000 nodes."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.depth = 0
        self.sizes: dict[int, int] = {}  # node id -> node count with aliases expanded

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.depth >= MAX_DEPTH or len(self.sizes) >= MAX_YAML_NODES:
            problem = (f"nesting deeper than {MAX_DEPTH} levels" if self.depth >= MAX_DEPTH
                       else f"document has more than {MAX_YAML_NODES} nodes")
            raise yaml.composer.ComposerError(None, None, problem, self.peek_event().start_mark)
        self.depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        if id(node) not in self.sizes:  # an alias repeats a counted node; a recursive one counts 0
            kids = (node.value if isinstance(node, yaml.SequenceNode)
                    else [c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode) else [])
            size = self.sizes[id(node)] = 1 + sum(self.sizes.get(id(c), 0) for c in kids)
            if size > MAX_NODES:
                problem = f"document expands to more than {MAX_NODES} nodes (alias bomb?)"
                raise yaml.composer.ComposerError(None, None, problem, node.start_mark)
        return node

    def fetch_flow_collection_start(self, token_class: type) -> None:
        """Also checked while scanning: each '[' or '{' still open on a line slows every later token."""
        if self.flow_level >= MAX_DEPTH:
            raise yaml.scanner.ScannerError(None, None, f"nesting deeper than {MAX_DEPTH} levels", self.get_mark())
        super().fetch_flow_collection_start(token_class)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            return super().construct_object(node, deep)
        if node.tag == INT_TAG and len(node.value) > MAX_INT_CHARS:
            raise _BadScalar(node, f"integer longer than {MAX_INT_CHARS} characters")
        try:
            return super().construct_object(node, deep)
        except (ValueError, KeyError, IndexError, AttributeError) as exc:
            # SafeConstructor's scalar constructors trust the resolver's patterns: impossible dates
            # (2026-02-30) and explicit tags on other text (!!int '', !!bool abc) raise these.
            tag = node.tag.rsplit(":", 1)[-1]
            raise _BadScalar(node, f"{node.value[:50]!r} is not a valid {tag}: {exc}") from None


def _index(file: str, root: yaml.Node, where: dict[int, SpecPath]) -> dict[SpecPath, tuple[int, int]]:
    """Map every spec path to its YAML position, and each node to its first path. Refuse duplicate
    and non-string keys, recursive aliases, and aliases nesting deeper than MAX_DEPTH."""
    marks: dict[SpecPath, tuple[int, int]] = {(): _mark(root)}
    open_nodes: set[int] = set()

    def refuse(node: yaml.Node, path: SpecPath, message: str) -> NoReturn:
        raise SpecError([SpecProblem(file, *_mark(node), format_path(path), message)])

    def walk(node: yaml.Node, path: SpecPath) -> None:
        if id(node) in open_nodes:
            refuse(node, path, "recursive alias: this node contains itself")
        if len(path) > MAX_DEPTH:
            refuse(node, path[:MAX_DEPTH], f"aliases nest deeper than {MAX_DEPTH} levels")
        where.setdefault(id(node), path)
        open_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in KEY_TAGS:
                    refuse(key_node, path, "keys must be strings; quote keys such as 1, null or yes")
                child = path + (key_node.value,)
                if child in marks:
                    refuse(key_node, child, "duplicate key")
                marks[child] = _mark(key_node)
                walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                marks[path + (i,)] = _mark(item)
                walk(item, path + (i,))
        open_nodes.discard(id(node))

    walk(root, ())
    return marks


def parse_yaml(text: str, file: str) -> LocatedDocument:
    """Parse one YAML document safely, keeping positions; YAML errors become SpecError."""
    if len(text.encode("utf-8", "replace")) > MAX_SPEC_BYTES:
        raise SpecError([SpecProblem(file, 1, 1, "", f"spec is larger than {MAX_SPEC_BYTES} bytes")])
    if len(text.splitlines()) > MAX_LINES:
        raise SpecError([SpecProblem(file, MAX_LINES + 1, 1, "", f"spec has more than {MAX_LINES} lines")])
    where: dict[int, SpecPath] = {}
    loader = None
    try:
        loader = _SpecLoader(text)  # the reader refuses unprintable characters right here
        root = loader.get_single_node()
        if root is None:
            raise SpecError([SpecProblem(file, 1, 1, "", "empty document")])
        marks = _index(file, root, where)
        data = loader.construct_document(root)
    except _BadScalar as exc:
        field = format_path(where.get(id(exc.node), ()))
        raise SpecError([SpecProblem(file, *_mark(exc.node), field, f"invalid YAML: {exc}")]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise SpecError([SpecProblem(file, line, column, "", f"invalid YAML: {exc.problem or exc}")]) from None
    except yaml.reader.ReaderError as exc:  # not a MarkedYAMLError: it has a character position only
        before = text[: exc.position]
        raise SpecError([SpecProblem(file, before.count("\n") + 1, len(before) - before.rfind("\n"), "",
                                     f"invalid YAML: unacceptable character #x{exc.character:04x}")]) from None
    except yaml.YAMLError as exc:
        raise SpecError([SpecProblem(file, 1, 1, "", f"invalid YAML: {exc}")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    return LocatedDocument(file, data, marks)


def _data_path(data: Any, loc: tuple[Any, ...], missing: bool) -> SpecPath:
    """Drop pydantic's union tags from an error location, keeping only steps present in the data."""
    path: list[str | int] = []
    for step in loc:
        if isinstance(data, dict) and step in data:
            data = data[step]
            path.append(step)
        elif isinstance(data, list) and isinstance(step, int) and 0 <= step < len(data):
            data = data[step]
            path.append(step)
        elif missing and isinstance(data, dict) and step == loc[-1]:
            path.append(step)  # a missing required field: name it at its parent's line
    return tuple(path)


def prompt_search_path(spec_file: str) -> list[Path]:
    """Where ``prompt_file`` is looked up: next to the spec, then $ERP_AGENTS_PROMPT_PATH, then include/erp/prompts."""
    extra = [Path(p) for p in os.environ.get(PROMPT_PATH_ENV, "").split(os.pathsep) if p]
    return [Path(spec_file).parent, *extra, PROJECT_PROMPTS]


def _read_prompt(name: str, search: list[Path]) -> str:
    for folder in search:
        candidate = folder / name
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8")
    raise OSError(f"{name!r} not found in " + ", ".join(str(f) for f in search))


def _inline_prompt_files(doc: LocatedDocument) -> None:
    """``prompt_file`` becomes the agent's prompt_template (the name is kept for the record)."""
    agents = doc.data.get("agents") if doc.data.get("kind") == "Workflow" else None
    if not isinstance(agents, list):
        return
    search = prompt_search_path(doc.file)
    for i, agent in enumerate(agents):
        if not isinstance(agent, dict) or not isinstance(agent.get("prompt_file"), str):
            continue
        path = ("agents", i, "prompt_file")
        if "prompt_template" in agent:
            raise SpecError([doc.problem(path, "give prompt_template or prompt_file, not both")])
        name = Path(agent["prompt_file"])
        if name.is_absolute() or ".." in name.parts:
            # A prompt is sent to the model: only files inside the prompt folders may become one.
            raise SpecError([doc.problem(path, "prompt_file must be a relative path without '..'")])
        try:
            agent["prompt_template"] = _read_prompt(agent["prompt_file"], search)
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError([doc.problem(path, f"cannot read prompt file: {exc}")]) from None


def validate_document(doc: LocatedDocument) -> Workflow | EngineConfig:
    """Validate located data as a Workflow or EngineConfig; every problem names file, line, field."""
    data = doc.data
    if not isinstance(data, dict):
        raise SpecError([doc.problem((), f"a spec must be a mapping, got {type(data).__name__}")])
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:  # a list or mapping is not hashable
        raise SpecError([doc.problem(("kind",), f"kind must be one of {', '.join(KINDS)}; got {kind!r}")])
    _inline_prompt_files(doc)
    try:
        model = KINDS[kind].model_validate(data)
    except ValidationError as exc:
        raise SpecError(_problems_from(doc, exc)) from None
    if isinstance(model, Workflow):
        try:
            build_graph(model)
        except GraphError as exc:
            raise SpecError([doc.problem(p.path, p.message) for p in exc.problems]) from None
    return model  # type: ignore[return-value]


def _problems_from(doc: LocatedDocument, exc: ValidationError) -> list[SpecProblem]:
    """One problem per real mistake: errors of union branches and of containers whose items
    already failed are noise, so an error is dropped when another one lies strictly below it."""
    located: list[tuple[SpecPath, str]] = []
    for err in exc.errors(include_url=False):
        path = _data_path(doc.data, err["loc"], missing=err["type"] == "missing")
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        located.append((path, message))
    above = {p[:end] for p, _ in located for end in range(len(p))}  # linear: errors can be thousands
    kept = [(p, m) for p, m in located if p not in above]
    return list(dict.fromkeys(doc.problem(p, m) for p, m in kept))


def load_spec_text(text: str, file: str) -> Workflow | EngineConfig:
    return validate_document(parse_yaml(text, file))


def load_spec_file(path: str | Path) -> Workflow | EngineConfig:
    """Load one spec file; unreadable files are SpecErrors too."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([SpecProblem(file, 1, 1, "", f"cannot read spec: {exc}")]) from None
    return load_spec_text(text, file)
