"""Argument text shared by several commands: `--arg key=value` builder arguments."""

import json

from kerasae.cli.errors import UsageError


def parse_value(text):
    """`--arg key=value` values: JSON if it parses (numbers, lists, null), else a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_kwargs(pairs):
    """`["filters=[32,64]", "latent-dim=8"]` -> `{"filters": [32, 64], "latent_dim": 8}`."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise UsageError(
                f"--arg takes key=value, e.g. --arg filters=[32,64]. Received: {pair!r}"
            )
        key, value = pair.split("=", 1)
        out[key.strip().replace("-", "_")] = parse_value(value)
    return out
