"""SQL storage shared by every store: engines for SQLite and PostgreSQL, migrations, lookups.

The stores themselves live with what they store (`incidents.store`, `playbooks.runs`,
`audit.store`); this package owns how a database is opened and upgraded.
"""
