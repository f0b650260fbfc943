"""The engine's command line, usable without QGIS, made from the operations themselves.

Every operation of :data:`engine.api.OPERATIONS` is a command, and every parameter of its function is an option:
``n_folds`` is ``--n-folds``, typed by its annotation (``int``, ``float``, ``str``, ``bool`` as a flag, ``list[int]``
as several values, ``str | list[str]`` as one value or several, ``dict`` as a JSON object), required when it has no
default, and explained by its line in the function's docstring (``Args:``). Nothing here repeats a parameter: give a
function a new parameter with its docstring line and it is an option. The one thing added by hand is
:data:`COMMAND_NAMES`, the short names of some commands.

Examples::

    python -m engine --help                        # the commands
    python -m engine train --help                  # the options of one command
    python -m engine train --raster scene.tif --labels labels.gpkg --field class --output-model m.lpmodel
    python -m engine classify --raster scene.tif --model m.lpmodel --output classes.tif
    python -m engine finetune --raster scene.tif --labels labels.gpkg --field class --output-model d.lpmodel
    python -m engine status
    python -m engine worker            # one JSON job on stdin, JSON events on stdout (used by the QGIS plugin)

``--help`` reads the docstrings from the source files, so it imports no job module; the options of one command import
that command's module (light: the heavy libraries load when the job runs).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import json
import logging
import os
import re
import signal
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from .api import OPERATIONS, call_operation, operation_doc, resolve_operation
from .core.errors import CancelledError, LandprobeError, user_fault
from .core.feedback import ThrottledFeedback
from .core.seam import STDIN_CONTROL, WORKER_COMMAND, ExitCode
from .core.workspace import job_workspace

#: The command of each operation whose command is not its name with hyphens (``export_onnx``: ``export-onnx``):
#: the short names of the engine's first command line, kept.
COMMAND_NAMES = {"engine_status": "status", "train_classifier": "train", "classify_raster": "classify",
                 "assess_accuracy": "assess", "extract_embeddings": "embed"}
#: Parameters that are not options: the progress and cancel object the command line passes itself.
NOT_OPTIONS = frozenset({"feedback"})

_SECTION = re.compile(r"^(Args|Arguments|Parameters|Returns|Yields|Raises|Examples?|Notes?):\s*$")
_ENTRY = re.compile(r"^(\s+)\*{0,2}(\w+)(?:\s*\([^)]*\))?:\s*(.*)$")
_REFERENCE = re.compile(r":(\w+):`~?([^`]+)`")


def command_names() -> dict[str, str]:
    """The command of each operation, in the order of :data:`engine.api.OPERATIONS`."""
    return {operation: COMMAND_NAMES.get(operation, operation.replace("_", "-")) for operation in OPERATIONS}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line; ``command`` (one of :func:`command_names`) also gets its options.

    Without a command, every command is listed with the first paragraph of its docstring, read without importing
    its module, so that ``--help`` imports no job module; with one, the others are left bare.
    """
    parser = _Parser(prog=_program(), description="Landprobe engine: classify rasters. "
                     "Run a command with --help for its options.")
    sub = parser.add_subparsers(dest="_command", metavar="COMMAND", required=True, parser_class=_Parser)
    worker = sub.add_parser(WORKER_COMMAND, help="run one JSON job from standard input, write JSON events to "
                            "standard output (how the QGIS plugin runs the engine)")
    worker.add_argument(STDIN_CONTROL, action="store_true", help="cancel on a 'cancel' line or at the end of "
                        "standard input")
    names = command_names()
    listing = command not in names.values()  # the list of commands may be shown: it needs every summary
    for operation, name in names.items():
        doc = operation_doc(operation) if listing or name == command else ""
        command_parser = sub.add_parser(name, help=_escape(_plain(_summary(doc))),
                                        description=_escape(_plain(_description(doc))))
        command_parser.set_defaults(_operation=operation)
        if name == command:
            add_operation_arguments(command_parser, resolve_operation(operation))
    return parser


