"""The facts the QGIS plugin and the engine must agree on, written once: constants only, no import at all.

The engine imports this module as ``engine.core.seam``; the plugin, which runs in QGIS's Python and must never import
the engine package or its stack, loads this very file by its path (:mod:`plugin.engine_process`). So a value changed
here changes on both sides of the seam at once. Keep it that way: plain constants, and not a single ``import``
(``tests/plugin/test_plugin_engine_process.py`` checks it).

The protocol itself is described in :mod:`engine.worker`.
"""

#: Version of the job protocol: the plugin writes it in the job and the engine refuses a job of another version.
PROTOCOL = 1

#: The command that runs one job: ``<engine python> -m engine worker --stdin-control``.
WORKER_COMMAND = "worker"
#: The worker's option that makes a ``cancel`` line, or the end of standard input, cancel the job.
STDIN_CONTROL = "--stdin-control"
#: The line on the worker's standard input that cancels the job.
CANCEL_LINE = "cancel"
#: The environment variable that hands the job to the extra processes of a distributed fine-tune.
JOB_VARIABLE = "LANDPROBE_JOB"
#: The environment variable with the user's device preference (``auto``, ``cpu`` or ``cuda``), set by the plugin.
DEVICE_VARIABLE = "LANDPROBE_DEVICE"
#: The environment variable with the user's thread count (empty or 0: all cores), set by the plugin.
THREADS_VARIABLE = "LANDPROBE_THREADS"
#: The environment variable with the address of an existing Dask scheduler for region maps and for reading the labels
#: of a training job (empty: a LocalCluster inside the engine for maps, the engine itself for training), set by the
#: plugin from its "Dask scheduler" setting or by the user for batch jobs.
SCHEDULER_VARIABLE = "LANDPROBE_DASK_SCHEDULER"


class Event:
    """The ``event`` key of each JSON line the worker writes on its standard output, in the order they come."""

    #: First line: ``pid``, ``protocol``, ``version`` and the job's temporary folder, ``workspace``.
    STARTED = "started"
    #: ``value`` (0..1) and ``message``.
    PROGRESS = "progress"
    #: ``level`` (a :class:`Level`) and ``text``.
    LOG = "log"
    #: Last line of a job that succeeded: its ``outputs``.
    RESULT = "result"
    #: Last line of a job that failed: ``kind`` (an :class:`ErrorKind`), ``message`` and, for a bug, ``traceback``.
    ERROR = "error"


class Level:
    """The ``level`` of a ``log`` event."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class ErrorKind:
    """The ``kind`` of an ``error`` event: what the user can do about it."""

    #: A raster, label layer, field or option the user gave cannot be used as it is.
    INPUT = "input"
    #: A model file is unreadable, from another version, or does not fit the raster.
    MODEL = "model"
    #: An output cannot be written (folder missing, no permission, disk full).
    OUTPUT = "output"
    #: The engine's Python lacks a package the job needs.
    DEPENDENCY = "dependency"
    #: The engine ran out of memory.
    MEMORY = "memory"
    #: The user cancelled the job; nothing was written.
    CANCELLED = "cancelled"
    #: A bug: the event carries a traceback.
    INTERNAL = "internal"


#: Every error kind the engine reports.
ERROR_KINDS = (ErrorKind.INPUT, ErrorKind.MODEL, ErrorKind.OUTPUT, ErrorKind.DEPENDENCY, ErrorKind.MEMORY,
               ErrorKind.CANCELLED, ErrorKind.INTERNAL)


class ExitCode:
    """The exit code of the worker and of the command line."""

    OK = 0
    #: The job failed; the last event (worker) or the last line on standard error (command line) says why.
    ERROR = 1
    #: The command line was used wrongly (an unknown option, a value of the wrong type).
    USAGE = 2
    #: The job was cancelled.
    CANCELLED = 3


#: The folder under the temporary root that holds the jobs' temporary folders (``landprobe-jobs-<uid>`` on POSIX).
JOBS_FOLDER = "landprobe-jobs"
#: The file in a job's temporary folder that lists where the job writes partial outputs (folder, tab, token).
PARTIALS = "partials.txt"
#: The mark in the name of every partial output, written beside its target and renamed when complete.
TMP_MARKER = ".landprobe-tmp-"
