"""The `identity-worker` command: wiring only, no logic of its own (DESIGN §7)."""

from __future__ import annotations

import sys

import click

from worker.cli import (
    access,
    community,
    config,
    db,
    fields,
    keys,
    mappings,
    offline,
    report,
    service,
    store_session,
)
from worker.cli.common import CliError
from worker.exitcodes import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, PROG, error_line


@click.group(
    name=PROG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
def cli() -> None:
    """Verify the identities web-chat visitors bring (signed JWTs or plain objects) and
    publish enriched identities or rejections.

    \b
    Offline:   process, token sign, token verify
    Store:     db migrate, community, keys, fields, mappings, config apply/export, report
    Service:   topics create, run
    Console:   admin serve, admin token, audit list
    Run `identity-worker COMMAND --help` for each command's options and examples.
    Rule codes in help texts, details and logs (V7, K2, C4, …): docs/rules.md.
    Every setting of `run`: docs/settings.md.
    """


offline.register(cli)
store_session.register(
    cli,
    db.db_group,
    community.community_group,
    keys.keys_group,
    fields.fields_group,
    mappings.mappings_group,
    config.config_group,
)
report.register(cli)
access.register(cli)
service.register(cli)


def main(argv: list[str] | None = None) -> None:
    """Run the command; bad input becomes one line on stderr and a non-zero exit."""
    try:
        code = cli.main(args=argv, prog_name=PROG, standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        print(exc.format_message(), file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except click.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        print(error_line(exc.format_message() + hint), file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except click.ClickException as exc:
        print(error_line(exc.format_message()), file=sys.stderr)
        sys.exit(exc.exit_code)
    except CliError as exc:
        print(error_line(exc.message), file=sys.stderr)
        sys.exit(exc.code)
    except click.exceptions.Abort:
        print(f"{PROG}: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code if isinstance(code, int) else EXIT_OK)


if __name__ == "__main__":
    main()
