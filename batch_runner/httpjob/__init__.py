"""HTTP jobs (SPEC 11): one request per attempt, judged by its status code.

One module per concern, so each can be read and tested alone:

- ``envrefs``   ``${VAR}`` references to environment variables (secrets stay out of the config)
- ``hosts``     ``settings.http.allow_hosts`` patterns
- ``masking``   what may be shown of a request: masked headers, URLs without credentials
- ``prepare``   from a run spec to the exact request to send (no network)
- ``transport`` one exchange over the network, with a bounded read of the body
- ``report``    from the exchange to the record, the summary and the run log
- ``attempt``   the attempt itself: the exchange in a worker thread, a deadline, stop requests

Only ``masking``, ``envrefs`` and ``hosts`` are imported outside HTTP attempts (``queue show``,
config validation), and they need nothing costlier than ``re`` and ``urllib.parse``.
"""
