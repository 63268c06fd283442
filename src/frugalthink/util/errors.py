"""User-facing errors: the CLI prints these as one line (no traceback unless --verbose)."""


class UserError(Exception):
    """A mistake in the user's input (file, field, option), reported as a single clear line."""
