"""The two floors, served by the gateway's own `gunicorn.conf.py`
(`gunicorn -c gunicorn.conf.py bench.floor:app`), so the difference between them and the
gateway is what the gateway's code costs:

- `GET /floor`: the framework floor, a view that does nothing but answer JSON;
- `GET /real/status/<order_id>`: the realistic floor (bench/realistic.py), the least a
  gateway status request must do (authenticate, read, ask the upstream, write, answer).
"""

from flask import Flask, jsonify

from .realistic import bp as realistic

app = Flask(__name__)
app.register_blueprint(realistic)


@app.get("/floor")
def floor():
    return jsonify({"status": "ok"})


@app.get("/readyz")
def ready():
    return jsonify({"status": "ready"})
