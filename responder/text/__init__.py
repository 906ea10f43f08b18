"""The small languages inside rule and playbook files: durations and sandboxed Jinja templates.

Pure and dependency-free within responder: `correlation` (rule windows, incident titles),
`playbooks` (step timeouts, `with` templates) and `actions` (approval timeouts) all import it,
and it imports none of them.
"""
