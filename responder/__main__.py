from responder.cli import app

app()