def add_operation_arguments(parser: argparse.ArgumentParser, function: Callable[..., Any]) -> None:
    """An option for every parameter of ``function`` (but :data:`NOT_OPTIONS`), from its signature and docstring.

    Raises:
        TypeError: for a parameter whose annotation has no command-line form (a test runs this on every operation).

    """
    docs = argument_docs(function)
    hints = typing.get_type_hints(function)  # the engine writes annotations as text (``from __future__``)
    for name, parameter in inspect.signature(function).parameters.items():
        if name in NOT_OPTIONS or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        required = parameter.default is inspect.Parameter.empty
        text = _escape(_plain(docs.get(name, ""), expand=True))
        if not required and parameter.default is not None and parameter.default is not False:
            text = f"{text} (default: {_escape(str(parameter.default))})".strip()
        options = _option_kwargs(name, hints.get(name, str), parameter.default)
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, required=required, help=text or None,
                            default=argparse.SUPPRESS, **options)


def argument_docs(function: Callable[..., Any]) -> dict[str, str]:
    """Each parameter's text in the ``Args:`` section of ``function``'s Google-style docstring, lines joined."""
    docs: dict[str, str] = {}
    inside, current, indent = False, None, 0
    for line in (inspect.getdoc(function) or "").splitlines():
        if _SECTION.match(line):
            inside, current = line.startswith(("Args", "Arguments", "Parameters")), None
            continue
        if not inside or not line.strip():
            continue
        entry = _ENTRY.match(line)
        if entry and (current is None or len(entry[1]) <= indent):
            indent, current = len(entry[1]), entry[2]
            docs[current] = entry[3]
        elif current is not None and len(line) - len(line.lstrip()) > indent:
            docs[current] += " " + line.strip()
        else:
            inside = False
    return docs


def parse(argv: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """The operation a command line names and its parameters (only those given: the others keep their defaults).

    Exits (:class:`SystemExit`) after ``--help``, or with a one-line error for a wrong command line.
    """
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    parser = build_parser(command)
    args, extra = parser.parse_known_args(argv)
    if extra:  # argparse would blame the top level; the options are the command's
        wrong = f"has no option {extra[0]}" if extra[0].startswith("-") else f"takes no value {extra[0]!r} there"
        parser.exit(ExitCode.USAGE, f"Error: {command} {wrong}; see '{parser.prog} {command} --help'.\n")
    params = vars(args)
    params.pop("_command", None)
    return params.pop("_operation"), params


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (:class:`engine.core.seam.ExitCode`)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [WORKER_COMMAND] and not {"-h", "--help"} & set(argv):
        # Lazy: keeps a trivial job's start-up light.
        from .worker import main as worker_main

        return worker_main(argv[1:])
    try:
        operation, params = parse(argv)
    except SystemExit as exc:  # after --help, or a wrong command line (already reported in one line)
        return exc.code if isinstance(exc.code, int) else ExitCode.USAGE
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    return _run(operation, params)


def _run(operation: str, params: dict[str, Any]) -> int:
    """Run one operation with progress on standard error and its result as JSON on standard output."""
    feedback = _ConsoleFeedback()
    signal.signal(signal.SIGINT, lambda *_: feedback.cancel())
    helper = os.environ.get("LOCAL_RANK", "0") != "0"  # a distributed job's extra process: the first one's folder
    try:
        with contextlib.nullcontext() if helper else job_workspace():
            result: dict[str, Any] = call_operation(operation, params, feedback)
    except CancelledError as exc:
        print(f"Cancelled: {exc}", file=sys.stderr)
        return ExitCode.CANCELLED
    except LandprobeError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return ExitCode.ERROR
    except Exception as exc:
        fault = user_fault(exc)
        if fault is None:
            raise
        print(f"Error: {fault}", file=sys.stderr)
        return ExitCode.ERROR
    if os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) == "0":  # one answer from a distributed run
        print(json.dumps(result, indent=2, default=str))
    return ExitCode.OK


class _ConsoleFeedback(ThrottledFeedback):
    """Progress as lines on standard error, at most one a second unless the message changes."""

    def __init__(self) -> None:
        super().__init__(interval=1.0)

    def emit_progress(self, fraction: float, message: str | None) -> None:
        """Print ``[ 42%] message`` on standard error."""
        print(f"[{fraction * 100:3.0f}%] {message or ''}", file=sys.stderr, flush=True)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line that names the option and points to ``--help``."""

    def error(self, message: str) -> NoReturn:
        """Print ``Error: <what is wrong>; see '<command> --help'.`` and exit with :attr:`ExitCode.USAGE`."""
        choice = re.fullmatch(r"argument (\S+): invalid choice: (.+?) \(choose from (.+)\)", message)
        if choice:
            message = f"{choice[1]} must be one of {choice[3]}, not {choice[2]}"
        message = re.sub(r"^argument (\S+): ", r"\1 ", message)
        self.exit(ExitCode.USAGE, f"Error: {message}; see '{self.prog} --help'.\n")


class _OneOrMore(argparse.Action):
    """For ``str | list[str]``: one value as itself, several as a list (``--raster a.tif`` or ``--raster b1 b2``)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values[0] if len(values) == 1 else list(values))


