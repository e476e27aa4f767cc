"""YAML text -> plain data plus the line and column of every spec path, under hard limits.

Only safe-load features are used, with limits on size, nesting and node count. The YAML events come
from libyaml (PyYAML's C parser) when PyYAML was built with it, else from PyYAML's pure-Python
parser. Every limit is enforced while the events are read, so hostile text is refused after
reading no more of it than it takes to see the problem.

Two ways lead to the result. A document without anchors and with the usual tags only (the common
case) goes straight from the events to data and marks (_load_plain). Any other document, and any
document when libyaml is missing, goes the long way (_load_nodes): a node tree, its index, then
PyYAML's safe constructor. Both give the same data, marks and errors.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

import yaml
from yaml.composer import ComposerError
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from erp_agents.exceptions import SpecError, SpecProblem

# libyaml's event parser. PyYAML has it, and CSafeLoader, only when it was built with libyaml.
_CParser: Any = None
if getattr(yaml, "__with_libyaml__", False):
    _CParser = yaml.cyaml.CParser  # type: ignore[attr-defined]

# The limits bound the time any text can take before it is refused. Measured costs: libyaml parses
# about 1 microsecond an event and the composer below adds about 1.5 a node; PyYAML's pure-Python
# parser, the fallback, takes 20 to 30 microseconds a node (flow lists being the slowest). A 500-agent
# spec of the parse benchmark (bench/parse.py) loads in 0.06 s with libyaml and 0.5 s without. Its
# agents take about 735 bytes, 26 lines and 31 nodes each, so the byte limit, the binding one,
# admits about 1,350 of them.
MAX_SPEC_BYTES = 1_000_000
MAX_LINES = 40_000  # 1,350 benchmark agents need 35,000; a line break costs microseconds, even on blank lines
# Nodes and aliases written in the text: 1,000 benchmark agents have 31,300 (the largest example
# spec has 417). The composer refuses the next one at once, so this caps the parse of any text:
# with libyaml 50,000 nodes are read and refused in about 0.1 s, with the pure-Python parser in
# about 1.2 s, as long as that parser takes to load a 1,000-agent spec.
MAX_YAML_NODES = 50_000
# Nodes once aliases are expanded. Expansion is what explodes in an alias bomb (aliases share
# nodes, so composing one is cheap): the composer sums each node's expanded size from its
# children's, memoized per anchored node, and refuses as soon as a collection exceeds this. The
# index walk, the constructor and pydantic then see at most this many.
MAX_NODES = 200_000
MAX_DEPTH = 50  # the index walk below recurses once per level; real specs nest fewer than 10 levels
MAX_INT_CHARS = 100  # int() is quadratic on sexagesimal literals and refuses more than 4300 digits
INT_TAG = "tag:yaml.org,2002:int"
KEY_TAGS = ("tag:yaml.org,2002:str", "tag:yaml.org,2002:merge", "tag:yaml.org,2002:value")
SpecPath = tuple[str | int, ...]
# Parse with libyaml when it is there; tests switch this off to run the pure-Python fallback.
USE_LIBYAML = _CParser is not None
_LIBYAML_DEPTH_PROBLEM = "exceeded maximum nesting depth"  # libyaml's own limit, 1000 levels


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


class _PyParser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
    """PyYAML's pure-Python event parser, for when libyaml is missing."""

    def __init__(self, text: str) -> None:
        yaml.reader.Reader.__init__(self, text)  # refuses unprintable characters right here
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)

    def fetch_flow_collection_start(self, token_class: type) -> None:
        """The Python scanner runs ahead of the composer, and each '[' or '{' still open on a line
        slows every later token: refuse deep flow nesting while scanning."""
        if self.flow_level >= MAX_DEPTH:
            problem = f"nesting deeper than {MAX_DEPTH} levels"
            raise yaml.scanner.ScannerError(None, None, problem, self.get_mark())
        super().fetch_flow_collection_start(token_class)


_RESOLVER = yaml.resolver.Resolver()
_STR_TAG = _RESOLVER.DEFAULT_SCALAR_TAG
_SEQ_TAG = _RESOLVER.DEFAULT_SEQUENCE_TAG
_MAP_TAG = _RESOLVER.DEFAULT_MAPPING_TAG


