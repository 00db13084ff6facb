"""The PostgreSQL configuration store (DESIGN §5) and what reads and writes it.

- `migrations/` + `migrate.py`: the versioned schema (`identity-worker db migrate`); CHECK
  constraints enforce the formats of §1, triggers notify every change (C1).
- `db.py`: connecting, and failures turned into messages safe to print (never a secret).
- `loading.py`: communities read back from their rows, validated by the YAML loader's models.
- `listings.py`: one page of communities, keys, fields or mappings (T5), never a secret.
- `repository.py` + `sync.py`: the admin mutations, each an edit of the
  community's spec (`CommunitySpec.with_key`, …) written as a difference in one transaction.
- `yaml_io.py`: the one YAML module: reading `--config` files and `config apply`, writing
  `config export`, and the guard against applying withheld secrets.
- `cache.py`: the worker's `ConfigCache` (C1–C4); `following.py`: its LISTEN connection.
"""