def _whole_number(text: str) -> int:
    """``int`` with an error that says what is expected."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects a whole number, not {text!r}") from None


def _number(text: str) -> float:
    """``float`` with an error that says what is expected."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects a number, not {text!r}") from None


def _json_object(text: str) -> dict[str, Any]:
    """A JSON object, e.g. ``{"1": "#33a02c"}``."""
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"""expects a JSON object such as '{{"1": "#33a02c"}}', not {text!r}""")
    return value


#: How a command-line value becomes each parameter type.
_CONVERTERS: dict[Any, Callable[[str], Any]] = {int: _whole_number, float: _number, str: str, dict: _json_object}


def _option_kwargs(name: str, annotation: Any, default: Any = None) -> dict[str, Any]:
    """``add_argument`` keywords for a parameter of type ``annotation`` (a flag: ``--name``, or ``--no-name`` too).

    Raises:
        TypeError: for a type without a command-line form.

    """
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    members = [m for m in (typing.get_args(annotation) if union else (annotation,)) if m is not type(None)]
    scalars = [m for m in members if typing.get_origin(m) is not list]
    lists = [(typing.get_args(m) or (str,))[0] for m in members if typing.get_origin(m) is list]
    if members == [bool]:
        return {"action": argparse.BooleanOptionalAction if default is True else "store_true"}
    if len(scalars) == 1 and not lists:
        return {"type": _converter(name, scalars[0])}
    if len(lists) == 1 and (not scalars or scalars == lists):
        kwargs: dict[str, Any] = {"nargs": "+", "type": _converter(name, lists[0])}
        return kwargs | ({"action": _OneOrMore} if scalars else {})
    raise TypeError(f"Parameter {name} of type {annotation} has no command-line form; give it a simpler type.")


def _converter(name: str, kind: Any) -> Callable[[str], Any]:
    """The converter of an element type (``dict[str, str]`` counts as ``dict``)."""
    converter = _CONVERTERS.get(typing.get_origin(kind) or kind)
    if converter is None:
        raise TypeError(f"Parameter {name} of type {kind} has no command-line form; give it a simpler type.")
    return converter


def _summary(doc: str) -> str:
    """The first paragraph of a docstring."""
    return doc.strip().split("\n\n")[0]


def _description(doc: str) -> str:
    """A docstring up to its first section (``Args:``, ``Returns:`` ...)."""
    lines = []
    for line in doc.splitlines():
        if _SECTION.match(line):
            break
        lines.append(line)
    return "\n".join(lines).strip()


def _plain(text: str, expand: bool = False) -> str:
    """Docstring text without reStructuredText markup, on one line.

    With ``expand``, a ``:data:`` reference to a table of names is followed by the names, as argparse writes choices:
    ``engine.probes.registry.PROBES {knn, svm, ...}``.
    """

    def reference(match: re.Match[str]) -> str:
        names = _names_of(match[2]) if expand and match[1] == "data" else None
        return f"{match[2]} {{{', '.join(names)}}}" if names else match[2]

    return " ".join(_REFERENCE.sub(reference, text).replace("``", "").split())


def _names_of(reference: str) -> list[str] | None:
    """The names in the engine constant ``reference`` (``engine.x.y.NAME``): a dict's keys or a sequence of names.

    None when it is not such a table (a dict of lists, say) or cannot be imported.
    """
    module, _, name = reference.rpartition(".")
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "engine":
        return None
    try:
        value = getattr(importlib.import_module("." + ".".join(parts[1:]), __package__), name)
    except (ImportError, AttributeError):
        return None
    if isinstance(value, dict) and not any(isinstance(v, list | tuple | set | frozenset) for v in value.values()):
        value = list(value)
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def _escape(text: str) -> str:
    """Help text with ``%`` doubled (argparse formats help with ``%``)."""
    return text.replace("%", "%%")


def _program() -> str:
    """How the user started the command line: ``python -m engine`` or the installed ``landprobe``."""
    return "python -m engine" if os.path.basename(sys.argv[0]) == "__main__.py" else "landprobe"