def _refuse(problem: str, mark: Any) -> NoReturn:
    raise ComposerError(None, None, problem, mark)


def _compose(parser: Any) -> yaml.Node | None:
    """Events -> the single document's node tree, as PyYAML's composer builds it. Iterative, and
    refusing as it goes: nesting deeper than MAX_DEPTH, more than MAX_YAML_NODES nodes, and any
    collection whose size with aliases expanded exceeds MAX_NODES (alias bombs), each after reading
    no more of the text than it takes to see the problem."""
    get = parser.get_event
    get()  # stream start
    if isinstance(event := get(), StreamEndEvent):
        return None
    resolve: Any = _RESOLVER.resolve  # untyped in PyYAML's stubs
    max_depth, max_nodes, max_expanded = MAX_DEPTH, MAX_YAML_NODES, MAX_NODES
    plain_tags: dict[str, str] = {}  # plain scalar -> its resolved tag; keys and values repeat a lot
    anchors: dict[str, yaml.Node] = {}
    anchored_sizes: dict[int, int] = {}  # id of an anchored node -> expanded size, once closed
    # Open collections: [node, expanded size so far, pending mapping key or None, is a mapping, anchor].
    stack: list[list[Any]] = []
    nodes = 0
    while True:
        event = get()
        kind = type(event)
        if kind is SequenceEndEvent or kind is MappingEndEvent:
            node, size, _, _, anchor = stack.pop()
            node.end_mark = event.end_mark
            if anchor is not None:
                anchored_sizes[id(node)] = size
        else:
            # an alias counts as a node too: a text of aliases costs as much to parse
            if len(stack) >= max_depth or nodes >= max_nodes:
                _refuse(f"nesting deeper than {MAX_DEPTH} levels" if len(stack) >= max_depth
                        else f"document has more than {MAX_YAML_NODES} nodes", event.start_mark)
            nodes += 1
            if kind is ScalarEvent:
                tag, value = event.tag, event.value
                if tag is None or tag == "!":
                    if not event.implicit[0]:
                        tag = _STR_TAG
                    elif (tag := plain_tags.get(value)) is None:
                        tag = plain_tags[value] = resolve(ScalarNode, value, (True, False))
                node = ScalarNode(tag, value, event.start_mark, event.end_mark, event.style)
                size = 1
                if (anchor := event.anchor) is not None:
                    _anchor(anchors, anchor, node, event)
                    anchored_sizes[id(node)] = 1
            elif kind is AliasEvent:
                if (node := anchors.get(event.anchor)) is None:
                    _refuse(f"found undefined alias {event.anchor!r}", event.start_mark)
                # 0 while the node is still open: a recursive alias, which _index refuses
                size = anchored_sizes.get(id(node), 0)
            else:
                tag, is_map = event.tag, kind is MappingStartEvent
                if is_map:
                    node = MappingNode(_MAP_TAG if tag is None or tag == "!" else tag, [],
                                       event.start_mark, None, event.flow_style)
                elif kind is SequenceStartEvent:
                    node = SequenceNode(_SEQ_TAG if tag is None or tag == "!" else tag, [],
                                        event.start_mark, None, event.flow_style)
                else:  # pragma: no cover - the parsers emit nothing else inside a document
                    _refuse(f"unexpected {kind.__name__}", event.start_mark)
                if (anchor := event.anchor) is not None:
                    _anchor(anchors, anchor, node, event)
                stack.append([node, 1, None, is_map, anchor])
                continue
        if not stack:
            break
        parent = stack[-1]
        if not parent[3]:
            parent[0].value.append(node)
        elif parent[2] is None:
            parent[2] = node
        else:
            parent[0].value.append((parent[2], node))
            parent[2] = None
        parent[1] += size
        if parent[1] > max_expanded:
            _refuse(f"document expands to more than {MAX_NODES} nodes (alias bomb?)", parent[0].start_mark)
    get()  # document end
    if not isinstance(event := get(), StreamEndEvent):
        raise ComposerError("expected a single document in the stream", node.start_mark,
                            "but found another document", event.start_mark)
    return node  # type: ignore[no-any-return]


