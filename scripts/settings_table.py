"""The deployment guide's table of settings, generated from the code that reads them.

    python scripts/settings_table.py           # print the table
    python scripts/settings_table.py --write   # rewrite it in docs/deploy.md

A setting is a name the code reads from the environment: `os.environ.get("NAME",
default)`, `os.environ["NAME"]`, or a helper such as `_bool("NAME", default)` that
passes its first argument to `os.environ.get`. Read, never imported (so the machine's
own environment cannot leak into the docs): portal/config.py's `Config` class, with
`DevelopmentConfig`'s own defaults beside it and the module's functions
(`config_from_environment` reads PORTAL_ENV), then gunicorn.conf.py.

A setting's meaning is the comment right above it (or a function's docstring). One
comment covers the settings right below it up to a blank line, another comment or a
line that reads no setting, so related settings share a row; a comment at the end of
a line adds to its own setting. Lines of a comment starting with `---` head a section
of the file and are left out. tests/unit/test_settings_table.py fails when the guide's
table is not this script's output, and when a setting has no comment.
"""

from __future__ import annotations

import argparse
import ast
import io
import operator
import re
import sys
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
CONFIG = PROJECT / "portal" / "config.py"
GUNICORN = PROJECT / "gunicorn.conf.py"
GUIDE = PROJECT / "docs" / "deploy.md"
START = "<!-- settings:start -->"
END = "<!-- settings:end -->"
# Each file's heading in the table: which processes read its settings.
SOURCES = {
    "portal/config.py": "The portal: web and jobs processes",
    "gunicorn.conf.py": "The web server only",
}
# Classes of portal/config.py whose own defaults the table shows beside Config's.
OTHER_ENVIRONMENTS = {"DevelopmentConfig": "development"}

ENVIRONMENT_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
}


class NotConstant(Exception):
    """A default that depends on the machine or on code: shown as source."""


@dataclass
class Setting:
    name: str
    default: ast.expr | None  # None: no default given (the value is unset)
    line: int
    inline_comment: str = ""
    other_defaults: dict[str, ast.expr | None] = field(default_factory=dict)


@dataclass
class Group:
    """Settings that share one comment: a row of the table."""

    source: str
    comment: str
    settings: list[Setting] = field(default_factory=list)


