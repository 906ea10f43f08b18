"""The analysts' operations, shared by the CLI, the REST API and Slack (`slack/`).

Writes validate against SQL (the incident or run exists, the ETag the caller saw still holds),
build a command carrying the caller's identity and publish it to `responder.commands`; the
worker applies it. Reads are query functions over a Session that return view models. This
package imports stores and commands, never `responder.api` or `responder.cli`.
"""
