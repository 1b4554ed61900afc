"""The one exception type the CLI turns into a one-line message."""


class PhysicalError(Exception):
    """A problem with the user's input or environment, described in one line.

    The message names the file or option at fault and how to fix it; the CLI
    prints it as ``error: <message>`` and exits non-zero, without a traceback.
    """
