"""The one exception type for a user's mistake.

Anything raised as `UserError` (bad arguments, config, data files, checkpoints) reaches the user as one
line on stderr that names the fault, and `rir` exits with code 2, without a traceback. Every other exception
is a bug or an environment failure and exits with code 1.
"""


class UserError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


EXIT_OK = 0
EXIT_FAILURE = 1  # a bug or an environment failure (disk full, CUDA error, ...)
EXIT_USAGE = 2  # bad input: arguments, config, data files, checkpoints
