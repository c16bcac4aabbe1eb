"""``parley chat``: a terminal chat against a running Parley service.

``client.py`` speaks HTTP (problem+json errors, the event stream and its reconnection), ``events.py``
reads one event, ``console.py`` is the terminal (TTY or pipes), ``answers.py`` turns a person's answer to
an interrupt into the resume value the bundled assistant reads, ``loop.py`` is the conversation and
``options.py`` what it is started with.
Nothing here imports the server's modules: the client knows Parley only through its HTTP API.
"""
