"""The PostgreSQL configuration store (DESIGN §5) and what reads and writes it.

- `migrations/` + `migrate.py`: the versioned schema (`identity-worker db migrate`); CHECK
  constraints enforce the formats of §1, triggers notify every change (C1).
- `db.py`: connecting, and failures turned into messages safe to print (never a secret).
- `repository.py` + `sync.py`: loading communities, and the admin mutations, each validated
  by the YAML loader's models and written as a difference in one transaction.
- `yaml_io.py`: `config export`, and the guard against applying withheld secrets.
- `cache.py`: the worker's `ConfigCache` (C1–C4); `following.py`: its LISTEN connection.
"""
