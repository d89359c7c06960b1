from sentimodal.interfaces.cli import app

app()
