"""Names chosen from a list: did-you-mean suggestions and the one error for unknown names."""

import difflib

from kerasae._util.errors import InvalidValue


def did_you_mean(name, choices):
    """`"Did you mean 'x'? "` for the closest of `choices`, or `""`."""
    close = difflib.get_close_matches(str(name), list(choices), n=1)
    return f"Did you mean {close[0]!r}? " if close else ""


def unknown_name_error(what, name, choices, arg="name"):
    """An `InvalidValue` for an unknown name that lists the choices and the closest."""
    return InvalidValue(
        f"Unknown {what} {name!r}. {did_you_mean(name, choices)}"
        f"Available: {', '.join(sorted(choices))}. Received: {arg}={name!r}"
    )
