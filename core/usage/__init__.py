"""API usage: the log of /api requests, the figures read from it, and the alerts it raises.

- `recorder.py`: the in-process buffer the web middleware feeds and the batched insert that empties it.
- `service.py`: the figures (last 24 hours, this Nairobi month), the log and the export's rows.
- `alerts.py`: a key used from a new network, a burst of refused keys, a credential or key changed.
- `use_cases.py`: what the API, the panel and the bot call.
"""