def _anchor(anchors: dict[str, yaml.Node], anchor: str, node: yaml.Node, event: Any) -> None:
    if anchor in anchors:
        raise ComposerError(f"found duplicate anchor {anchor!r}; first occurrence",
                            anchors[anchor].start_mark, "second occurrence", event.start_mark)
    anchors[anchor] = node


class _Constructor(yaml.constructor.SafeConstructor):
    """PyYAML's safe constructor, refusing scalars that would be slow or that it cannot handle."""

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


class _NotPlain(Exception):
    """The document has anchors, or tags other than str, int, float, bool, null and timestamp."""


_IMMUTABLE_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("null", "bool", "int", "float", "timestamp"))
Marks = dict[SpecPath, tuple[int, int]]
_NO_KEY = object()  # a mapping waits for its next key


def _load_plain(parser: Any, file: str) -> tuple[Any, Marks] | None:
    """Events -> data and marks directly, for the common document without anchors and with plain
    tags only; else _NotPlain, and the caller starts again with _compose, _index and the safe
    constructor. Without the node tree and its second walk this takes half the time, and it keeps
    their limits, data, marks and errors: parser errors and limits first, then the first structural
    problem (a key that is not a string, a duplicate key) in document order, then the first bad
    scalar in document order."""
    get = parser.get_event
    get()  # stream start
    if isinstance(event := get(), StreamEndEvent):
        return None
    resolve: Any = _RESOLVER.resolve  # untyped in PyYAML's stubs
    construct = _Constructor().construct_object
    max_depth, max_nodes = MAX_DEPTH, MAX_YAML_NODES  # no aliases: the expanded size is the node count
    plain_tags: dict[str, str] = {}
    known: dict[tuple[str, str], Any] = {}  # (tag, text) -> value: ints, floats and such repeat
    marks: Marks = {}
    # Open collections: [container, path, is a mapping, the pending key or _NO_KEY].
    stack: list[list[Any]] = []
    nodes = 0
    bad: tuple[_BadScalar, SpecPath] | None = None  # the first scalar the constructor refused
    while True:
        event = get()
        kind = type(event)
        if kind is SequenceEndEvent or kind is MappingEndEvent:
            value = stack.pop()[0]
        else:
            if len(stack) >= max_depth or nodes >= max_nodes:
                _refuse_limit(len(stack), event)
            nodes += 1
            if kind is AliasEvent or event.anchor is not None:
                raise _NotPlain
            mark = event.start_mark
            parent = stack[-1] if stack else None
            is_key = parent is not None and parent[2] and parent[3] is _NO_KEY
            if kind is ScalarEvent:
                tag, value = event.tag, event.value
                if tag is None or tag == "!":
                    if not event.implicit[0]:
                        tag = _STR_TAG
                    elif (tag := plain_tags.get(value)) is None:
                        tag = plain_tags[value] = resolve(ScalarNode, value, (True, False))
                if tag != _STR_TAG and tag not in _IMMUTABLE_TAGS:
                    raise _NotPlain  # a merge key (<<), a value key (=), !!binary or another tag
                if is_key and parent is not None:
                    if tag != _STR_TAG:  # 1, null, yes...
                        problem = "keys must be strings; quote keys such as 1, null or yes"
                        return _drain(get, file, len(stack), nodes, mark, parent[1], problem)
                    child = parent[1] + (value,)
                    if value in parent[0]:
                        return _drain(get, file, len(stack), nodes, mark, child, "duplicate key")
                    marks[child] = (mark.line + 1, mark.column + 1)
                    parent[3] = value
                    continue
                if tag != _STR_TAG:
                    text = value
                    if (value := known.get((tag, text), known)) is known:
                        try:
                            value = known[(tag, text)] = construct(ScalarNode(tag, text, mark, event.end_mark))
                        except _BadScalar as exc:
                            value = None
                            if bad is None:
                                bad = (exc, _next_path(parent))
            else:
                tag, is_map = event.tag, kind is MappingStartEvent
                if not is_map and kind is not SequenceStartEvent:  # pragma: no cover - nothing else comes here
                    _refuse(f"unexpected {kind.__name__}", mark)
                if tag is not None and tag != "!" and tag != (_MAP_TAG if is_map else _SEQ_TAG):
                    raise _NotPlain  # !!set, !!omap, !!pairs or another tag
                if is_key and parent is not None:  # the drain reads this mapping or sequence too
                    problem = "keys must be strings; quote keys such as 1, null or yes"
                    return _drain(get, file, len(stack) + 1, nodes, mark, parent[1], problem)
                path = _next_path(parent)
                if parent is None or not parent[2]:  # the root or a sequence item; keys are marked above
                    marks[path] = (mark.line + 1, mark.column + 1)
                stack.append([{} if is_map else [], path, is_map, _NO_KEY])
                continue
        if not stack:
            break
        parent = stack[-1]
        if parent[2]:
            parent[0][parent[3]] = value
            parent[3] = _NO_KEY
        else:
            parent[0].append(value)
            if kind is ScalarEvent:
                marks[parent[1] + (len(parent[0]) - 1,)] = (mark.line + 1, mark.column + 1)
    if kind is ScalarEvent:
        marks[()] = (mark.line + 1, mark.column + 1)
    _end_of_document(get)
    if bad is not None:
        scalar, path = bad
        raise SpecError([SpecProblem(file, *_mark(scalar.node), format_path(path), f"invalid YAML: {scalar}")])
    return value, marks