class SourceFile:
    """A Python file's syntax tree and comments, by line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.text = path.read_text(encoding="utf-8")
        self.tree = ast.parse(self.text, filename=str(path))
        self.lines = self.text.splitlines()
        self.comments: dict[int, str] = {}
        for token in tokenize.generate_tokens(io.StringIO(self.text).readline):
            if token.type == tokenize.COMMENT:
                self.comments[token.start[0]] = token.string.lstrip("#").strip()

    def is_comment_line(self, line: int) -> bool:
        return self.lines[line - 1].lstrip().startswith("#")

    def comment_above(self, line: int) -> list[str] | None:
        """The comment lines right above `line` (None when there are none)."""
        above = line - 1
        block: list[str] = []
        while above >= 1 and self.is_comment_line(above):
            block.insert(0, self.comments[above])
            above -= 1
        return block or None

    def inline_comment(self, node: ast.stmt) -> str:
        return " ".join(
            self.comments[line]
            for line in range(node.lineno, (node.end_lineno or node.lineno) + 1)
            if line in self.comments and not self.is_comment_line(line)
        )

    def environment_helpers(self) -> set[str]:
        """Functions of this file that read the variable their first parameter names."""
        helpers = set()
        for node in self.tree.body:
            if isinstance(node, ast.FunctionDef) and node.args.args:
                parameter = node.args.args[0].arg
                for call in ast.walk(node):
                    if (
                        isinstance(call, ast.Call)
                        and _is_environ_get(call.func)
                        and call.args
                        and isinstance(call.args[0], ast.Name)
                        and call.args[0].id == parameter
                    ):
                        helpers.add(node.name)
        return helpers


def _is_environ_get(func: ast.expr) -> bool:
    text = ast.unparse(func)
    return text in {"os.environ.get", "os.getenv", "environ.get", "getenv"}


def environment_reads(node: ast.AST, helpers: set[str]) -> Iterator[tuple[str, ast.expr | None]]:
    """(name, default expression) for every environment variable `node` reads."""
    for child in ast.walk(node):
        if isinstance(child, ast.Call) and child.args:
            first = child.args[0]
            named = isinstance(first, ast.Constant) and isinstance(first.value, str)
            reads = _is_environ_get(child.func) or (
                isinstance(child.func, ast.Name) and child.func.id in helpers
            )
            if reads and named and ENVIRONMENT_NAME.fullmatch(first.value):
                yield first.value, child.args[1] if len(child.args) > 1 else None
        elif (
            isinstance(child, ast.Subscript)
            and ast.unparse(child.value) in {"os.environ", "environ"}
            and isinstance(child.slice, ast.Constant)
        ):
            yield child.slice.value, None


def groups_in(source: SourceFile, body: list[ast.stmt], helpers: set[str]) -> list[Group]:
    """The settings read by the statements of `body`, grouped by the comment above them."""
    groups: list[Group] = []
    current: Group | None = None
    previous_end = None
    for statement in body:
        if isinstance(statement, ast.FunctionDef):
            groups += groups_in(source, statement.body, helpers)
            current = None
            continue
        reads = list(environment_reads(statement, helpers))
        comment = source.comment_above(statement.lineno)
        adjacent = previous_end is not None and statement.lineno == previous_end + 1
        starts_group = comment is not None or not adjacent or current is None
        previous_end = statement.end_lineno
        if not reads:
            current = None
            continue
        if starts_group:
            text = " ".join(line for line in comment or [] if not line.startswith("---"))
            current = Group(str(source.path.relative_to(PROJECT)), text)
            groups.append(current)
        inline = source.inline_comment(statement)
        for name, default in reads:
            current.settings.append(Setting(name, default, statement.lineno, inline))
    return groups


def read_settings() -> list[Group]:
    """Every setting the portal and its web server read, in the order of their files."""
    config = SourceFile(CONFIG)
    helpers = config.environment_helpers()
    classes = {node.name: node for node in config.tree.body if isinstance(node, ast.ClassDef)}
    groups = groups_in(config, classes["Config"].body, helpers)
    by_name = {setting.name: setting for group in groups for setting in group.settings}
    for class_name, label in OTHER_ENVIRONMENTS.items():
        for statement in classes[class_name].body:
            reads = list(environment_reads(statement, helpers))
            for name, default in reads:
                if name in by_name:
                    by_name[name].other_defaults[label] = default
            if any(name not in by_name for name, _ in reads):
                # Read in this environment only: rows of their own.
                groups += groups_in(config, [statement], helpers)
    functions = [node for node in config.tree.body if isinstance(node, ast.FunctionDef)]
    functions = [node for node in functions if node.name not in helpers]
    groups = groups_in(config, functions, helpers) + groups
    gunicorn = SourceFile(GUNICORN)
    return groups + groups_in(gunicorn, gunicorn.tree.body, gunicorn.environment_helpers())


@dataclass
class Defaults:
    """What Config's attributes are when the environment sets nothing: for defaults
    built from other settings (`str(15 * MAIL_TIMEOUT_SECONDS)`)."""

    attributes: dict[str, ast.expr]
    helpers: set[str]

    @classmethod
    def of_config(cls) -> Defaults:
        config = SourceFile(CONFIG)
        (config_class,) = (
            node
            for node in config.tree.body
            if isinstance(node, ast.ClassDef) and node.name == "Config"
        )
        attributes = {}
        for statement in config_class.body:
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                target, value = statement.targets[0], statement.value
            elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
                target, value = statement.target, statement.value
            else:
                continue
            if isinstance(target, ast.Name):
                attributes[target.id] = value
        return cls(attributes, config.environment_helpers())

    def value(self, node: ast.expr) -> object:
        """The value of `node` with nothing set in the environment."""
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
            return OPERATORS[type(node.op)](self.value(node.left), self.value(node.right))
        if isinstance(node, ast.Call) and node.args:
            reads = list(environment_reads(node, self.helpers))
            if len(reads) == 1 and reads[0][0] == getattr(node.args[0], "value", None):
                default = reads[0][1]  # this call is the read itself: its default
                return None if default is None else self.value(default)
            if isinstance(node.func, ast.Name) and node.func.id in {"str", "int"}:
                return {"str": str, "int": int}[node.func.id](self.value(node.args[0]))
        if isinstance(node, ast.Name) and node.id in self.attributes:
            return self.value(self.attributes[node.id])
        raise NotConstant

    def describe(self, default: ast.expr | None) -> str:
        """A default as the table shows it: `text`, a number, on/off, unset, empty."""
        if default is None:
            return "unset"
        if isinstance(default, ast.IfExp) and ast.unparse(default.test) == "DEVELOPMENT":
            return f"{self.describe(default.orelse)}; development: {self.describe(default.body)}"
        try:
            value = self.value(default)
        except NotConstant:
            return f"`{ast.unparse(default)}`"
        if isinstance(value, bool):
            shown = "on" if value else "off"
        elif value is None:
            shown = "unset"
        elif value == "":
            shown = "empty"
        elif isinstance(value, int) or str(value).isdigit():
            shown = str(value)
        else:
            shown = f"`{value}`"
        if not isinstance(default, ast.Constant):  # say how it is made
            inner = default.args[0] if isinstance(default, ast.Call) else default
            shown += f" (`{ast.unparse(inner)}`)"
        return shown


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def settings_table() -> str:
    """The Markdown table of every setting: variable, default, meaning."""
    defaults = Defaults.of_config()
    rows = [
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    source = None
    for group in read_settings():
        if group.source != source:
            source = group.source
            rows.append(f"| **{SOURCES[source]}** (`{source}`) | | |")
        variables, shown_defaults = [], []
        meaning = group.comment
        for setting in group.settings:
            variables.append(f"`{setting.name}`")
            default = defaults.describe(setting.default)
            for label, other in setting.other_defaults.items():
                default += f"; {label}: {defaults.describe(other)}"
            shown_defaults.append(default)
            if setting.inline_comment:
                meaning += f" `{setting.name}`: {setting.inline_comment}."
        cells = ("<br>".join(variables), cell("<br>".join(shown_defaults)), cell(meaning.strip()))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def guide_with_table(guide: str, table: str) -> str:
    """The guide's text with the part between the markers replaced by `table`."""
    start, end = guide.index(START) + len(START), guide.index(END)
    return guide[:start] + "\n" + table + guide[end:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite the table in {GUIDE}")
    arguments = parser.parse_args()
    table = settings_table()
    if not arguments.write:
        sys.stdout.write(table)
        return 0
    guide = GUIDE.read_text(encoding="utf-8")
    updated = guide_with_table(guide, table)
    if updated != guide:
        GUIDE.write_text(updated, encoding="utf-8")
        print(f"Rewrote the settings table in {GUIDE.relative_to(PROJECT)}.")
    else:
        print(f"The settings table in {GUIDE.relative_to(PROJECT)} is up to date.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
