"""Writes docs/settings.md, the settings reference, from the settings model (`worker.settings`:
`Settings` and the Kafka security it includes) and `run`'s flags; `--check` fails when stale.

The model is the one source: a setting added there (with its `description`, which a test
requires) appears here when regenerated (`make settings-doc`), and in `run --help` when it
has a flag.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from worker.settings import Settings, default_text, env_names

DOC = Path(__file__).resolve().parents[2] / "docs" / "settings.md"

HEADER = """# Settings reference

Every setting of `identity-worker run` (and of `topics create`, which reads the Kafka and
topic settings): its environment variable(s), its `run` flag if it has one, its default and
what it means. A flag overrides the environment, which overrides the default. Secrets have no
flag (a command line is visible to every user of the machine): set them in the environment or
give a file. Generated from `worker/settings.py` by `python -m worker.devtools.settings_doc`
(`make settings-doc`); a test fails when this page is stale. The other commands (`admin
serve`, `report`, `config …`) read `DATABASE_URL` too; their own options are in their `--help`.

| setting | environment | flag | default | meaning |
|---|---|---|---|---|
"""


def _flags() -> dict[str, str]:
    from worker.cli.service import run  # the command's own options, not a copy of their names

    return {str(param.name): param.opts[0] for param in run.params if param.opts[0].startswith("--")}


def _shown(default: str | None) -> str:
    return "unset" if default is None else f"`{default}`"


def render() -> str:
    flags = _flags()
    rows = []
    for name, field in Settings.model_fields.items():
        env = "<br>".join(f"`{variable}`" for variable in env_names(name))
        flag = f"`{flags[name]}`" if name in flags else "–"
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| {name} | {env} | {flag} | {_shown(default_text(name))} | {meaning} |")
    return HEADER + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.devtools.settings_doc", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/settings.md is stale")
    args = parser.parse_args(argv)
    text = render()
    current = DOC.read_text(encoding="utf-8") if DOC.exists() else None
    if current == text:
        print("docs/settings.md: up to date")
        return 0
    if args.check:
        print("docs/settings.md is stale: run `make settings-doc`", file=sys.stderr)
        return 1
    DOC.write_text(text, encoding="utf-8")
    print("docs/settings.md: written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