def _next_path(parent: list[Any] | None) -> SpecPath:
    """The spec path of the next node in the open collection ``parent`` (a value, not a key)."""
    if parent is None:
        return ()
    return parent[1] + ((parent[3],) if parent[2] else (len(parent[0]),))  # type: ignore[no-any-return]


def _refuse_limit(depth: int, event: Any) -> NoReturn:
    if depth >= MAX_DEPTH:
        _refuse(f"nesting deeper than {MAX_DEPTH} levels", event.start_mark)
    _refuse(f"document has more than {MAX_YAML_NODES} nodes", event.start_mark)


def _drain(get: Any, file: str, depth: int, nodes: int, mark: Any, path: SpecPath, problem: str) -> NoReturn:
    """A structural problem at ``mark``: read the rest of the document, since parser errors and the
    limits come first, then refuse it. Anchors still mean the long way, whose composer may refuse
    the document for its aliases first."""
    while depth:
        event = get()
        kind = type(event)
        if kind is SequenceEndEvent or kind is MappingEndEvent:
            depth -= 1
            continue
        if depth >= MAX_DEPTH or nodes >= MAX_YAML_NODES:
            _refuse_limit(depth, event)
        nodes += 1
        if kind is AliasEvent or event.anchor is not None:
            raise _NotPlain
        if kind is not ScalarEvent:
            depth += 1
    _end_of_document(get)
    raise SpecError([SpecProblem(file, mark.line + 1, mark.column + 1, format_path(path), problem)])


def _end_of_document(get: Any) -> None:
    get()  # document end
    if not isinstance(event := get(), StreamEndEvent):
        raise ComposerError("expected a single document in the stream", None,
                            "but found another document", event.start_mark)


def _index(file: str, root: yaml.Node, where: dict[int, SpecPath], constructor: _Constructor) -> Marks:
    """Map every spec path to its YAML position, and each node to its first path. Refuse duplicate
    and non-string keys, recursive aliases, and aliases nesting deeper than MAX_DEPTH; then the
    first bad int, float, bool, null or timestamp in document order, as _load_plain does (the
    constructor keeps the values it made here for construct_document)."""
    marks: Marks = {(): _mark(root)}
    open_nodes: set[int] = set()
    bad: list[tuple[_BadScalar, SpecPath]] = []

    def refuse(node: yaml.Node, path: SpecPath, message: str) -> NoReturn:
        raise SpecError([SpecProblem(file, *_mark(node), format_path(path), message)])

    def walk(node: yaml.Node, path: SpecPath) -> None:
        if id(node) in open_nodes:
            refuse(node, path, "recursive alias: this node contains itself")
        if len(path) > MAX_DEPTH:
            refuse(node, path[:MAX_DEPTH], f"aliases nest deeper than {MAX_DEPTH} levels")
        if id(node) not in where:
            where[id(node)] = path
            if type(node) is ScalarNode and node.tag in _IMMUTABLE_TAGS and not bad:
                try:
                    constructor.construct_object(node)
                except _BadScalar as exc:
                    bad.append((exc, path))
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
    if bad:
        scalar, path = bad[0]
        raise SpecError([SpecProblem(file, *_mark(scalar.node), format_path(path), f"invalid YAML: {scalar}")])
    return marks


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Loading a spec allocates an event, two marks and a node per YAML node, then the data and the
    models. With Airflow imported the heap holds some 230,000 objects, and the collections these
    allocations trigger (a full one included) took 0.2 s of a 0.45 s parse of a 500-agent spec.
    Reference counting frees all of it but the odd exception traceback, which the first collection
    after the load takes."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _load_nodes(parser: Any, file: str, where: dict[int, SpecPath]) -> tuple[Any, Marks] | None:
    """The long way, for any document: the node tree, its index, then PyYAML's safe constructor."""
    root = _compose(parser)
    if root is None:
        return None
    constructor = _Constructor()
    marks = _index(file, root, where, constructor)
    return constructor.construct_document(root), marks


