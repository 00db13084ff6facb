"""The settings reference: docs/settings.md is generated from the settings
model and in sync; every setting has a meaning; `run --help` gives each flag's meaning, env
name and default from the same model."""

from __future__ import annotations

from click.testing import CliRunner

from worker.cli.service import run
from worker.devtools.settings_doc import DOC, main, render
from worker.settings import Settings, env_names


def test_docs_settings_md_is_generated_from_the_model() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), "docs/settings.md is stale: make settings-doc"
    assert main(["--check"]) == 0


def test_every_setting_has_a_meaning_and_a_row() -> None:
    text = render()
    for name, field in Settings.model_fields.items():
        assert field.description, f"setting {name} has no description (Field(description=...))"
        assert f"| {name} | `{env_names(name)[0]}`" in text


def test_run_help_gives_meaning_env_and_default_for_every_flag() -> None:
    shown = CliRunner().invoke(run, ["--help"], terminal_width=10_000).output
    assert "docs/settings.md" in shown
    for param in run.params:
        if param.name in Settings.model_fields:
            env = env_names(param.name)[0]
            assert f"[env {env}; default " in (getattr(param, "help", "") or ""), param.name
    assert "[env IDENTITY_WORKER_USAGE_FLUSH_SECONDS" not in shown  # no flag: the doc has it
    assert "| usage_flush_seconds | `IDENTITY_WORKER_USAGE_FLUSH_SECONDS` | – | `5.0` |" in render()
