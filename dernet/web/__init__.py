"""The screening gate as a web page and JSON API (FastAPI, the `web` extra); see dernet/web/app.py."""