def _unprintable(file: str, text: str, position: int, character: int) -> SpecError:
    before = text[:position]
    return SpecError([SpecProblem(file, before.count("\n") + 1, len(before) - before.rfind("\n"), "",
                                  f"invalid YAML: unacceptable character #x{character:04x}")])


def parse_yaml(text: str, file: str) -> LocatedDocument:
    """Parse one YAML document safely, keeping positions; YAML errors become SpecError."""
    with cyclic_gc_paused():
        return _parse_yaml(text, file)


def _parse_yaml(text: str, file: str) -> LocatedDocument:
    if len(text.encode("utf-8", "replace")) > MAX_SPEC_BYTES:
        raise SpecError([SpecProblem(file, 1, 1, "", f"spec is larger than {MAX_SPEC_BYTES} bytes")])
    if len(text.splitlines()) > MAX_LINES:
        raise SpecError([SpecProblem(file, MAX_LINES + 1, 1, "", f"spec has more than {MAX_LINES} lines")])
    where: dict[int, SpecPath] = {}
    parser: Any = None
    libyaml = USE_LIBYAML and _CParser is not None
    try:
        if libyaml:
            # PyYAML's printable check first, so that both parsers refuse the same characters alike
            if (bad := yaml.reader.Reader.NON_PRINTABLE.search(text)) is not None:
                raise _unprintable(file, text, bad.start(), ord(bad.group()))
            parser = _CParser(text)
            try:
                loaded = _load_plain(parser, file)
            except _NotPlain:  # start again, the long way
                parser.dispose()
                parser = _CParser(text)
                loaded = _load_nodes(parser, file, where)
        else:  # the pure-Python parser is slow: read the text once, the long way
            parser = _PyParser(text)  # its reader refuses unprintable characters right here
            loaded = _load_nodes(parser, file, where)
        if loaded is None:
            raise SpecError([SpecProblem(file, 1, 1, "", "empty document")])
        data, marks = loaded
    except _BadScalar as exc:
        field = format_path(where.get(id(exc.node), ()))
        raise SpecError([SpecProblem(file, *_mark(exc.node), field, f"invalid YAML: {exc}")]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or str(exc)
        if problem == _LIBYAML_DEPTH_PROBLEM:  # libyaml's scanner, which runs ahead, stops at 1000 levels
            problem = f"nesting deeper than {MAX_DEPTH} levels"
        raise SpecError([SpecProblem(file, line, column, "", f"invalid YAML: {problem}")]) from None
    except yaml.reader.ReaderError as exc:  # not a MarkedYAMLError: it has a position only
        position = exc.position
        if libyaml:  # libyaml counts UTF-8 bytes
            position = len(text.encode("utf-8")[:position].decode("utf-8", "ignore"))
        character = exc.character if isinstance(exc.character, int) else ord(text[position : position + 1] or " ")
        raise _unprintable(file, text, position, character) from None
    except yaml.YAMLError as exc:
        raise SpecError([SpecProblem(file, 1, 1, "", f"invalid YAML: {exc}")]) from None
    finally:
        if parser is not None:
            parser.dispose()
    return LocatedDocument(file, data, marks)
