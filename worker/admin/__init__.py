"""The configuration service (DESIGN §10): the admin API under /api/v1 and the console at /.

`app.create_app` builds it; `api/` holds one router per resource, `auth` the one access
check every route goes through, `actions` the writes (each audited in its own transaction),
`console` the server-rendered pages over the same actions.
"""
