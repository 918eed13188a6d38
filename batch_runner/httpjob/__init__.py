"""HTTP jobs (SPEC 11): one request per attempt, judged by its status code.

One module per concern, so each can be read and tested alone:

- ``masking``   what may be shown of a run spec (masked headers, URLs without credentials)
- ``prepare``   from a run spec to the exact request to send (no network)
- ``transport`` one exchange over the network, with a bounded read of the body
- ``report``    from the exchange to the record, the summary and the run log
- ``attempt``   the attempt itself: the exchange in a worker thread, a deadline, stop requests

What every outbound call shares is in ``batch_runner.net``: ``${VAR}`` references (``envrefs``),
``allow_hosts`` (``hosts``), methods and URLs (``urls``), the secret policy (``secrets``) and
the wording of network errors (``reasons``). Only ``masking`` is imported outside HTTP attempts
(``queue show``), and it needs nothing costlier than ``re`` and ``copy``.
"""
