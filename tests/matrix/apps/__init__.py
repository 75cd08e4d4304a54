"""One app per framework, all with the behaviour ``tests.matrix.checks`` expects (see
``common.py``). Each module exposes the bridged app as ``app``: ``WsgiToAsgi(...)`` for a WSGI
framework, to be served by an ASGI server, ``AsgiToWsgi(...)`` for an ASGI framework."""
