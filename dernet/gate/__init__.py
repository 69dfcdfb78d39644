"""The screening gate's command line: `python -m dernet.gate PATH...` (see dernet/gate/cli.py).

Its core (Screener, reports, overlays) is dernet.deploy, which the web app and every other front end share; no
torch, no Ultralytics.
"""
