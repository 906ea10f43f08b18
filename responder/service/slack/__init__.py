"""Slack as a front end: button clicks become the same commands the CLI and the API send.

Clicks arrive one of two ways (`RESPONDER_SLACK__MODE`): over Socket Mode (`socket_mode.py`,
run by `responder slack`) or as signed requests to `POST /v1/slack/actions` of `responder api`.
Either way `front.SlackFront` takes them in two halves: `receive_*` checks what can be checked
at once (the signature and its timestamp, the payload's shape, the click's age, a replay) so the
click is acknowledged within Slack's 3 seconds; `handle` does the rest afterwards (who may,
the command through `service.runs` / `service.incidents`, waiting for the worker to apply it,
redrawing the message). Every refusal is audited (`slack.refused`, with its reason, never the
request body) and told to the clicking user in an ephemeral message when there is one.

Pure: `signature.py` (Slack's request signature), `clicks.py` (the payload → a `Click` and what
it asks for), `security/audit_gate.py` (how many refusals per minute are audited one by one). SQL: `seen.py`
(the replay guard's table).
"""
