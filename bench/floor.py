"""The framework floor: a Flask app whose one view does nothing but answer JSON.

Served by the gateway's own `gunicorn.conf.py` (`gunicorn -c gunicorn.conf.py bench.floor:app`),
so the difference between it and the gateway is what the gateway's code costs.
"""

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/floor")
def floor():
    return jsonify({"status": "ok"})


@app.get("/readyz")
def ready():
    return jsonify({"status": "ready"})
