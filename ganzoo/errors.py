"""The one exception type the CLI turns into a one-line message and exit code 2."""


class UserError(Exception):
    """Bad input from the user (config, data, run folder). str() is one line that names the fix."""

    exit_code = 2
