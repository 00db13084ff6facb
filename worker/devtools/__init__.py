"""Development tooling shipped beside the product but never imported by it: the example
community written once (`examples`), `make demo` (`demo`), `make admin` (`quickstart`,
`send_events`), `make schemas` (`schemas`), `make settings-doc` (`settings_doc`). The import
contracts in pyproject.toml forbid every product package to import it."""
