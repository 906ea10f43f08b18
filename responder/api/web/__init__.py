"""The analysts' dashboard, served by `responder api` under `/ui/`: server-rendered pages
(Jinja2, autoescaped: every value shown is treated as hostile), one small script of our own for
live updates (server-sent events), no inline script or style (the CSP forbids both).

- `login.py`: the session cookie (a random id; the token never leaves the login form), CSRF
  and origin checks, form bodies;
- `render.py`: templates, and how severities, statuses and SLA clocks read (text and shape as
  well as colour);
- `screens.py`: what each page shows, read through `responder.service`;
- `pages.py`: the pages and the analyst actions (the same service operations as the API, with
  the logged-in token's identity and role);
- `live.py`: one database poller per process and the event streams that redraw a page.
"""
