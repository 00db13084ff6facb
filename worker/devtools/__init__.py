"""Development tooling shipped beside the product but never imported by it: `make admin`'s
quickstart (and, with it, whatever serves only demos, benchmarks and tests). The import
contracts in pyproject.toml forbid every product package to import it."""
